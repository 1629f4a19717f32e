#include "api/http_server.h"

#include <absl/cleanup/cleanup.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "lotus/strings.h"

namespace lotus::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kHeaderLimit = 16 * 1024;
constexpr std::string_view kTokenProtocolPrefix = "lotus.token.";

// Browsers cannot set headers on a WebSocket, so the page offers its token
// as a subprotocol "lotus.token.<token>" beside "lotus.events".
std::string token_from_protocols(std::string_view offered) {
  while (!offered.empty()) {
    size_t comma = offered.find(',');
    std::string_view item = offered.substr(0, comma);
    offered = comma == std::string_view::npos ? std::string_view() : offered.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.starts_with(kTokenProtocolPrefix)) {
      return std::string(item.substr(kTokenProtocolPrefix.size()));
    }
  }
  return {};
}

// Parses what of the body came with the header (for a small request, all
// of it; a GET has none). Beast completes a read that needs no I/O by
// posting its completion, which wakes another pool thread for nothing.
beast::error_code parse_buffered_body(http::request_parser<http::string_body>& parser,
                                      beast::flat_buffer& buffer) {
  beast::error_code ec;
  while (!parser.is_done() && buffer.size() > 0) {
    const size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == http::error::need_more) return {};
    if (ec || used == 0) break;
  }
  return ec;
}

bool is_client_gone(const beast::error_code& ec) {
  return ec == beast::http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
         ec == beast::error::timeout || ec == asio::error::broken_pipe;
}

}  // namespace

struct HttpServer::Coroutine {
  uint64_t id = 0;
  asio::any_io_executor strand;
  // Both used on the strand only.
  asio::cancellation_signal cancel;
  bool ended = false;
  // A connection's: its socket while it reads or writes a request on it
  // (strand only), and when the request it waits for is overdue (steady
  // clock ticks; 0 while a route works on the request). The sweep reads it.
  tcp::socket* socket = nullptr;
  std::atomic<int64_t> deadline{0};

  void arm(std::chrono::milliseconds timeout) {
    deadline.store((std::chrono::steady_clock::now() + timeout).time_since_epoch().count(),
                   std::memory_order_relaxed);
  }
  void disarm() { deadline.store(0, std::memory_order_relaxed); }
  bool overdue(int64_t now) const {
    const int64_t due = deadline.load(std::memory_order_relaxed);
    return due != 0 && due < now;
  }
};

HttpServer::HttpServer(ApiOptions options, std::string token, Router router, Bus& bus)
    : options_(std::move(options)),
      guard_(std::move(token), options_.host, options_.port, options_.allowed_hosts,
             options_.allowed_origins),
      router_(std::move(router)),
      bus_(bus),
      acceptor_(asio::make_strand(bus.executor())) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() {
  beast::error_code ec;
  auto address = asio::ip::make_address(options_.host, ec);
  if (ec)
    return absl::InvalidArgumentError(cat("api.host \"", options_.host, "\": ", ec.message()));
  tcp::endpoint endpoint(address, options_.port);
  const std::string where = cat(options_.host, ":", options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (ec == asio::error::address_in_use) {
    return absl::UnavailableError(cat("cannot listen on ", where,
                                      ": the port is in use (is another lotus serve running? "
                                      "choose another with api.port or --port)"));
  }
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(cat("cannot listen on ", where, ": ", ec.message()));
  port_ = acceptor_.local_endpoint().port();
  guard_.set_port(port_);
  started_ = true;
  spawn(acceptor_.get_executor(), accept_loop());
  spawn(acceptor_.get_executor(), sweep_idle());
  return absl::OkStatus();
}

void HttpServer::spawn(const asio::any_io_executor& strand, asio::awaitable<void> work) {
  auto coroutine = std::make_shared<Coroutine>();
  coroutine->strand = strand;
  spawn(std::move(coroutine), std::move(work));
}

void HttpServer::spawn(std::shared_ptr<Coroutine> coroutine, asio::awaitable<void> work) {
  // Counted from here, so stop() also waits for a start still queued.
  {
    std::lock_guard lock(coroutines_mutex_);
    coroutine->id = next_coroutine_++;
    coroutines_.emplace(coroutine->id, coroutine);
  }
  // Started on the strand, where stop()'s cancellation is emitted too: a
  // cancellation signal is not for use from two threads at once.
  const asio::any_io_executor strand = coroutine->strand;
  asio::dispatch(strand, [this, coroutine, work = std::move(work)]() mutable {
    auto on_end = [this, coroutine](std::exception_ptr error) {
      coroutine->ended = true;
      if (error && !stopping_.load()) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          spdlog::warn("api: a connection ended on an error: {}", e.what());
        } catch (...) {
          spdlog::warn("api: a connection ended on an unknown error");
        }
      }
      finished(*coroutine);
    };
    asio::co_spawn(coroutine->strand, std::move(work),
                   asio::bind_cancellation_slot(coroutine->cancel.slot(), std::move(on_end)));
    // stop() may have emitted before the coroutine was there to hear it.
    if (stopping_.load() && !coroutine->ended) {
      coroutine->cancel.emit(asio::cancellation_type::terminal);
    }
  });
}

