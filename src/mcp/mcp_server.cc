#include "mcp/mcp_server.h"

#include <algorithm>
#include <utility>

#include "lotus/strings.h"

namespace lotus::mcp {

namespace {

constexpr std::string_view kLevelNames[] = {"debug", "info",     "notice", "warning",
                                            "error", "critical", "alert",  "emergency"};
constexpr std::string_view kCursorPrefix = "after:";

// Every request id as a map key: its JSON text keeps 1 and "1" apart.
std::string key_of(const Json& id) { return json_text(id); }

int rpc_code_of(const Status& status, int not_found) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return not_found;
    case absl::StatusCode::kInvalidArgument:
      return kInvalidParams;
    default:
      return kInternalError;
  }
}

// The result of a tool call that did not end in plain text (tool_reply
// writes those itself): an error, MCP content the tool made, or a value
// given as its JSON text (and, for an object, as structured content).
Json tool_result(llm::ToolAnswer answer) {
  Json result = {{"content", Json::array()}, {"isError", !answer.ok}};
  if (!answer.ok) {
    result["content"].push_back({{"type", "text"},
                                 {"text", answer.error.empty() ? std::string("the call failed")
                                                               : std::move(answer.error)}});
    return result;
  }
  Json& value = answer.result;
  // MCP content the tool made itself (see lotus::mcp_content).
  if (value.is_object() && value.contains("mcp") && value["mcp"] == true &&
      value.contains("content") && value["content"].is_array()) {
    result["content"] = std::move(value["content"]);
    result["isError"] = value.contains("isError") && value["isError"] == true;
    if (value.contains("structuredContent"))
      result["structuredContent"] = std::move(value["structuredContent"]);
    return result;
  }
  result["content"].push_back({{"type", "text"}, {"text", json_text(value)}});
  if (value.is_object()) result["structuredContent"] = std::move(value);
  return result;
}

// The reply to tool call `id`, as JSON-RPC text. A plain-text result, the
// common case, is written straight into the message; the rest go through
// tool_result.
std::string tool_reply(const Json& id, llm::ToolAnswer answer) {
  if (answer.ok && answer.result.is_string()) {
    std::string result = R"({"content":[{"type":"text","text":)";
    result += json_text(answer.result);
    result += R"(}],"isError":false})";
    return make_result_text(id, result);
  }
  return make_result(id, tool_result(std::move(answer)));
}

// What a JSON-RPC error object says: its message, or the whole of it.
std::string error_text(const Json& error) {
  if (error.is_object() && error.contains("message") && error["message"].is_string()) {
    return error["message"].get<std::string>();
  }
  return error.dump();
}

// Why a person's answer to an approval's elicitation is not a yes.
std::string why_not_approved(const std::string& action, const Json& result) {
  if (action == "cancel") return "dismissed on the MCP client";
  if (action == "accept" || action == "decline") return "declined on the MCP client";
  return cat("the MCP client's answer is not one of accept, decline, cancel: ",
             result.dump().substr(0, 200));
}

// The client capability a request to it needs ("sampling" for
// sampling/createMessage); empty for methods every client answers.
std::string capability_for(std::string_view method) {
  if (method.starts_with("sampling/")) return "sampling";
  if (method.starts_with("elicitation/")) return "elicitation";
  if (method.starts_with("roots/")) return "roots";
  return "";
}

}  // namespace

std::string_view to_string(McpLogLevel level) { return kLevelNames[static_cast<int>(level)]; }

Result<McpLogLevel> parse_log_level(std::string_view text) {
  for (size_t i = 0; i < std::size(kLevelNames); ++i) {
    if (kLevelNames[i] == text) return static_cast<McpLogLevel>(i);
  }
  return absl::InvalidArgumentError(
      cat("unknown log level \"", text,
          "\"; use debug, info, notice, warning, error, critical, alert or emergency"));
}

std::shared_ptr<McpServer> McpServer::create(Bus& bus, const llm::ToolRegistry& registry,
                                             llm::ToolBroker* broker,
                                             std::shared_ptr<McpContent> content,
                                             McpServerOptions options, Sink sink) {
  RoutedSink routed;
  if (sink)
    routed = [sink = std::move(sink)](std::string message, const Route&) {
      sink(std::move(message));
    };
  return create(bus, registry, broker, std::move(content), std::move(options), std::move(routed));
}

