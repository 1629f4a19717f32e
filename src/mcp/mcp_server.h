// McpServer: one MCP session on the server side, independent of transport.
//
// A transport (stdio, an HTTP session) feeds it one message at a time with
// handle(); whatever it has to say — responses, notifications — goes to the
// sink as one serialized JSON-RPC message. Tools are every tool in the
// registry, called through the ToolBroker (schema check, permission policy,
// approvals, timeout), so MCP clients get exactly what the reasoning engine
// gets; resources and prompts come from an McpContent.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "bus/bus.h"
#include "llm/tool_broker.h"
#include "llm/tool_registry.h"
#include "mcp/content.h"
#include "mcp/json_rpc.h"

namespace lotus::mcp {

// Newest first; the first is what a client asking for anything else gets.
inline constexpr std::string_view kProtocolVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                                         "2024-11-05"};

// MCP log levels (RFC 5424 severities), least severe first.
enum class McpLogLevel { kDebug, kInfo, kNotice, kWarning, kError, kCritical, kAlert, kEmergency };
std::string_view to_string(McpLogLevel level);
Result<McpLogLevel> parse_log_level(std::string_view text);

struct McpServerOptions {
  std::string name = "lotus";
  std::string version = LOTUS_VERSION;
  std::string instructions;
  size_t max_message_bytes = 4 * 1024 * 1024;  // larger messages are refused
  size_t page_size = 100;                      // items per page of every list
  // Log messages at or above this go to the client until it sets a level.
  McpLogLevel log_level = McpLogLevel::kWarning;
  std::string requested_by = "mcp";  // who the action log says called
};

class McpServer : public std::enable_shared_from_this<McpServer> {
 public:
  // One serialized JSON-RPC message. Called from whichever thread finished
  // the work (the caller's for quick answers, a bus thread for tool calls),
  // so calls may overlap: a sink is thread-safe, and keeps the order of the
  // calls one thread makes (a tool's progress before its result).
  using Sink = std::function<void(std::string message)>;
  // Where a message belongs, for a transport that sends messages to
  // different places (HTTP: a request's messages on the POST that asked).
  struct Route {
    // The request it belongs to: the one a response answers, or the tool
    // call whose progress, logs and questions to the client it carries; null
    // for the rest (list changes, resource updates).
    const Json& request;
    bool answers;  // a response: the request's last message
  };
  // As Sink, with the message's Route.
  using RoutedSink = std::function<void(std::string message, const Route& route)>;

  // `broker` and `content` may be null (no tools, or no resources/prompts).
  static std::shared_ptr<McpServer> create(Bus& bus, const llm::ToolRegistry& registry,
                                           llm::ToolBroker* broker,
                                           std::shared_ptr<McpContent> content,
                                           McpServerOptions options, Sink sink);
  static std::shared_ptr<McpServer> create(Bus& bus, const llm::ToolRegistry& registry,
                                           llm::ToolBroker* broker,
                                           std::shared_ptr<McpContent> content,
                                           McpServerOptions options, RoutedSink sink);
  // Where modules announce that a resource changed: {"uri"} (subscribed
  // clients get notifications/resources/updated).
  static constexpr std::string_view kResourceUpdatedChannel = "mcp.resource_updated";
  ~McpServer();
  McpServer(const McpServer&) = delete;
  McpServer& operator=(const McpServer&) = delete;

  // Listens for system.tools_changed (-> notifications/tools/list_changed),
  // resource updates, and on its own channel for what the tools it calls
  // report (progress, logs, questions for the client; see BusToolCall).
  Status start();
  // The channel this session's tool calls report on.
  const std::string& session_channel() const { return session_channel_; }
  // Ends the session: nothing more goes to the sink; calls in flight are
  // abandoned (their approvals, if waiting, are refused).
  void close();
  // Refuses the approvals this session's calls wait for (its client can no
  // longer answer), so those calls end now; the session stays open.
  void refuse_approvals(std::string_view reason);

  // One incoming message, as text. Quick requests are answered before this
  // returns; tool calls, resource reads and prompts finish later.
  void handle(std::string_view message);
  // The same for a message the transport parsed already.
  void handle(RpcMessage message);
  // Tells the client a message was refused for its size (the transport cut it
  // off before it was whole, so there is no id to answer).
  void reject_oversized(size_t bytes);

  // Sends notifications/message when `level` is at or above the client's.
  void log(McpLogLevel level, std::string_view logger, Json data);