void HttpServer::finished(const Coroutine& coroutine) {
  std::lock_guard lock(coroutines_mutex_);
  coroutines_.erase(coroutine.id);
  if (coroutines_.empty()) coroutines_ended_.notify_all();
}

void HttpServer::close_event_sockets(std::chrono::milliseconds backstop) {
  auto each_socket = [this](void (EventSocket::*act)()) {
    std::lock_guard lock(sockets_mutex_);
    for (auto& weak : sockets_) {
      if (auto socket = weak.lock()) (*socket.*act)();
    }
  };
  // Every stream registered, not only those counted as connected: one whose
  // handshake is still going out is told to close as soon as it is done.
  auto open = [this] {
    std::lock_guard lock(sockets_mutex_);
    return std::any_of(sockets_.begin(), sockets_.end(), [](const std::weak_ptr<EventSocket>& w) {
      auto socket = w.lock();  // gone: its connection ended before run()
      return socket && !socket->ended();
    });
  };
  each_socket(&EventSocket::stop);
  // Each ends by itself, EventSocket::kCloseGrace after its close frame;
  // the backstop is for one whose thread never came to send it.
  auto deadline = std::chrono::steady_clock::now() + backstop;
  while (open() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (open()) each_socket(&EventSocket::abort);
}

void HttpServer::stop() {
  if (!started_) return;
  {
    std::lock_guard lock(coroutines_mutex_);
    if (stopping_.exchange(true)) return;
  }
  asio::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
  });
  // Event streams are told goodbye with a close frame, given a moment.
  close_event_sockets(std::chrono::seconds(3));
  std::vector<std::shared_ptr<Coroutine>> running;
  {
    std::lock_guard lock(coroutines_mutex_);
    for (const auto& [id, coroutine] : coroutines_) running.push_back(coroutine);
  }
  // Whatever the rest wait for - the next request, a module's reply, an
  // SSE stream's next message - is cancelled; they end at their next step.
  for (auto& coroutine : running) {
    asio::post(coroutine->strand, [coroutine] {
      if (!coroutine->ended) coroutine->cancel.emit(asio::cancellation_type::terminal);
    });
  }
  std::unique_lock lock(coroutines_mutex_);
  if (!coroutines_ended_.wait_for(lock, std::chrono::seconds(10),
                                  [this] { return coroutines_.empty(); })) {
    // Only a route that ignores cancellation gets here; say so rather than
    // hang the shutdown.
    spdlog::error("api: {} connection(s) did not finish within 10 s of stopping",
                  coroutines_.size());
  }
}

std::string HttpServer::url() const {
  const bool v6 = options_.host.find(':') != std::string::npos;
  return cat("http://", v6 ? "[" : "", options_.host, v6 ? "]" : "", ":", port_);
}