std::shared_ptr<McpServer> McpServer::create(Bus& bus, const llm::ToolRegistry& registry,
                                             llm::ToolBroker* broker,
                                             std::shared_ptr<McpContent> content,
                                             McpServerOptions options, RoutedSink sink) {
  return std::shared_ptr<McpServer>(new McpServer(bus, registry, broker, std::move(content),
                                                  std::move(options), std::move(sink)));
}

McpServer::McpServer(Bus& bus, const llm::ToolRegistry& registry, llm::ToolBroker* broker,
                     std::shared_ptr<McpContent> content, McpServerOptions options, RoutedSink sink)
    : bus_(bus),
      registry_(registry),
      broker_(broker),
      content_(std::move(content)),
      options_(std::move(options)),
      sink_(std::move(sink)),
      session_channel_(cat("mcp.session.", EventId::generate().to_string())),
      log_level_(static_cast<int>(options_.log_level)) {}

McpServer::~McpServer() {
  for (SubscriptionId id : subscriptions_) bus_.unsubscribe(id);
}

Status McpServer::start() {
  std::weak_ptr<McpServer> weak = weak_from_this();
  Subscriber changes;
  changes.tap = [weak](const EventPtr&) {
    auto self = weak.lock();
    if (!self || !self->initialized_.load()) return;
    self->send(make_notification("notifications/tools/list_changed", Json::object()));
  };
  auto id = bus_.subscribe("system.tools_changed", SubscriptionFilter(), std::move(changes));
  if (!id.ok()) return id.status();
  subscriptions_.push_back(*id);

  Subscriber reports;
  reports.tap = [weak](const EventPtr& event) {
    if (auto self = weak.lock()) self->on_session_event(event);
  };
  id = bus_.subscribe(session_channel_, SubscriptionFilter(), std::move(reports));
  if (!id.ok()) return id.status();
  subscriptions_.push_back(*id);

  // A module that comes or goes brings or takes its manifest (a resource)
  // and any resources and prompts it declares; so does another node's.
  for (const char* channel :
       {"system.module_loaded", "system.module_unloaded", "system.node_content_changed"}) {
    Subscriber modules;
    modules.tap = [weak](const EventPtr& event) {
      auto self = weak.lock();
      if (!self || !self->initialized_.load() || self->content_ == nullptr) return;
      self->send(make_notification("notifications/resources/list_changed", Json::object()));
      const Json& data = event->data;
      auto prompts = data.is_object() ? data.find("mcp_prompts") : data.end();
      const bool has_prompts =
          prompts == data.end() || !prompts->is_number_integer() || prompts->get<int64_t>() > 0;
      if (has_prompts) {
        self->send(make_notification("notifications/prompts/list_changed", Json::object()));
      }
    };
    id = bus_.subscribe(channel, SubscriptionFilter(), std::move(modules));
    if (!id.ok()) return id.status();
    subscriptions_.push_back(*id);
  }

  // Resources a client subscribed to: a module names its own on
  // mcp.resource_updated; the content source maps its channels' events.
  Subscriber updates;
  updates.tap = [weak](const EventPtr& event) {
    auto self = weak.lock();
    if (!self || !self->initialized_.load() || !event->data.is_object()) return;
    self->tell_updated({event->data.value("uri", "")});
  };
  id = bus_.subscribe(kResourceUpdatedChannel, SubscriptionFilter(), std::move(updates));
  if (!id.ok()) return id.status();
  subscriptions_.push_back(*id);
  if (content_ != nullptr) {
    for (const std::string& channel : content_->update_channels()) {
      Subscriber changes_of_content;
      changes_of_content.tap = [weak](const EventPtr& event) {
        auto self = weak.lock();
        if (!self || !self->initialized_.load()) return;
        {
          std::lock_guard lock(self->mutex_);
          if (self->subscribed_.empty()) return;  // the common case: nobody asked
        }
        self->tell_updated(self->content_->updated_by(*event));
      };
      id = bus_.subscribe(channel, SubscriptionFilter(), std::move(changes_of_content));
      if (!id.ok()) return id.status();
      subscriptions_.push_back(*id);
    }
  }
  return absl::OkStatus();
}

void McpServer::tell_updated(const std::vector<std::string>& uris) {
  for (const std::string& uri : uris) {
    {
      std::lock_guard lock(mutex_);
      if (subscribed_.count(uri) == 0) continue;
    }
    send(make_notification("notifications/resources/updated", {{"uri", uri}}));
  }
}

void McpServer::on_session_event(const EventPtr& event) {
  try {
    handle_session_event(event);
  } catch (const Json::exception& e) {
    // Only tool calls publish here (BusToolCall); anything malformed is dropped.
    log(McpLogLevel::kWarning, "lotus", cat("dropped a malformed tool report: ", e.what()));
  }
}

