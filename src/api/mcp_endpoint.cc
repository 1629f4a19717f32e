#include "api/mcp_endpoint.h"

#include <deque>
#include <random>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bus/continuation.h"
#include "lotus/strings.h"
#include "mcp/json_rpc.h"
#include "mcp/module_content.h"
#include "mcp/nucleus_content.h"

namespace lotus::api {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kSessionHeader = "Mcp-Session-Id";
constexpr std::string_view kVersionHeader = "MCP-Protocol-Version";
// Spec: a server that cannot tell (no header) assumes this version.
constexpr int kServerError = -32000;  // JSON-RPC "server error": transport-level refusals

std::string fresh_session_id() {
  std::random_device random;  // the kernel's CSPRNG on Linux
  std::string id;
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    uint32_t word = random();
    for (int j = 0; j < 4; ++j) {
      id.push_back(kHex[(word >> (8 * j)) & 0xf]);
      id.push_back(kHex[(word >> (8 * j + 4)) & 0xf]);
    }
  }
  return id;
}

// A JSON-RPC error as an HTTP answer: transport refusals carry no request id.
HttpResponse rpc_error_response(http::status status, const Json& id, int code,
                                std::string message) {
  HttpResponse response{status, 11};
  response.set(http::field::content_type, "application/json");
  response.body() = mcp::make_error(id, mcp::RpcError{code, std::move(message), Json()});
  response.prepare_payload();
  return response;
}

bool accepts(std::string_view accept, std::string_view type) {
  return accept.find(type) != std::string_view::npos;
}

std::string sse_event(std::string_view message) {
  std::string out;
  out.reserve(message.size() + 24);
  out.append("event: message\ndata: ").append(message).append("\n\n");
  return out;
}

}  // namespace

namespace mcp_http {

// The messages one HTTP response is waiting for: a POST's reply (and the
// notifications before it), or the messages of the session's GET stream.
// Filled from any thread; drained by the connection's coroutine, which a
// steady_timer wakes, posted to the connection's strand. A call's reply
// usually arrives outside any continuation scope, so another thread writes
// it while this one finishes the call: for a client that sleeps until its
// reply that measured faster than writing it here. Continued on this
// thread only within a scope (a call answered before handle() returns).
class Outbox : public std::enable_shared_from_this<Outbox> {
 public:
  explicit Outbox(asio::any_io_executor executor) : timer_(std::move(executor)) {}

  void push(std::string message, bool final) {
    {
      std::lock_guard lock(mutex_);
      if (done_) return;
      queue_.push_back(std::move(message));
      if (final) done_ = true;
      final_ = final_ || final;
    }
    wake();
  }
  // No reply will come (cancelled, the session ended).
  void close() {
    {
      std::lock_guard lock(mutex_);
      if (done_) return;
      done_ = true;
    }
    wake();
  }

  struct Batch {
    std::vector<std::string> messages;
    bool done = false;   // nothing more will come
    bool final = false;  // the last message is the reply
  };
  // Waits until there is something to take or `until` passes.
  asio::awaitable<Batch> take(Clock::time_point until) {
    if (Batch ready = drain(); !ready.messages.empty() || ready.done) co_return ready;
    timer_.expires_at(until);
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return drain();
  }

 private:
  Batch drain() {
    std::lock_guard lock(mutex_);
    Batch batch;
    batch.messages.assign(std::make_move_iterator(queue_.begin()),
                          std::make_move_iterator(queue_.end()));
    queue_.clear();
    batch.done = done_;
    batch.final = final_;
    return batch;
  }
  void wake() {
    post_or_continue(timer_.get_executor(), [self = shared_from_this()] { self->timer_.cancel(); });
  }

  asio::steady_timer timer_;
  std::mutex mutex_;
  std::deque<std::string> queue_;
  bool done_ = false;
  bool final_ = false;
};

// One MCP session over HTTP: its McpServer and where its messages go.
class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(std::string id) : id_(std::move(id)) { touch(); }

  const std::string& id() const { return id_; }
  mcp::McpServer& server() { return *server_; }
  void attach(std::shared_ptr<mcp::McpServer> server) { server_ = std::move(server); }

