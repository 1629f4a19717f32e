#include "api/api_service.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "api/await_task.h"
#include "api/http_server.h"
#include "api/openapi.h"
#include "api/prometheus.h"
#include "lotus/strings.h"

namespace lotus::api {

namespace asio = boost::asio;

namespace {

constexpr auto kMemoryTimeout = std::chrono::seconds(30);
constexpr auto kHistoryTimeout = std::chrono::seconds(10);
constexpr int64_t kDefaultAnswerTimeoutMs = 120'000;
constexpr auto kHealthMaxAge = std::chrono::milliseconds(100);

Json object_schema(Json properties, std::vector<std::string> required = {}) {
  Json schema = {{"type", "object"}, {"properties", std::move(properties)}};
  if (!required.empty()) schema["required"] = required;
  return schema;
}

RouteSpec spec(http::verb method, std::string pattern, std::string summary, bool needs_token = true,
               Json body_schema = Json(), std::string produces = "application/json") {
  return RouteSpec{method,      std::move(pattern),     std::move(summary),
                   needs_token, std::move(body_schema), std::move(produces)};
}

// Where the web UI's files are: LOTUS_WEB_DIR, else the source tree's web/.
std::filesystem::path web_dir() {
  if (const char* dir = std::getenv("LOTUS_WEB_DIR"); dir != nullptr && *dir != '\0') return dir;
  return std::filesystem::path(LOTUS_SOURCE_DIR) / "web";
}

std::string content_type_of(std::string_view name) {
  if (name.ends_with(".html")) return "text/html; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  if (name.ends_with(".svg")) return "image/svg+xml";
  if (name.ends_with(".json")) return "application/json";
  return "application/octet-stream";
}

bool safe_asset_name(std::string_view name) {
  if (name.empty() || name.front() == '.') return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

// Waits, on the caller's strand, for the first event a bus tap accepts.
class EventWaiter : public std::enable_shared_from_this<EventWaiter> {
 public:
  explicit EventWaiter(asio::any_io_executor executor) : timer_(executor) {}

  void deliver(const EventPtr& event) {
    {
      std::lock_guard lock(mutex_);
      if (event_) return;
      event_ = event;
    }
    asio::post(timer_.get_executor(), [self = shared_from_this()] { self->timer_.cancel(); });
  }
  void expect_within(std::chrono::milliseconds timeout) { timer_.expires_after(timeout); }
  EventPtr taken() {
    std::lock_guard lock(mutex_);
    return event_;
  }
  asio::awaitable<EventPtr> wait() {
    if (EventPtr ready = taken()) co_return ready;
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return taken();
  }

 private:
  asio::steady_timer timer_;
  std::mutex mutex_;
  EventPtr event_;
};

}  // namespace

ApiService::ApiService(Nucleus& nucleus) : nucleus_(nucleus), mcp_(nucleus) {
  // /api/approvals shows the calls waiting for a person, and the web UI
  // lists them when it opens: with this service up, an approval waits for an
  // answer even while nobody watches the event stream.
  if (auto* broker = nucleus_.tool_broker()) broker->add_approver();
}

ApiService::~ApiService() {
  blocking_.join();
  if (auto* broker = nucleus_.tool_broker()) broker->remove_approver();
}

Router ApiService::routes() {
  Router router;
  auto add = [&](RouteSpec spec, Awaitable (ApiService::*method)(const RequestContext&)) {
    specs_.push_back(spec);
    router.add(std::move(spec),
               [this, method](const RequestContext& c) { return (this->*method)(c); });
  };
  using http::verb;
  add(spec(verb::get, "/health", "Health of every module and of the process", false),
      &ApiService::health);
  add(spec(verb::get, "/metrics", "Metrics in the Prometheus text format", true, Json(),
           "text/plain; version=0.0.4"),
      &ApiService::metrics);
  add(spec(verb::get, "/api/openapi.json", "This API, described in OpenAPI 3.1"),
      &ApiService::openapi);
  add(spec(verb::get, "/api/modules", "Modules with version, state, health and dependencies"),
      &ApiService::list_modules);
  add(spec(verb::post, "/api/modules", "Load a module by name (from the module folders) or folder",
           true, object_schema({{"name", {{"type", "string"}, {"minLength", 1}}}}, {"name"})),
      &ApiService::load_module);
  add(spec(verb::post, "/api/modules/{name}/unload", "Unload a module (its dependents first)"),
      &ApiService::unload_module);
  add(spec(verb::post, "/api/modules/{name}/reload", "Reload a module without losing its events"),
      &ApiService::reload_module);
  add(spec(verb::get, "/api/tools", "Every tool of every running module, as models see them"),
      &ApiService::list_tools);
  add(spec(verb::post, "/api/tools/{tool}/call",
           "Call a tool (module.tool) through the permission policy", true,
           object_schema({{"arguments", {{"type", "object"}}}})),
      &ApiService::call_tool);
  add(spec(verb::get, "/api/approvals", "Tool calls waiting for a person's approval"),
      &ApiService::list_approvals);
  add(spec(verb::post, "/api/approvals/{id}", "Approve or deny a waiting tool call", true,
           object_schema({{"approved", {{"type", "boolean"}}}, {"reason", {{"type", "string"}}}},
                         {"approved"})),
      &ApiService::answer_approval);
  add(spec(verb::post, "/api/conversations/{id}/messages",
           "Send a message to the reasoning engine; with wait, answer when the task completes",
           true,
           object_schema(
               {{"text", {{"type", "string"}, {"minLength", 1}}},
                {"wait", {{"type", "boolean"}}},
                {"timeout_ms", {{"type", "integer"}, {"minimum", 1}, {"maximum", 3600000}}}},
               {"text"})),
      &ApiService::send_message);
  add(spec(verb::get, "/api/conversations/{id}", "A conversation's messages"),
      &ApiService::conversation);
  add(spec(verb::post, "/api/memory", "Remember something", true,
           object_schema({{"content", {{"type", "string"}, {"minLength", 1}}},
                          {"type", {{"type", "string"}}},
                          {"importance", {{"type", "number"}, {"minimum", 0}, {"maximum", 1}}},
                          {"collection", {{"type", "string"}}},
                          {"metadata", {{"type", "object"}}}},
                         {"content"})),
      &ApiService::remember);
  add(spec(verb::post, "/api/memory/forget",
           "Forget one memory by id, or every one a filter matches", true,
           object_schema(
               {{"id", {{"type", "string"}, {"minLength", 1}}}, {"filter", {{"type", "object"}}}})),
      &ApiService::forget);
  add(spec(verb::get, "/api/memory/stats", "Memory counts per tier, index and embedder"),
      &ApiService::memory_stats);
  add(spec(verb::post, "/api/memory/search", "Recall memories by meaning and by keyword", true,
           object_schema({{"query", {{"type", "string"}, {"minLength", 1}}},
                          {"limit", {{"type", "integer"}, {"minimum", 1}, {"maximum", 1000}}},
                          {"filter", {{"type", "object"}}}},
                         {"query"})),
      &ApiService::recall);
  add(spec(verb::post, "/api/events", "Publish an event on the bus", true,
           object_schema({{"channel", {{"type", "string"}, {"minLength", 1}}},
                          {"data", {{"type", "object"}}}},
                         {"channel"})),
      &ApiService::publish);
  add(spec(verb::get, "/", "The web UI", false, Json(), "text/html"), &ApiService::ui_asset);
  add(spec(verb::get, "/ui/{file}", "The web UI's files", false, Json(), "text/html"),
      &ApiService::ui_asset);
  for (RouteSpec& mcp_spec : mcp_.add_routes(router)) specs_.push_back(std::move(mcp_spec));
  return router;
}

std::shared_ptr<const std::string> ApiService::health_body() {
  // One builder at a time: concurrent probes wait for it rather than all
  // building the same document.
  std::lock_guard lock(health_mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (!health_body_ || now - health_built_ >= kHealthMaxAge) {
    health_body_ = std::make_shared<const std::string>(nucleus_.health().dump());
    health_built_ = now;
  }
  return health_body_;
}

ApiService::Awaitable ApiService::health(const RequestContext&) {
  // 200 while the process answers; "status" says healthy or degraded.
  co_return json_text_response(http::status::ok, *health_body());
}

ApiService::Awaitable ApiService::metrics(const RequestContext&) {
  HttpResponse response{http::status::ok, 11};
  response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  response.body() = render_prometheus(nucleus_.health(), server_);
  response.prepare_payload();
  co_return response;
}

ApiService::Awaitable ApiService::openapi(const RequestContext&) {
  co_return json_response(http::status::ok, openapi_document(specs_, LOTUS_VERSION));
}

ApiService::Awaitable ApiService::list_modules(const RequestContext&) {
  Json health = nucleus_.health();
  Json out = Json::array();
  for (const ModuleSummary& m : nucleus_.modules()) {
    Json entry = {{"name", m.name},   {"version", m.version}, {"type", m.type},
                  {"state", m.state}, {"error", m.error},     {"dependencies", m.dependencies}};
    if (health["modules"].contains(m.name)) entry["health"] = health["modules"][m.name];
    out.push_back(std::move(entry));
  }
  co_return json_response(http::status::ok, Json{{"modules", std::move(out)}});
}

ApiService::Awaitable ApiService::control(std::function<Status()> operation, std::string module,
                                          std::string done) {
  auto home = co_await asio::this_coro::executor;
  co_await asio::post(blocking_.get_executor(), asio::use_awaitable);
  Status status = operation();
  co_await asio::post(home, asio::use_awaitable);
  if (!status.ok()) co_return error_response(status);
  Json entry = {{"name", module}, {"done", done}};
  for (const ModuleSummary& m : nucleus_.modules()) {
    if (m.name == module) entry["state"] = m.state;
  }
  co_return json_response(http::status::ok, entry);
}

ApiService::Awaitable ApiService::load_module(const RequestContext& c) {
  std::string name = c.body["name"].get<std::string>();
  std::string shown = std::filesystem::path(name).filename().string();
  if (shown.empty()) shown = name;
  std::function<Status()> operation = [this, name] { return nucleus_.load_module(name); };
  auto work = control(std::move(operation), shown, "loaded");
  co_return co_await std::move(work);
}

ApiService::Awaitable ApiService::unload_module(const RequestContext& c) {
  std::string name = c.param("name");
  std::function<Status()> operation = [this, name] { return nucleus_.unload_module(name); };
  auto work = control(std::move(operation), name, "unloaded");
  co_return co_await std::move(work);
}

ApiService::Awaitable ApiService::reload_module(const RequestContext& c) {
  std::string name = c.param("name");
  std::function<Status()> operation = [this, name] { return nucleus_.reload_module(name); };
  auto work = control(std::move(operation), name, "reloaded");
  co_return co_await std::move(work);
}

ApiService::Awaitable ApiService::list_tools(const RequestContext&) {
  llm::ToolBroker* broker = nucleus_.tool_broker();
  if (broker == nullptr) {
    co_return error_response(http::status::service_unavailable, "the tool broker is not running");
  }
  co_return json_response(http::status::ok, *broker->tool_listing());
}

ApiService::Awaitable ApiService::call_tool(const RequestContext& c) {
  llm::ToolBroker* broker = nucleus_.tool_broker();
  if (broker == nullptr) {
    co_return error_response(http::status::service_unavailable, "the tool broker is not running");
  }
  const std::string& tool = c.param("tool");
  if (!nucleus_.tools().find(tool)) {
    co_return error_response(http::status::not_found,
                             cat("no tool \"", tool, "\" (GET /api/tools lists them)"));
  }
  llm::ToolCallRequest request;
  request.tool = tool;
  request.arguments = c.body.value("arguments", Json::object());
  request.call_id = EventId::generate().to_string();
  request.trace_id = request.call_id;
  request.requested_by = "api";
  auto call = await_task(broker->call(std::move(request)));
  llm::ToolAnswer answer = co_await std::move(call);
  co_return json_response(http::status::ok, answer.to_json());
}

ApiService::Awaitable ApiService::list_approvals(const RequestContext&) {
  llm::ToolBroker* broker = nucleus_.tool_broker();
  Json pending = broker ? broker->pending_approvals() : Json::array();
  co_return json_response(http::status::ok, Json{{"approvals", std::move(pending)}});
}

ApiService::Awaitable ApiService::answer_approval(const RequestContext& c) {
  llm::ToolBroker* broker = nucleus_.tool_broker();
  if (broker == nullptr) {
    co_return error_response(http::status::service_unavailable, "the tool broker is not running");
  }
  const bool approved = c.body["approved"].get<bool>();
  Status status = broker->answer_approval(c.param("id"), approved,
                                          c.body.value("reason", approved ? "" : "denied via API"));
  if (!status.ok()) co_return error_response(status);
  co_return json_response(http::status::ok,
                          Json{{"approval_id", c.param("id")}, {"approved", approved}});
}

ApiService::Awaitable ApiService::send_message(const RequestContext& c) {
  const std::string& conversation = c.param("id");
  const bool plain =
      !conversation.empty() && conversation.size() <= 128 &&
      std::all_of(conversation.begin(), conversation.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
      });
  if (!plain) {
    co_return error_response(
        http::status::bad_request,
        cat("conversation id \"", conversation, "\" may hold only letters, digits, '_' and '-'"));
  }
  Event input = Event::make("perception.user_input", "api",
                            Json{{"text", c.body["text"]}, {"conversation_id", conversation}});
  input.metadata.user_id = "api";
  input.metadata.trace_id = input.id.to_string();
  const std::string trace = input.metadata.trace_id;
  const bool wait = c.body.value("wait", true);
  const auto timeout =
      std::chrono::milliseconds(c.body.value("timeout_ms", kDefaultAnswerTimeoutMs));

  auto executor = co_await asio::this_coro::executor;
  auto waiter = std::make_shared<EventWaiter>(executor);
  std::optional<SubscriptionId> subscription;
  if (wait) {
    Subscriber tap;
    tap.tap = [waiter, trace](const EventPtr& event) {
      if (event->metadata.trace_id == trace) waiter->deliver(event);
    };
    auto id = nucleus_.bus().subscribe("cognition.task_complete", {}, std::move(tap));
    if (!id.ok()) co_return error_response(id.status());
    subscription = *id;
  }
  auto routed = nucleus_.publish(std::move(input));
  if (!routed.ok() || *routed == 0) {
    if (subscription) nucleus_.bus().unsubscribe(*subscription);
    if (!routed.ok()) co_return error_response(routed.status());
    co_return error_response(http::status::service_unavailable,
                             "no module handles perception.user_input: is the reasoning module "
                             "running? (GET /api/modules)");
  }
  Json accepted = {{"trace_id", trace}, {"conversation_id", conversation}};
  if (!wait) co_return json_response(http::status::accepted, accepted);
  waiter->expect_within(timeout);
  auto waiting = waiter->wait();
  EventPtr done = co_await std::move(waiting);
  nucleus_.bus().unsubscribe(*subscription);
  if (!done) {
    accepted["error"] = cat("no answer within ", timeout.count(),
                            " ms; the task goes on: follow trace ", trace, " on /api/events");
    co_return json_response(http::status::gateway_timeout, accepted);
  }
  Json out = done->data;
  out["trace_id"] = trace;
  out["conversation_id"] = conversation;
  co_return json_response(http::status::ok, out);
}

ApiService::Awaitable ApiService::bus_request(std::string channel, Json data,
                                              std::chrono::milliseconds timeout) {
  Event event = Event::make(channel, "api", std::move(data));
  event.metadata.trace_id = event.id.to_string();
  auto request = await_task(nucleus_.bus().request(std::move(event), timeout));
  auto reply = co_await std::move(request);
  if (!reply.ok()) {
    if (absl::IsNotFound(reply.status())) {
      co_return error_response(http::status::service_unavailable,
                               cat("nobody answers ", channel,
                                   ": is the module that serves it running? (GET /api/modules)"));
    }
    co_return error_response(reply.status());
  }
  const Json& answer = (*reply)->data;
  if (answer.is_object() && answer.contains("ok") && !answer.value("ok", false)) {
    co_return error_response(http::status::bad_request, answer.value("error", "request failed"));
  }
  co_return json_response(http::status::ok, answer);
}

ApiService::Awaitable ApiService::conversation(const RequestContext& c) {
  Json data = Json::object();
  data["conversation_id"] = c.param("id");
  auto request = bus_request("cognition.history", std::move(data), kHistoryTimeout);
  co_return co_await std::move(request);
}

ApiService::Awaitable ApiService::remember(const RequestContext& c) {
  auto request = bus_request("memory.store", c.body, kMemoryTimeout);
  co_return co_await std::move(request);
}

ApiService::Awaitable ApiService::recall(const RequestContext& c) {
  auto request = bus_request("memory.recall", c.body, kMemoryTimeout);
  co_return co_await std::move(request);
}

ApiService::Awaitable ApiService::forget(const RequestContext& c) {
  auto request = bus_request("memory.forget", c.body, kMemoryTimeout);
  co_return co_await std::move(request);
}

ApiService::Awaitable ApiService::memory_stats(const RequestContext&) {
  auto request = bus_request("memory.stats", Json::object(), kMemoryTimeout);
  co_return co_await std::move(request);
}

ApiService::Awaitable ApiService::publish(const RequestContext& c) {
  const std::string channel = c.body["channel"].get<std::string>();
  if (Status s = validate_channel(channel); !s.ok()) co_return error_response(s);
  Event event = Event::make(channel, "api", c.body.value("data", Json::object()));
  event.metadata.user_id = "api";
  const std::string id = event.id.to_string();
  auto routed = nucleus_.publish(std::move(event));
  if (!routed.ok()) co_return error_response(routed.status());
  co_return json_response(http::status::ok, Json{{"id", id}, {"delivered", *routed}});
}

ApiService::Awaitable ApiService::ui_asset(const RequestContext& c) {
  std::string name = c.param("file");
  if (name.empty()) name = "index.html";
  if (!safe_asset_name(name)) {
    co_return error_response(http::status::not_found, cat("no UI file \"", name, "\""));
  }
  std::ifstream in(web_dir() / name, std::ios::binary);
  if (!in) co_return error_response(http::status::not_found, cat("no UI file \"", name, "\""));
  std::ostringstream text;
  text << in.rdbuf();
  HttpResponse response{http::status::ok, 11};
  response.set(http::field::content_type, content_type_of(name));
  response.set(http::field::cache_control, "no-cache");
  // The UI loads nothing from elsewhere, and no other site may frame it.
  response.set("content-security-policy",
               "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
               "frame-ancestors 'none'");
  response.body() = text.str();
  response.prepare_payload();
  co_return response;
}

}  // namespace lotus::api