void McpServer::handle_session_event(const EventPtr& event) {
  const Json& data = event->data;
  if (!data.is_object()) return;
  std::string kind = data.value("kind", "");
  std::string call_id = data.value("call_id", "");
  std::string key;
  Json related;
  {
    std::lock_guard lock(mutex_);
    if (auto call = find_call(call_id); call != calls_.end()) {
      key = call->first;
      related = call->second.id;
    }
  }
  if (kind == "ask") {
    if (event->metadata.reply_to.empty()) return;
    if (key.empty() || closed_.load()) {
      return answer_ask(event, {{"ok", false}, {"error", "the MCP call is over"}});
    }
    std::string method = data.value("method", "");
    std::string capability = capability_for(method);
    bool offered;
    {
      std::lock_guard lock(mutex_);
      offered = capability.empty() || client_capabilities_.contains(capability);
    }
    if (!offered) {
      return answer_ask(
          event, {{"ok", false},
                  {"unsupported", true},
                  {"error", cat("the MCP client does not offer ", capability, " (it declared no \"",
                                capability, "\" capability)")}});
    }
    Json id;
    {
      std::lock_guard lock(mutex_);
      id = cat("lotus-", next_ask_++);
      asks_[key_of(id)] = Ask{event, related, {}};
    }
    send(make_request(id, method, data.value("params", Json::object())), related);
    return;
  }
  if (key.empty()) return;  // the call is over (or not ours): dropped
  if (kind == "progress") {
    progress(key, data.value("progress", 0.0), data.value("total", Json()),
             data.value("message", ""), true);
  } else if (kind == "log") {
    auto level = parse_log_level(data.value("level", "info"));
    McpLogLevel parsed = level.ok() ? *level : McpLogLevel::kInfo;
    if (!initialized_.load() || static_cast<int>(parsed) < log_level_.load()) return;
    send(make_notification("notifications/message", {{"level", to_string(parsed)},
                                                     {"logger", data.value("logger", "lotus")},
                                                     {"data", data.value("data", Json())}}),
         related);
  }
}

void McpServer::answer_ask(const EventPtr& event, Json data) {
  (void)bus_.reply(*event, "mcp", std::move(data));
}

void McpServer::refuse_ask(const Ask& ask, std::string_view reason) {
  if (!ask.approval_id.empty()) {
    if (broker_ != nullptr)
      (void)broker_->answer_approval(ask.approval_id, false, std::string(reason));
    return;
  }
  answer_ask(ask.event, {{"ok", false}, {"error", std::string(reason)}});
}

void McpServer::ask_approval(const Json& shown) {
  const std::string approval_id = shown.value("approval_id", "");
  const std::string call_id = shown.value("call_id", "");
  Json related;
  Json id;
  {
    std::lock_guard lock(mutex_);
    if (auto call = find_call(call_id); call != calls_.end() && !call->second.cancelled) {
      related = call->second.id;
    }
    if (!related.is_null() && !closed_.load()) {
      id = cat("lotus-", next_ask_++);
      asks_[key_of(id)] = Ask{nullptr, related, approval_id};
    }
  }
  if (id.is_null()) {  // the call is over already
    if (broker_ != nullptr)
      (void)broker_->answer_approval(approval_id, false, "the MCP call is over");
    return;
  }
  const std::string tool = shown.value("tool", "");
  std::string arguments = shown.value("arguments", Json::object()).dump();
  constexpr size_t kShownArguments = 600;  // a dialog, not a file viewer
  if (arguments.size() > kShownArguments) {
    arguments = cat(arguments.substr(0, kShownArguments), "... (", arguments.size(), " bytes)");
  }
  std::string because = shown.value("because", "");
  if (because.empty()) because = cat("risk ", shown.value("risk", ""));
  std::string message =
      cat("LOTUS asks before it runs ", tool, " (", because, ").\nArguments: ", arguments);
  Json schema = {{"type", "object"},
                 {"properties",
                  {{"approve",
                    {{"type", "boolean"},
                     {"title", cat("Allow ", tool)},
                     {"description", "Yes runs this call once; no refuses it."},
                     {"default", false}}}}},
                 {"required", {"approve"}}};
  send(make_request(id, "elicitation/create",
                    {{"message", std::move(message)}, {"requestedSchema", std::move(schema)}}),
       related);
}