  void touch() { last_used_.store(Clock::now().time_since_epoch().count()); }
  bool expired(std::chrono::seconds idle) {
    std::lock_guard lock(mutex_);
    // A POST that went away (its client gone) no longer keeps the session.
    std::erase_if(waiting_, [](const auto& entry) { return entry.second.expired(); });
    if (!waiting_.empty() || !stream_.expired()) return false;
    return Clock::now() - Clock::time_point(Clock::duration(last_used_.load())) > idle;
  }

  // Registers the outbox of a request; false when the id is in flight already.
  bool expect(const Json& id, std::shared_ptr<Outbox> outbox) {
    std::lock_guard lock(mutex_);
    std::string key = id.dump();
    if (auto it = waiting_.find(key); it != waiting_.end() && !it->second.expired()) return false;
    waiting_[key] = outbox;
    return true;
  }
  // The client cancelled request `id`: its response stream ends now.
  void cancelled(const Json& id) {
    std::shared_ptr<Outbox> outbox = take_waiting(id.dump());
    if (outbox) outbox->close();
  }
  // Opens the GET stream; false when one is open already.
  bool open_stream(std::shared_ptr<Outbox> outbox) {
    std::lock_guard lock(mutex_);
    if (!stream_.expired()) return false;
    stream_ = outbox;
    return true;
  }

  // The McpServer's sink: a reply goes to the POST that asked; what belongs
  // to a request (a tool's progress, logs and questions for the client) to
  // that request's POST; anything else to the GET stream (or, without one,
  // to a POST still streaming).
  void deliver(std::string message, const mcp::McpServer::Route& route) {
    if (route.answers) {
      std::shared_ptr<Outbox> outbox = take_waiting(route.request.dump());
      if (outbox) outbox->push(std::move(message), true);
      return;
    }
    std::shared_ptr<Outbox> target;
    {
      std::lock_guard lock(mutex_);
      if (!route.request.is_null()) {
        if (auto it = waiting_.find(route.request.dump()); it != waiting_.end()) {
          target = it->second.lock();
        }
      }
      if (!target) target = stream_.lock();
      for (auto it = waiting_.rbegin(); !target && it != waiting_.rend(); ++it) {
        target = it->second.lock();
      }
    }
    if (target) target->push(std::move(message), false);
  }

  void close() {
    std::vector<std::shared_ptr<Outbox>> open;
    {
      std::lock_guard lock(mutex_);
      for (auto& [key, weak] : waiting_) {
        if (auto outbox = weak.lock()) open.push_back(std::move(outbox));
      }
      if (auto stream = stream_.lock()) open.push_back(std::move(stream));
      waiting_.clear();
    }
    for (auto& outbox : open) outbox->close();
    if (server_) server_->close();
  }

 private:
  std::shared_ptr<Outbox> take_waiting(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = waiting_.find(key);
    if (it == waiting_.end()) return nullptr;
    std::shared_ptr<Outbox> outbox = it->second.lock();
    waiting_.erase(it);
    return outbox;
  }

  const std::string id_;
  std::shared_ptr<mcp::McpServer> server_;
  std::atomic<Clock::rep> last_used_{0};
  std::mutex mutex_;
  std::map<std::string, std::weak_ptr<Outbox>> waiting_;  // by request id's JSON text
  std::weak_ptr<Outbox> stream_;                          // the GET stream
};

}  // namespace mcp_http

using mcp_http::Outbox;
using mcp_http::Session;

McpEndpoint::McpEndpoint(Nucleus& nucleus, McpEndpointOptions options)
    : nucleus_(nucleus),
      options_(std::move(options)),
      content_(std::make_shared<mcp::ModuleContent>(
          nucleus.bus(), [&nucleus] { return nucleus.mcp_manifests(); },
          std::make_shared<mcp::NucleusContent>(nucleus))) {}

McpEndpoint::~McpEndpoint() {
  std::map<std::string, std::shared_ptr<Session>, std::less<>> sessions;
  {
    std::lock_guard lock(mutex_);
    sessions.swap(sessions_);
  }
  for (auto& [id, session] : sessions) session->close();
}