asio::awaitable<void> HttpServer::accept_loop() {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(
        asio::make_strand(bus_.executor()), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (stopping_.load() || ec == asio::error::operation_aborted) co_return;
      spdlog::warn("api: accept failed: {}", ec.message());
      continue;
    }
    stats_.connections.fetch_add(1, std::memory_order_relaxed);
    socket.set_option(tcp::no_delay(true), ec);
    // Responses are written at once when the socket takes them
    // (write_response); async operations are unaffected.
    socket.non_blocking(true, ec);
    auto connection = std::make_shared<Coroutine>();
    connection->strand = socket.get_executor();
    auto serving = serve(beast::tcp_stream(std::move(socket)), connection);
    spawn(std::move(connection), std::move(serving));
  }
}

asio::awaitable<void> HttpServer::sweep_idle() {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto interval =
      std::min<std::chrono::milliseconds>(std::chrono::seconds(1), options_.request_timeout / 4);
  for (;;) {
    beast::error_code ec;
    timer.expires_after(interval);
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec || stopping_.load()) co_return;
    const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
    std::vector<std::shared_ptr<Coroutine>> late;
    {
      std::lock_guard lock(coroutines_mutex_);
      for (const auto& [id, coroutine] : coroutines_) {
        if (coroutine->overdue(now)) late.push_back(coroutine);
      }
    }
    for (auto& coroutine : late) {
      // Checked again on the strand: the connection may have read on since.
      asio::post(coroutine->strand, [coroutine, now] {
        if (coroutine->ended || coroutine->socket == nullptr || !coroutine->overdue(now)) return;
        beast::error_code ignored;
        coroutine->socket->close(ignored);
      });
    }
  }
}

void HttpServer::count(const HttpResponse& response) {
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  const unsigned code = response.result_int();
  if (code == 401) stats_.unauthorized.fetch_add(1, std::memory_order_relaxed);
  if (code == 403) stats_.forbidden.fetch_add(1, std::memory_order_relaxed);
  if (code >= 400 && code < 500) stats_.client_errors.fetch_add(1, std::memory_order_relaxed);
  if (code >= 500) stats_.server_errors.fetch_add(1, std::memory_order_relaxed);
}

std::optional<HttpResponse> HttpServer::refuse(const HttpRequest& request, bool needs_token) const {
  if (auto why = guard_.check_host(request[http::field::host])) {
    return error_response(http::status::forbidden, *why);
  }
  if (auto why = guard_.check_origin(request[http::field::origin])) {
    return error_response(http::status::forbidden, *why);
  }
  if (!needs_token) return std::nullopt;
  bool authorized = guard_.check_authorization(request[http::field::authorization]);
  if (!authorized && beast::websocket::is_upgrade(request)) {
    authorized =
        guard_.check_token(token_from_protocols(request[http::field::sec_websocket_protocol]));
  }
  if (authorized) return std::nullopt;
  HttpResponse response = error_response(
      http::status::unauthorized,
      request[http::field::authorization].empty()
          ? "this endpoint needs the API token: send \"Authorization: Bearer <token>\" (the token "
            "is in the api-token file of the LOTUS config folder)"
          : "the API token does not match (see the api-token file of the LOTUS config folder)");
  response.set(http::field::www_authenticate, "Bearer realm=\"lotus\"");
  return response;
}