void McpServer::on_approval_answer(const Ask& ask, const RpcMessage& message) {
  if (broker_ == nullptr) return;
  if (!message.error.is_null()) {
    std::string text = error_text(message.error);
    (void)broker_->answer_approval(ask.approval_id, false,
                                   cat("the MCP client could not ask: ", text));
    return;
  }
  const Json& result = message.result;
  const std::string action =
      result.is_object() && result.value("action", Json()).is_string() ? result["action"] : "";
  const bool approved = action == "accept" && result.contains("content") &&
                        result["content"].is_object() &&
                        result["content"].value("approve", Json()) == true;
  (void)broker_->answer_approval(ask.approval_id, approved,
                                 approved ? std::string() : why_not_approved(action, result));
}

void McpServer::on_response(const RpcMessage& message) {
  Ask ask;
  {
    std::lock_guard lock(mutex_);
    auto it = asks_.find(key_of(message.id));
    if (it == asks_.end()) return;  // not ours, or answered already: ignored
    ask = std::move(it->second);
    asks_.erase(it);
  }
  if (!ask.approval_id.empty()) return on_approval_answer(ask, message);
  if (!message.error.is_null()) {
    std::string text = error_text(message.error);
    return answer_ask(ask.event,
                      {{"ok", false}, {"error", cat("the MCP client answered: ", text)}});
  }
  answer_ask(ask.event, {{"ok", true}, {"result", message.result}});
}

void McpServer::progress(const std::string& key, double value, Json total, std::string message,
                         bool from_tool) {
  Json token;
  Json related;
  {
    std::lock_guard lock(mutex_);
    auto it = calls_.find(key);
    if (it == calls_.end()) return;
    Call& call = it->second;
    if (call.cancelled || call.progress_token.is_null() || value <= call.last_progress) return;
    if (!from_tool && call.tool_progress) return;
    call.last_progress = value;
    call.tool_progress = call.tool_progress || from_tool;
    token = call.progress_token;
    related = call.id;
  }
  Json params = {{"progressToken", token}, {"progress", value}};
  if (total.is_number()) params["total"] = total;
  if (!message.empty()) params["message"] = message;
  send(make_notification("notifications/progress", std::move(params)), related);
}

void McpServer::close() {
  if (closed_.exchange(true)) return;
  for (SubscriptionId id : subscriptions_) bus_.unsubscribe(id);
  subscriptions_.clear();
  std::map<std::string, Ask> asks;
  {
    std::lock_guard lock(mutex_);
    for (auto& [key, call] : calls_) call.cancelled = true;
    asks.swap(asks_);
  }
  if (broker_ != nullptr) broker_->clear_session_approver(session_channel_);
  for (auto& [key, ask] : asks) refuse_ask(ask, "the MCP client went away");
  refuse_approvals("the MCP client went away");
}

void McpServer::refuse_approvals(std::string_view reason) {
  std::vector<std::string> call_ids;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, call] : calls_) {
      if (!call.call_id.empty()) call_ids.push_back(call.call_id);
    }
  }
  // A call waiting for a person's approval would wait for nobody: refuse it.
  refuse_approvals_of(call_ids, reason);
}

void McpServer::refuse_approvals_of(const std::vector<std::string>& call_ids,
                                    std::string_view reason) {
  if (broker_ == nullptr || call_ids.empty()) return;
  Json pending = broker_->pending_approvals();
  for (const Json& approval : pending) {
    std::string call_id = approval.value("call_id", "");
    if (std::find(call_ids.begin(), call_ids.end(), call_id) != call_ids.end()) {
      (void)broker_->answer_approval(approval.value("approval_id", ""), false, std::string(reason));
    }
  }
}

std::map<std::string, McpServer::Call>::iterator McpServer::find_call(std::string_view call_id) {
  if (call_id.empty()) return calls_.end();
  return std::find_if(calls_.begin(), calls_.end(),
                      [&](const auto& entry) { return entry.second.call_id == call_id; });
}

std::string McpServer::protocol_version() const {
  std::lock_guard lock(mutex_);
  return protocol_version_;
}

Json McpServer::client_info() const {
  std::lock_guard lock(mutex_);
  return client_info_;
}

size_t McpServer::in_flight() const {
  std::lock_guard lock(mutex_);
  return calls_.size();
}

void McpServer::send(std::string message, const Json& related, bool answers) {
  // No lock here: with several calls in flight their replies are written
  // together (the stdio writer batches what arrives while it writes).
  if (closed_.load()) return;
  if (sink_) sink_(std::move(message), Route{related, answers});
}