  bool initialized() const { return initialized_.load(); }
  std::string protocol_version() const;
  Json client_info() const;
  size_t in_flight() const;
  const McpServerOptions& options() const { return options_; }

 private:
  McpServer(Bus& bus, const llm::ToolRegistry& registry, llm::ToolBroker* broker,
            std::shared_ptr<McpContent> content, McpServerOptions options, RoutedSink sink);

  struct Call {
    std::string call_id;
    bool cancelled = false;
    Json id;              // the request's id
    Json progress_token;  // null: the client wants no progress
    double last_progress = -1;
    bool tool_progress = false;  // the tool reported progress itself
  };
  // A request this server sent the client: for a tool (sampling,
  // elicitation), or to ask its person for a call's approval.
  struct Ask {
    EventPtr event;           // a tool's: to answer on the bus
    Json related;             // the tool call's request id
    std::string approval_id;  // an approval's: to answer the broker
  };

  void send(std::string message, const Json& related = Json(), bool answers = false);
  // What a tool reports on the session channel.
  void on_session_event(const EventPtr& event);
  // notifications/resources/updated for each of `uris` a client subscribed to.
  void tell_updated(const std::vector<std::string>& uris);
  void handle_session_event(const EventPtr& event);
  void on_response(const RpcMessage& message);
  void answer_ask(const EventPtr& event, Json data);
  // Answers `ask` with a failure: a tool's on the bus, an approval's "no".
  void refuse_ask(const Ask& ask, std::string_view reason);
  // The broker's question for one of this session's calls, put to the
  // client's person as an elicitation (a form with one yes/no field).
  void ask_approval(const Json& shown);
  void on_approval_answer(const Ask& ask, const RpcMessage& message);
  // Refuses the waiting approvals of the calls `call_ids` name.
  void refuse_approvals_of(const std::vector<std::string>& call_ids, std::string_view reason);
  // The call in flight that `call_id` names, or calls_.end(); mutex_ held.
  std::map<std::string, Call>::iterator find_call(std::string_view call_id);
  // Ends the requests to the client that the call `related` made: the tool
  // gets `reason` as an error; the client, when told, notifications/cancelled.
  void drop_asks(const Json& related, std::string_view reason, bool tell_client);
  void subscribe_resource(const RpcMessage& message, bool subscribe);
  void respond(const Json& id, Json result);
  void fail(const Json& id, int code, std::string message);
  void handle_request(RpcMessage& message);  // may take over its params
  void handle_notification(const RpcMessage& message);

  void initialize(const RpcMessage& message);
  void list_tools(const RpcMessage& message);
  void call_tool(RpcMessage& message);
  void set_log_level(const RpcMessage& message);
  void complete(const RpcMessage& message);
  void cancel(const Json& params);
  // Tracks request `id` for cancelling; false (and answered) when the id is in flight already.
  bool track(const Json& id, std::string call_id, Json progress_token = Json());
  // Sends notifications/progress for call `key` when it is higher than the last.
  void progress(const std::string& key, double value, Json total, std::string message,
                bool from_tool);
  // Whether the request is still wanted (not cancelled, session open); forgets it.
  bool finish(const Json& id);
  void run(Task<void> task);

  Task<void> run_tool(Json id, llm::ToolCallRequest request, Json progress_token);
  Task<void> run_read(Json id, std::string uri);
  Task<void> run_prompt(Json id, std::string name, Json arguments);

  Json tool_json(const llm::ToolEntry& tool) const;
  // One page of `items` (sorted by `key` here); sets *next to the cursor of
  // the next page or "". False when `cursor` is not one this server made.
  bool page(Json items, const char* key, const Json& cursor, Json* out, std::string* next) const;

  Bus& bus_;
  const llm::ToolRegistry& registry_;
  llm::ToolBroker* broker_;
  std::shared_ptr<McpContent> content_;
  McpServerOptions options_;
  RoutedSink sink_;
  std::vector<SubscriptionId> subscriptions_;
  std::string session_channel_;

  std::atomic<bool> initialized_{false};
  std::atomic<bool> closed_{false};
  std::atomic<int> log_level_;
  mutable std::mutex mutex_;
  std::string protocol_version_;
  Json client_info_;
  Json client_capabilities_;
  std::map<std::string, Call> calls_;  // in flight, by id's JSON text
  std::map<std::string, Ask> asks_;    // sent to the client, by our id's JSON text
  uint64_t next_ask_ = 1;
  std::set<std::string> subscribed_;  // resource URIs the client subscribed to
};

}  // namespace lotus::mcp