asio::awaitable<HttpResponse> HttpServer::answer(const HttpRequest& request) {
  auto target = parse_target(request.target());
  if (!target.ok()) co_return error_response(target.status());
  Router::Match match = router_.find(request.method(), target->path);
  if (match.route == nullptr) {
    if (auto refusal = refuse(request, false)) co_return *refusal;
    if (match.status == http::status::method_not_allowed) {
      HttpResponse response = error_response(
          match.status, cat(std::string(request.method_string()), " is not allowed on ",
                            target->path, "; allowed: ", match.allow));
      response.set(http::field::allow, match.allow);
      co_return response;
    }
    co_return error_response(
        http::status::not_found,
        cat("no such endpoint: ", target->path, " (the API is described at /api/openapi.json)"));
  }
  if (auto refusal = refuse(request, match.route->spec.needs_token)) co_return *refusal;
  RequestContext context{request, std::move(match.params), std::move(target->query), Json()};
  if (match.route->body_schema) {
    auto body = json_object_body(request);
    if (!body.ok()) co_return error_response(body.status());
    if (Status valid = match.route->body_schema->validate(*body); !valid.ok()) {
      co_return error_response(http::status::bad_request,
                               cat("invalid request body: ", message_of(valid)));
    }
    context.body = *std::move(body);
  }
  std::string failure;
  try {
    auto handling = match.route->handler(context);
    HttpResponse response = co_await std::move(handling);
    co_return response;
  } catch (const std::exception& e) {
    if (stopping_.load()) throw;  // cancelled by stop(): nobody waits for an answer
    failure = e.what();
  }
  spdlog::error("api: {} {} failed: {}", std::string(request.method_string()),
                std::string(request.target()), failure);
  co_return error_response(http::status::internal_server_error, cat("internal error: ", failure));
}