void McpServer::respond(const Json& id, Json result) {
  send(make_result(id, std::move(result)), id, true);
}

void McpServer::fail(const Json& id, int code, std::string message) {
  send(make_error(id, RpcError{code, std::move(message), Json()}), id, true);
}

void McpServer::reject_oversized(size_t bytes) {
  fail(Json(), kInvalidRequest,
       cat("invalid request: the message has ", bytes, " bytes or more; the limit is ",
           options_.max_message_bytes));
}

void McpServer::log(McpLogLevel level, std::string_view logger, Json data) {
  if (!initialized_.load() || static_cast<int>(level) < log_level_.load()) return;
  send(make_notification(
      "notifications/message",
      {{"level", to_string(level)}, {"logger", logger}, {"data", std::move(data)}}));
}

void McpServer::handle(std::string_view text) {
  if (closed_.load()) return;
  if (text.size() > options_.max_message_bytes) {
    reject_oversized(text.size());
    return;
  }
  handle(parse_message(text));
}

void McpServer::handle(RpcMessage message) {
  if (closed_.load()) return;
  switch (message.kind) {
    case RpcMessage::Kind::kInvalid:
      send(make_error(message.id, message.problem), message.id, true);
      return;
    case RpcMessage::Kind::kResponse:
      on_response(message);  // to a request a tool made (sampling, elicitation)
      return;
    case RpcMessage::Kind::kNotification:
      handle_notification(message);
      return;
    case RpcMessage::Kind::kRequest:
      handle_request(message);
      return;
  }
}

void McpServer::handle_notification(const RpcMessage& message) {
  if (message.method == "notifications/cancelled") {
    cancel(message.params);
  }
  // notifications/initialized, roots/list_changed and the rest need nothing.
}

void McpServer::handle_request(RpcMessage& message) {
  const std::string& method = message.method;
  if (method == "initialize") return initialize(message);
  if (method == "ping") return respond(message.id, Json::object());
  if (!initialized_.load()) {
    return fail(message.id, kInvalidRequest,
                cat("invalid request: ", method, " before initialize; send initialize first"));
  }
  if (method == "tools/list") return list_tools(message);
  if (method == "tools/call") return call_tool(message);
  if (method == "logging/setLevel") return set_log_level(message);
  if (method == "resources/list" || method == "resources/templates/list" ||
      method == "prompts/list") {
    Json items = Json::array();
    const char* key = "uri";
    const char* field = "resources";
    if (content_ != nullptr) {
      if (method == "resources/list") {
        items = content_->resources();
      } else if (method == "resources/templates/list") {
        items = content_->resource_templates();
        key = "uriTemplate";
        field = "resourceTemplates";
      } else {
        items = content_->prompts();
        key = "name";
        field = "prompts";
      }
    } else if (method != "resources/list") {
      field = method == "prompts/list" ? "prompts" : "resourceTemplates";
    }
    Json out;
    std::string next;
    if (!page(std::move(items), key, message.params.value("cursor", Json()), &out, &next)) {
      return fail(message.id, kInvalidParams,
                  cat("invalid params for ", method, ": unknown cursor"));
    }
    Json result = {{field, std::move(out)}};
    if (!next.empty()) result["nextCursor"] = next;
    return respond(message.id, std::move(result));
  }
  if (method == "completion/complete") return complete(message);
  if (method == "resources/subscribe") return subscribe_resource(message, true);
  if (method == "resources/unsubscribe") return subscribe_resource(message, false);
  if (method == "resources/read") {
    auto uri = message.params.find("uri");
    if (uri == message.params.end() || !uri->is_string()) {
      return fail(message.id, kInvalidParams,
                  "invalid params for resources/read: \"uri\" must be a string");
    }
    if (content_ == nullptr) {
      return fail(message.id, kResourceNotFound,
                  cat("resource not found: ", uri->get<std::string>()));
    }
    if (!track(message.id, "")) return;
    return run(run_read(message.id, uri->get<std::string>()));
  }
  if (method == "prompts/get") {
    auto name = message.params.find("name");
    if (name == message.params.end() || !name->is_string()) {
      return fail(message.id, kInvalidParams,
                  "invalid params for prompts/get: \"name\" must be a string");
    }
    Json arguments = message.params.value("arguments", Json::object());
    if (!arguments.is_object()) {
      return fail(message.id, kInvalidParams,
                  "invalid params for prompts/get: \"arguments\" must be an object");
    }
    if (content_ == nullptr) {
      return fail(message.id, kInvalidParams,
                  cat("unknown prompt \"", name->get<std::string>(), "\""));
    }
    if (!track(message.id, "")) return;
    return run(run_prompt(message.id, name->get<std::string>(), std::move(arguments)));
  }
  fail(message.id, kMethodNotFound, cat("method not found: ", method));
}