std::vector<RouteSpec> McpEndpoint::add_routes(Router& router) {
  std::vector<RouteSpec> specs = {
      RouteSpec{http::verb::post, options_.path,
                "MCP Streamable HTTP: one JSON-RPC message; the reply as JSON or an SSE stream",
                true, Json(), "application/json"},
      RouteSpec{http::verb::get, options_.path,
                "MCP Streamable HTTP: the session's SSE stream (tools/list_changed and the like)",
                true, Json(), "text/event-stream"},
      RouteSpec{http::verb::delete_, options_.path, "MCP Streamable HTTP: end the session", true,
                Json(), "application/json"}};
  router.add_stream(specs[0],
                    [this](const RequestContext& c, ResponseWriter& out) { return post(c, out); });
  router.add_stream(specs[1],
                    [this](const RequestContext& c, ResponseWriter& out) { return get(c, out); });
  router.add_stream(
      specs[2], [this](const RequestContext& c, ResponseWriter& out) { return remove(c, out); });
  return specs;
}

size_t McpEndpoint::session_count() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

void McpEndpoint::drop_expired() {
  std::vector<std::shared_ptr<Session>> ended;
  {
    std::lock_guard lock(mutex_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (it->second->expired(options_.idle_timeout)) {
        ended.push_back(std::move(it->second));
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& session : ended) session->close();
}

Result<std::shared_ptr<Session>> McpEndpoint::create_session() {
  drop_expired();
  {
    std::lock_guard lock(mutex_);
    if (sessions_.size() >= options_.max_sessions) {
      return absl::ResourceExhaustedError(
          cat("too many MCP sessions (", options_.max_sessions,
              "); end one with DELETE or wait for idle ones to expire"));
    }
  }
  auto session = std::make_shared<Session>(fresh_session_id());
  mcp::McpServerOptions server_options;
  server_options.max_message_bytes = std::numeric_limits<size_t>::max();  // HTTP caps the body
  server_options.requested_by = "mcp-http";
  server_options.instructions =
      "LOTUS is an AI operating system. Its tools are named module__tool (fs__read, "
      "memory__recall, shell__run); calls go through its permission policy, so a denied "
      "call returns an error result.";
  std::weak_ptr<Session> weak = session;
  auto server = mcp::McpServer::create(
      nucleus_.bus(), nucleus_.tools(), nucleus_.tool_broker(), content_, std::move(server_options),
      [weak](std::string message, const mcp::McpServer::Route& route) {
        if (auto s = weak.lock()) s->deliver(std::move(message), route);
      });
  if (Status started = server->start(); !started.ok()) return started;
  session->attach(std::move(server));
  std::lock_guard lock(mutex_);
  sessions_[session->id()] = session;
  return session;
}

void McpEndpoint::name_session(Session& session, HttpResponse& response) {
  if (session.server().initialized()) {
    response.set(kSessionHeader, session.id());
    return;
  }
  // initialize failed: the session never began.
  {
    std::lock_guard lock(mutex_);
    sessions_.erase(session.id());
  }
  session.close();
}

std::shared_ptr<Session> McpEndpoint::session_of(const HttpRequest& request,
                                                 HttpResponse* refusal) {
  std::string_view version = request[kVersionHeader];
  if (!version.empty() &&
      std::find(std::begin(mcp::kProtocolVersions), std::end(mcp::kProtocolVersions), version) ==
          std::end(mcp::kProtocolVersions)) {
    *refusal = rpc_error_response(
        http::status::bad_request, Json(), kServerError,
        cat("Bad Request: unsupported MCP-Protocol-Version \"", version,
            "\"; supported: ", mcp::kProtocolVersions[0], ", ", mcp::kProtocolVersions[1], ", ",
            mcp::kProtocolVersions[2], ", ", mcp::kProtocolVersions[3]));
    return nullptr;
  }
  std::string_view id = request[kSessionHeader];
  if (id.empty()) {
    *refusal = rpc_error_response(
        http::status::bad_request, Json(), kServerError,
        "Bad Request: the Mcp-Session-Id header is required (initialize gives one)");
    return nullptr;
  }
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mutex_);
    if (auto it = sessions_.find(id); it != sessions_.end()) session = it->second;
  }
  if (session && session->expired(options_.idle_timeout)) {
    {
      std::lock_guard lock(mutex_);
      sessions_.erase(session->id());
    }
    session->close();
    session.reset();
  }
  if (!session) {
    *refusal = rpc_error_response(
        http::status::not_found, Json(), kServerError,
        cat("Session not found: ", id, " is unknown or has expired; send initialize again"));
    return nullptr;
  }
  session->touch();
  return session;
}