asio::awaitable<void> HttpServer::serve(beast::tcp_stream stream, std::shared_ptr<Coroutine> self) {
  self->socket = &stream.socket();
  absl::Cleanup leave = [&self] {
    self->socket = nullptr;
    self->disarm();
  };
  beast::flat_buffer buffer;
  beast::error_code ec;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(options_.max_body_bytes);
    self->arm(options_.request_timeout);  // the sweep closes the socket when overdue
    co_await http::async_read_header(stream, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!is_client_gone(ec) && ec != http::error::end_of_stream) {
        // A Content-Length above the body limit already fails the header.
        HttpResponse response =
            ec == http::error::body_limit
                ? error_response(http::status::payload_too_large,
                                 cat("the request body is larger than ", options_.max_body_bytes,
                                     " bytes (api.max_body_bytes)"))
                : error_response(ec == http::error::header_limit
                                     ? http::status::request_header_fields_too_large
                                     : http::status::bad_request,
                                 cat("cannot read the request: ", ec.message()));
        response.keep_alive(false);
        count(response);
        auto refusing = write_response(stream, response);
        ec = co_await std::move(refusing);
      }
      break;
    }
    auto& header = parser.get();
    if (auto length = parser.content_length(); length && *length > options_.max_body_bytes) {
      HttpResponse response =
          error_response(http::status::payload_too_large,
                         cat("the request body has ", *length, " bytes; at most ",
                             options_.max_body_bytes, " are accepted (api.max_body_bytes)"));
      response.keep_alive(false);
      count(response);
      auto refusing = write_response(stream, response);
      ec = co_await std::move(refusing);
      break;
    }
    if (beast::iequals(header[http::field::expect], "100-continue")) {
      http::response<http::empty_body> go_on{http::status::continue_, header.version()};
      co_await http::async_write(stream, go_on, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    } else {
      ec = parse_buffered_body(parser, buffer);
    }
    if (!ec && !parser.is_done()) {
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
    }
    if (ec) {
      if (is_client_gone(ec)) break;
      HttpResponse response =
          error_response(ec == http::error::body_limit ? http::status::payload_too_large
                                                       : http::status::bad_request,
                         ec == http::error::body_limit
                             ? cat("the request body is larger than ", options_.max_body_bytes,
                                   " bytes (api.max_body_bytes)")
                             : cat("cannot read the request: ", ec.message()));
      response.keep_alive(false);
      count(response);
      auto refusing = write_response(stream, response);
      ec = co_await std::move(refusing);
      break;
    }
    self->disarm();  // the request is in; a route may take its time
    HttpRequest request = parser.release();
    if (beast::websocket::is_upgrade(request)) {
      self->socket = nullptr;  // the event socket keeps its own time
      auto streaming = serve_event_socket(std::move(stream), std::move(request));
      co_await std::move(streaming);
      co_return;
    }
    if (auto target = parse_target(request.target()); target.ok()) {
      Router::Match match = router_.find(request.method(), target->path);
      if (match.route != nullptr && match.route->stream_handler) {
        ResponseWriter writer(stream, request.keep_alive() && !stopping_.load(),
                              [this](const HttpResponse& r) { count(r); });
        if (auto refusal = refuse(request, match.route->spec.needs_token)) {
          auto replying = writer.reply(*std::move(refusal));
          co_await std::move(replying);
        } else if (request.method() == http::verb::head) {
          auto replying = writer.reply(error_response(
              http::status::method_not_allowed, cat("HEAD is not offered on ", target->path)));
          co_await std::move(replying);
        } else {
          RequestContext context{request, std::move(match.params), std::move(target->query),
                                 Json()};
          try {
            auto handling = match.route->stream_handler(context, writer);
            co_await std::move(handling);
          } catch (const std::exception& e) {
            if (stopping_.load()) throw;
            spdlog::error("api: {} {} failed: {}", std::string(request.method_string()),
                          std::string(request.target()), e.what());
            writer.close_after();
          }
        }
        if (!writer.keep_alive() || stopping_.load()) break;
        continue;
      }
    }
    auto answering = answer(request);
    HttpResponse response = co_await std::move(answering);
    response.set(http::field::server, "lotus");
    response.set("x-content-type-options", "nosniff");
    response.keep_alive(request.keep_alive() && !stopping_.load());
    if (request.method() == http::verb::head) response.body().clear();
    count(response);
    const bool keep_alive = response.keep_alive();
    auto writing = write_response(stream, response);
    ec = co_await std::move(writing);
    if (ec || !keep_alive) break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> HttpServer::serve_event_socket(beast::tcp_stream stream,
                                                     HttpRequest request) {
  beast::error_code ec;
  auto fail = [&](HttpResponse response) {
    response.keep_alive(false);
    count(response);
    return response;
  };
  auto target = parse_target(request.target());
  std::optional<HttpResponse> refusal;
  if (!target.ok()) {
    refusal = error_response(target.status());
  } else if (target->path != kEventStreamPath) {
    refusal = error_response(http::status::not_found,
                             cat("WebSocket upgrades are offered on ", kEventStreamPath,
                                 " only, not on ", target->path));
  } else {
    refusal = refuse(request, true);
  }
  EventSocket::Options options;
  options.queue_limit = options_.socket_queue;
  if (!refusal) {
    if (auto it = target->query.find("pattern"); it != target->query.end() && !it->second.empty()) {
      options.pattern = it->second;
    }
    if (Status s = validate_pattern(options.pattern); !s.ok()) {
      refusal = error_response(http::status::bad_request, cat("pattern: ", message_of(s)));
    }
  }
  if (!refusal) {
    if (auto it = target->query.find("filter"); it != target->query.end() && !it->second.empty()) {
      Json spec = Json::parse(it->second, nullptr, false);
      auto filter = spec.is_discarded()
                        ? Result<SubscriptionFilter>(absl::InvalidArgumentError("not valid JSON"))
                        : SubscriptionFilter::parse(spec);
      if (!filter.ok()) {
        refusal =
            error_response(http::status::bad_request, cat("filter: ", message_of(filter.status())));
      } else {
        options.filter = *std::move(filter);
      }
    }
  }
  if (refusal) {
    HttpResponse response = fail(*std::move(refusal));
    auto refusing = write_response(stream, response);
    ec = co_await std::move(refusing);
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    co_return;
  }
  const std::string offered(request[http::field::sec_websocket_protocol]);
  if (offered.find("lotus.events") != std::string::npos) options.subprotocol = "lotus.events";
  stats_.requests.fetch_add(1, std::memory_order_relaxed);
  auto socket =
      std::make_shared<EventSocket>(std::move(stream), bus_, std::move(options), socket_stats_);
  {
    std::lock_guard lock(sockets_mutex_);
    sockets_.remove_if([](const std::weak_ptr<EventSocket>& w) { return w.expired(); });
    sockets_.push_back(socket);
  }
  if (stopping_.load()) socket->stop();
  auto running = socket->run(std::move(request));
  co_await std::move(running);
}

}  // namespace lotus::api