void McpServer::initialize(const RpcMessage& message) {
  const Json& params = message.params;
  auto version = params.find("protocolVersion");
  if (version == params.end() || !version->is_string()) {
    return fail(message.id, kInvalidParams,
                "invalid params for initialize: \"protocolVersion\" must be a string");
  }
  if (initialized_.load()) {
    return fail(message.id, kInvalidRequest, "invalid request: the session is already initialized");
  }
  std::string asked = version->get<std::string>();
  std::string chosen(kProtocolVersions[0]);
  for (std::string_view supported : kProtocolVersions) {
    if (supported == asked) chosen = asked;
  }
  Json elicitation;
  {
    std::lock_guard lock(mutex_);
    protocol_version_ = chosen;
    client_info_ = params.value("clientInfo", Json::object());
    client_capabilities_ = params.value("capabilities", Json::object());
    if (!client_capabilities_.is_object()) client_capabilities_ = Json::object();
    elicitation = client_capabilities_.value("elicitation", Json());
  }
  // A client that can show a form asks its person for approvals itself
  // (an elicitation with an empty capability object offers forms; one that
  // lists its modes must list "form").
  if (broker_ != nullptr && elicitation.is_object() &&
      (elicitation.empty() || elicitation.contains("form"))) {
    std::weak_ptr<McpServer> weak = weak_from_this();
    broker_->set_session_approver(session_channel_, [weak](const Json& shown) {
      if (auto self = weak.lock()) self->ask_approval(shown);
    });
  }
  Json capabilities = {{"tools", {{"listChanged", true}}},
                       {"logging", Json::object()},
                       {"resources", {{"subscribe", true}, {"listChanged", content_ != nullptr}}},
                       {"prompts", {{"listChanged", content_ != nullptr}}},
                       {"completions", Json::object()}};
  Json result = {{"protocolVersion", chosen},
                 {"capabilities", std::move(capabilities)},
                 {"serverInfo", {{"name", options_.name}, {"version", options_.version}}}};
  if (!options_.instructions.empty()) result["instructions"] = options_.instructions;
  initialized_.store(true);
  respond(message.id, std::move(result));
}

Json McpServer::tool_json(const llm::ToolEntry& tool) const {
  Json schema = tool.parameters.is_object() ? tool.parameters : Json::object();
  if (!schema.contains("type")) schema["type"] = "object";
  Json out = {{"name", tool.mcp_name},
              {"title", tool.qualified},
              {"description", tool.description},
              {"inputSchema", std::move(schema)}};
  // Hints only (the policy decides): low risk reads or remembers; high risk
  // writes files, runs programs or drives the computer.
  out["annotations"] = {{"destructiveHint", tool.risk == llm::ToolRisk::kHigh},
                        {"openWorldHint", tool.risk != llm::ToolRisk::kLow}};
  return out;
}

bool McpServer::page(Json items, const char* key, const Json& cursor, Json* out,
                     std::string* next) const {
  std::sort(items.begin(), items.end(),
            [key](const Json& a, const Json& b) { return a.value(key, "") < b.value(key, ""); });
  auto begin = items.begin();
  if (!cursor.is_null()) {
    if (!cursor.is_string()) return false;
    std::string_view text = cursor.get_ref<const std::string&>();
    if (text.substr(0, kCursorPrefix.size()) != kCursorPrefix) return false;
    std::string after(text.substr(kCursorPrefix.size()));
    begin = std::upper_bound(
        items.begin(), items.end(), after,
        [key](const std::string& value, const Json& item) { return value < item.value(key, ""); });
  }
  *out = Json::array();
  next->clear();
  for (auto it = begin; it != items.end(); ++it) {
    if (out->size() == options_.page_size) {
      *next = cat(kCursorPrefix, out->back().value(key, ""));
      break;
    }
    out->push_back(std::move(*it));
  }
  return true;
}

void McpServer::list_tools(const RpcMessage& message) {
  Json tools = Json::array();
  for (const auto& tool : *registry_.list()) tools.push_back(tool_json(*tool));
  Json out;
  std::string next;
  if (!page(std::move(tools), "name", message.params.value("cursor", Json()), &out, &next)) {
    return fail(message.id, kInvalidParams, "invalid params for tools/list: unknown cursor");
  }
  Json result = {{"tools", std::move(out)}};
  if (!next.empty()) result["nextCursor"] = next;
  respond(message.id, std::move(result));
}