asio::awaitable<void> McpEndpoint::post(const RequestContext& c, ResponseWriter& out) {
  const HttpRequest& request = c.request;
  std::string_view accept = request[http::field::accept];
  const bool sse_ok = accepts(accept, "text/event-stream");
  const bool json_ok =
      accept.empty() || accepts(accept, "application/json") || accepts(accept, "*/*");
  if (!sse_ok && !json_ok) {
    auto replying = out.reply(rpc_error_response(
        http::status::not_acceptable, Json(), kServerError,
        "Not Acceptable: Accept must include application/json and text/event-stream"));
    co_await std::move(replying);
    co_return;
  }
  std::string_view type = request[http::field::content_type];
  if (!type.starts_with("application/json")) {
    auto replying =
        out.reply(rpc_error_response(http::status::unsupported_media_type, Json(), kServerError,
                                     "Unsupported Media Type: the body must be application/json"));
    co_await std::move(replying);
    co_return;
  }
  const std::string& body = request.body();
  mcp::RpcMessage message = mcp::parse_message(body);
  if (message.kind == mcp::RpcMessage::Kind::kInvalid) {
    auto replying = out.reply(rpc_error_response(http::status::bad_request, message.id,
                                                 message.problem.code, message.problem.message));
    co_await std::move(replying);
    co_return;
  }
  const bool initialize =
      message.kind == mcp::RpcMessage::Kind::kRequest && message.method == "initialize";
  std::shared_ptr<Session> session;
  if (initialize) {
    auto created = create_session();
    if (!created.ok()) {
      auto replying =
          out.reply(rpc_error_response(http::status::service_unavailable, message.id, kServerError,
                                       std::string(message_of(created.status()))));
      co_await std::move(replying);
      co_return;
    }
    session = *std::move(created);
  } else {
    HttpResponse refusal;
    session = session_of(request, &refusal);
    if (!session) {
      auto replying = out.reply(std::move(refusal));
      co_await std::move(replying);
      co_return;
    }
  }

  if (message.kind != mcp::RpcMessage::Kind::kRequest) {
    if (message.method == "notifications/cancelled" && message.params.contains("requestId")) {
      session->cancelled(message.params["requestId"]);
    }
    session->server().handle(std::move(message));
    HttpResponse accepted{http::status::accepted, 11};
    accepted.prepare_payload();
    auto replying = out.reply(std::move(accepted));
    co_await std::move(replying);
    co_return;
  }

  auto executor = co_await asio::this_coro::executor;
  auto outbox = std::make_shared<Outbox>(executor);
  if (!session->expect(message.id, outbox)) {
    auto replying = out.reply(rpc_error_response(
        http::status::bad_request, message.id, mcp::kInvalidRequest,
        cat("invalid request: id ", message.id.dump(), " is already in use in this session")));
    co_await std::move(replying);
    co_return;
  }
  {
    // This thread will only wait for the reply now: the call's first hops
    // (the module's handler) may run on it next rather than wake another.
    ContinuationScope continuation;
    session->server().handle(std::move(message));  // parsed once, above
  }

  // The reply as one JSON body (naming the session when it answers initialize).
  auto json_answer = [&](std::string json_text) {
    HttpResponse response{http::status::ok, 11};
    response.set(http::field::content_type, "application/json");
    if (initialize) name_session(*session, response);
    response.body() = std::move(json_text);
    response.prepare_payload();
    return response;
  };
  bool streaming = false;
  for (;;) {
    auto taking = outbox->take(Clock::now() + options_.keepalive);
    Outbox::Batch batch = co_await std::move(taking);
    if (!streaming) {
      // A reply with nothing before it is plain JSON, when the client takes it.
      if (batch.final && batch.messages.size() == 1 && (json_ok || !sse_ok)) {
        auto replying = out.reply(json_answer(std::move(batch.messages.front())));
        co_await std::move(replying);
        co_return;
      }
      if (batch.messages.empty() && !batch.done) continue;
      if (!sse_ok) {
        // Only JSON is taken: notifications have nowhere to go, the reply waits.
        if (batch.final) {
          auto replying = out.reply(json_answer(std::move(batch.messages.back())));
          co_await std::move(replying);
          co_return;
        }
        if (batch.done) break;
        continue;
      }
      if (batch.messages.empty() && batch.done) break;  // cancelled before anything was said
      HttpResponse header{http::status::ok, 11};
      header.set(http::field::content_type, "text/event-stream");
      header.set(http::field::cache_control, "no-cache");
      if (initialize) name_session(*session, header);
      auto starting = out.start_stream(std::move(header));
      if (bool ok = co_await std::move(starting); !ok) co_return;
      streaming = true;
    }
    std::string chunk;
    for (const std::string& m : batch.messages) chunk += sse_event(m);
    if (chunk.empty() && !batch.done) chunk = ": keepalive\n\n";
    auto sending = out.send_chunk(chunk);
    if (bool ok = co_await std::move(sending); !ok) co_return;
    if (batch.done) {
      auto ending = out.end_stream();
      co_await std::move(ending);
      co_return;
    }
  }
  // Cancelled before any reply: nothing to send; the client has gone on.
  HttpResponse accepted{http::status::accepted, 11};
  accepted.prepare_payload();
  auto replying = out.reply(std::move(accepted));
  co_await std::move(replying);
}