void McpServer::call_tool(RpcMessage& message) {
  Json& params = message.params;
  auto name = params.find("name");
  if (name == params.end() || !name->is_string()) {
    return fail(message.id, kInvalidParams,
                "invalid params for tools/call: \"name\" must be a string");
  }
  Json arguments = Json::object();
  if (auto given = params.find("arguments"); given != params.end()) arguments = std::move(*given);
  if (arguments.is_null()) arguments = Json::object();
  if (!arguments.is_object()) {
    return fail(message.id, kInvalidParams,
                "invalid params for tools/call: \"arguments\" must be an object");
  }
  if (registry_.find(name->get<std::string>()) == nullptr) {
    return fail(message.id, kInvalidParams,
                cat("unknown tool \"", name->get<std::string>(), "\"; tools/list names them"));
  }
  if (broker_ == nullptr) {
    llm::ToolAnswer none;
    none.error = "tools are not available";
    return send(tool_reply(message.id, std::move(none)), message.id, true);
  }
  llm::ToolCallRequest request;
  request.tool = name->get<std::string>();
  request.arguments = std::move(arguments);
  request.trace_id = EventId::generate().to_string();
  request.call_id = cat("mcp-", request.trace_id);  // unique as the trace is
  request.requested_by = options_.requested_by;
  request.session = session_channel_;
  Json token;
  if (auto meta = params.find("_meta"); meta != params.end() && meta->is_object()) {
    token = meta->value("progressToken", Json());
  }
  bool wants_progress = token.is_string() || token.is_number_integer();
  if (!track(message.id, request.call_id, wants_progress ? token : Json())) return;
  run(run_tool(message.id, std::move(request), wants_progress ? std::move(token) : Json()));
}

void McpServer::complete(const RpcMessage& message) {
  constexpr size_t kMaxValues = 100;  // the most one completion may carry
  const Json& params = message.params;
  auto ref = params.find("ref");
  auto argument = params.find("argument");
  if (ref == params.end() || !ref->is_object() || !ref->contains("type") ||
      !(*ref)["type"].is_string()) {
    return fail(message.id, kInvalidParams,
                "invalid params for completion/complete: \"ref\" must be an object with a "
                "\"type\" (ref/prompt or ref/resource)");
  }
  if (argument == params.end() || !argument->is_object() ||
      !argument->value("name", Json()).is_string() ||
      !argument->value("value", Json()).is_string()) {
    return fail(message.id, kInvalidParams,
                "invalid params for completion/complete: \"argument\" must be an object with "
                "string \"name\" and \"value\"");
  }
  Json values = content_ == nullptr
                    ? Json::array()
                    : content_->complete(*ref, (*argument)["name"].get<std::string>(),
                                         (*argument)["value"].get<std::string>());
  const size_t total = values.size();
  if (values.size() > kMaxValues) values.erase(values.begin() + kMaxValues, values.end());
  respond(
      message.id,
      Json{{"completion",
            {{"values", std::move(values)}, {"total", total}, {"hasMore", total > kMaxValues}}}});
}

void McpServer::set_log_level(const RpcMessage& message) {
  auto level = message.params.find("level");
  if (level == message.params.end() || !level->is_string()) {
    return fail(message.id, kInvalidParams,
                "invalid params for logging/setLevel: \"level\" must be a string");
  }
  auto parsed = parse_log_level(level->get<std::string>());
  if (!parsed.ok()) {
    return fail(message.id, kInvalidParams,
                cat("invalid params for logging/setLevel: ", message_of(parsed.status())));
  }
  log_level_.store(static_cast<int>(*parsed));
  respond(message.id, Json::object());
}

void McpServer::cancel(const Json& params) {
  auto id = params.find("requestId");
  if (id == params.end()) return;
  std::string call_id;
  {
    std::lock_guard lock(mutex_);
    auto it = calls_.find(key_of(*id));
    if (it == calls_.end()) return;  // finished already, or never ours: ignored
    it->second.cancelled = true;
    call_id = it->second.call_id;
  }
  // What the call asked the client is withdrawn, and the tool told at once.
  drop_asks(*id, "the MCP client cancelled the call", true);
  if (!call_id.empty()) refuse_approvals_of({call_id}, "the MCP client cancelled the call");
}

void McpServer::subscribe_resource(const RpcMessage& message, bool subscribe) {
  auto uri = message.params.find("uri");
  if (uri == message.params.end() || !uri->is_string() ||
      uri->get_ref<const std::string&>().empty()) {
    return fail(message.id, kInvalidParams,
                cat("invalid params for ", message.method, ": \"uri\" must be a string"));
  }
  {
    std::lock_guard lock(mutex_);
    if (subscribe) {
      subscribed_.insert(uri->get<std::string>());
    } else {
      subscribed_.erase(uri->get<std::string>());
    }
  }
  respond(message.id, Json::object());
}

bool McpServer::track(const Json& id, std::string call_id, Json progress_token) {
  // Calls start on the reader's thread and finish on others: what can be
  // made before the lock is, so the two meet on it as briefly as possible.
  std::string key = key_of(id);
  Call call;
  call.call_id = std::move(call_id);
  call.id = id;
  call.progress_token = std::move(progress_token);
  {
    std::lock_guard lock(mutex_);
    if (calls_.try_emplace(std::move(key), std::move(call)).second) return true;
  }
  fail(id, kInvalidRequest, cat("invalid request: id ", key_of(id), " is already in use"));
  return false;
}

bool McpServer::finish(const Json& id) {
  const std::string key = key_of(id);
  bool wanted;
  bool asks_open;
  decltype(calls_)::node_type ended;  // freed after the lock is released
  {
    std::lock_guard lock(mutex_);
    auto it = calls_.find(key);
    if (it == calls_.end()) return false;
    wanted = !it->second.cancelled;
    ended = calls_.extract(it);
    asks_open = !asks_.empty();
  }
  if (asks_open) drop_asks(id, "the tool call ended", true);  // a tool that gave up waiting
  return wanted && !closed_.load();
}

void McpServer::drop_asks(const Json& related, std::string_view reason, bool tell_client) {
  std::vector<std::pair<Json, Ask>> dropped;
  {
    std::lock_guard lock(mutex_);
    for (auto it = asks_.begin(); it != asks_.end();) {
      if (it->second.related == related) {
        dropped.emplace_back(Json::parse(it->first), std::move(it->second));
        it = asks_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [ask_id, ask] : dropped) {
    refuse_ask(ask, reason);
    if (tell_client) {
      send(make_notification("notifications/cancelled",
                             {{"requestId", ask_id}, {"reason", std::string(reason)}}),
           related);
    }
  }
}

void McpServer::run(Task<void> task) {
  // Started on the caller's thread (the transport's reader): it runs until it
  // first waits (for the module's reply) and goes on wherever that arrives.
  // Handing it to another thread first would cost a thread switch per call.
  start_detached(std::move(task), [](std::exception_ptr) {});
}

Task<void> McpServer::run_tool(Json id, llm::ToolCallRequest request, Json progress_token) {
  auto self = shared_from_this();  // the session outlives its calls
  // The token is kept with the call (see track); without one there is no
  // progress to report.
  const bool wants_progress = !progress_token.is_null();
  const std::string key = wants_progress ? key_of(id) : std::string();
  if (wants_progress) progress(key, 0, Json(1), cat("calling ", request.tool), false);
  auto broker = broker_->shared_from_this();  // and so does the broker
  auto calling = broker->call(std::move(request));
  llm::ToolAnswer answer = co_await std::move(calling);
  // Unless the tool reported its own progress, say it is done.
  if (wants_progress) progress(key, 1, Json(1), "done", false);
  if (!finish(id)) co_return;  // cancelled: the client expects no answer
  send(tool_reply(id, std::move(answer)), id, true);
}

Task<void> McpServer::run_read(Json id, std::string uri) {
  auto self = shared_from_this();
  auto reading = content_->read_resource(uri);
  Result<Json> contents = co_await std::move(reading);
  if (!finish(id)) co_return;
  if (!contents.ok()) {
    fail(id, rpc_code_of(contents.status(), kResourceNotFound),
         std::string(message_of(contents.status())));
    co_return;
  }
  respond(id, Json{{"contents", std::move(*contents)}});
}

Task<void> McpServer::run_prompt(Json id, std::string name, Json arguments) {
  auto self = shared_from_this();
  auto getting = content_->get_prompt(name, std::move(arguments));
  Result<Json> prompt = co_await std::move(getting);
  if (!finish(id)) co_return;
  if (!prompt.ok()) {
    fail(id, rpc_code_of(prompt.status(), kInvalidParams),
         std::string(message_of(prompt.status())));
    co_return;
  }
  respond(id, std::move(*prompt));
}

}  // namespace lotus::mcp