asio::awaitable<void> McpEndpoint::get(const RequestContext& c, ResponseWriter& out) {
  if (!accepts(c.request[http::field::accept], "text/event-stream")) {
    auto replying =
        out.reply(rpc_error_response(http::status::not_acceptable, Json(), kServerError,
                                     "Not Acceptable: the session stream is text/event-stream"));
    co_await std::move(replying);
    co_return;
  }
  HttpResponse refusal;
  std::shared_ptr<Session> session = session_of(c.request, &refusal);
  if (!session) {
    auto replying = out.reply(std::move(refusal));
    co_await std::move(replying);
    co_return;
  }
  auto executor = co_await asio::this_coro::executor;
  auto outbox = std::make_shared<Outbox>(executor);
  if (!session->open_stream(outbox)) {
    auto replying =
        out.reply(rpc_error_response(http::status::conflict, Json(), kServerError,
                                     "Conflict: this session's stream is open already"));
    co_await std::move(replying);
    co_return;
  }
  HttpResponse header{http::status::ok, 11};
  header.set(http::field::content_type, "text/event-stream");
  header.set(http::field::cache_control, "no-cache");
  auto starting = out.start_stream(std::move(header));
  if (bool ok = co_await std::move(starting); !ok) co_return;
  for (;;) {
    auto taking = outbox->take(Clock::now() + options_.keepalive);
    Outbox::Batch batch = co_await std::move(taking);
    std::string chunk;
    for (const std::string& m : batch.messages) chunk += sse_event(m);
    if (chunk.empty() && !batch.done) chunk = ": keepalive\n\n";
    auto sending = out.send_chunk(chunk);
    if (bool ok = co_await std::move(sending); !ok) co_return;
    if (batch.done) break;
    session->touch();
  }
  auto ending = out.end_stream();
  co_await std::move(ending);
}

asio::awaitable<void> McpEndpoint::remove(const RequestContext& c, ResponseWriter& out) {
  HttpResponse refusal;
  std::shared_ptr<Session> session = session_of(c.request, &refusal);
  if (!session) {
    auto replying = out.reply(std::move(refusal));
    co_await std::move(replying);
    co_return;
  }
  {
    std::lock_guard lock(mutex_);
    sessions_.erase(session->id());
  }
  session->close();
  HttpResponse done{http::status::ok, 11};
  done.prepare_payload();
  auto replying = out.reply(std::move(done));
  co_await std::move(replying);
}

}  // namespace lotus::api
