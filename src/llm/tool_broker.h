// ToolBroker: carries out tool calls for whoever asks, on the bus.
//
// A call arrives as a request on `cognition.tool_call`
//   {"tool": "fs.read" | "fs__read", "arguments": {...}, "call_id": "..."}
// and is checked against the tool's JSON Schema, decided by the permission
// policy (allow, ask a person through `action.approval_request` /
// `perception.approval_response`, or deny), sent to the module on
// `tool.<module>.<tool>` with a timeout, and answered with
//   {"ok": bool, "tool": "fs.read", "call_id": "...", "result": ... | "error": "...",
//    "denied": bool, "truncated": bool, "duration_ms": n}.
// The same answer goes out on `action.tool_result`, and every call that ran is
// appended to `action_log`. Validation errors and denials are answers, not
// failures: the model reads them and tries something else.
//
// A request on `cognition.tools` is answered with the tool list as models
// see it: {"version": n, "tools": [{"name": "fs__read", "qualified": "fs.read",
// "description", "parameters", "risk", "decision", "node" (when the tool runs
// on another node)}]}; `system.tools_changed`
// says when to ask again.
//
// On a bus shared by several nodes each node's broker answers the requests
// of its own node only; a tool of a module on another node is called from
// here (schema and policy checked here) and runs there, on one node when
// several run the module (the bus picks one per request). A call published
// without reply_to is carried out by one of the nodes running the tool,
// chosen from the call's id the same way on each of them.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bus/bus.h"
#include "llm/tool_policy.h"
#include "llm/tool_registry.h"

namespace lotus::llm {

struct ToolBrokerOptions {
  ToolPolicy policy;
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds approval_timeout{300000};
  size_t max_result_bytes = 32768;
};

struct ToolCallRequest {
  std::string tool;  // qualified or model name
  Json arguments = Json::object();
  std::string call_id;
  std::string trace_id;
  std::string requested_by;  // module or interface, for the action log
  // Where the tool sends progress, logs and questions while it runs (an MCP
  // session's channel, see BusToolCall); empty: the caller takes none.
  std::string session;
};

// What one call came to. to_json() is its answer as the bus, the HTTP API
// and action.tool_result carry it (see above): "result" and "truncated" when
// it ran and succeeded, "error" otherwise.
struct ToolAnswer {
  bool ok = false;
  std::string tool;  // qualified name (as asked, when there is no such tool)
  std::string call_id;
  Json result;        // when ok
  std::string error;  // when not
  bool denied = false;
  bool truncated = false;
  int64_t duration_ms = 0;

  Json to_json() const;
};

class ToolBroker : public std::enable_shared_from_this<ToolBroker> {
 public:
  static constexpr std::string_view kCallChannel = "cognition.tool_call";
  static constexpr std::string_view kListChannel = "cognition.tools";
  static constexpr std::string_view kResultChannel = "action.tool_result";
  static constexpr std::string_view kApprovalRequestChannel = "action.approval_request";
  static constexpr std::string_view kApprovalResponseChannel = "perception.approval_response";
  static constexpr std::string_view kActionLogChannel = "action_log";

  // Held by shared_ptr: calls in flight keep the broker alive until the bus
  // answers them (at the latest when the bus stops).
  static std::shared_ptr<ToolBroker> create(Bus& bus, const ToolRegistry& registry,
                                            ToolBrokerOptions options);
  ~ToolBroker();
  ToolBroker(const ToolBroker&) = delete;
  ToolBroker& operator=(const ToolBroker&) = delete;

  // Subscribes to calls and approval answers.
  Status start();
  // Unsubscribes; approvals still waiting are answered "denied".
  void stop();

  // Runs one call to the end (the bus handler uses it; so can MCP and the
  // HTTP API). Never fails: problems are in the answer's error.
  Task<ToolAnswer> call(ToolCallRequest request);

  // The answer to `cognition.tools`, built once per registry version.
  std::shared_ptr<const Json> tool_listing() const;

  // Approvals waiting for a person: [{"approval_id", "tool", "arguments", ...}].
  Json pending_approvals() const;

  // Who can answer an approval. Besides whoever listens on
  // action.approval_request (the CLI, the web UI's event stream, another
  // node), an approver of this process shows waiting approvals later (the
  // HTTP API's /api/approvals): counted, so a call that nobody could ever
  // approve is refused at once instead of waiting approval_timeout.
  void add_approver();
  void remove_approver();
  // A session's own way to ask its person (an MCP client's elicitation):
  // called, on a bus thread, with the approval as shown for every call of
  // that session (ToolCallRequest::session) that needs one; the answer comes
  // back through answer_approval().
  using SessionApprover = std::function<void(const Json& shown)>;
  void set_session_approver(const std::string& session, SessionApprover approver);
  void clear_session_approver(const std::string& session);
  // Answers one; NotFound when it is not (or no longer) waiting.
  Status answer_approval(std::string_view approval_id, bool approved, std::string reason = {});

  struct Stats {
    uint64_t calls = 0;
    uint64_t invalid = 0;
    uint64_t denied = 0;
    uint64_t failed = 0;
    uint64_t timed_out = 0;
    uint64_t truncated = 0;
  };
  Stats stats() const;

 private:
  ToolBroker(Bus& bus, const ToolRegistry& registry, ToolBrokerOptions options);
  struct Approval;
  struct Verdict {
    bool approved = false;
    std::string reason;
  };
  Task<Verdict> ask_person(const ToolEntry& tool, const ToolCallRequest& request,
                           const std::string& because);
  Task<void> serve(EventPtr event);
  // Whether a call without reply_to is this node's to carry out.
  bool serves_unanswered(const Event& event) const;
  void on_approval_response(const EventPtr& event);
  void finish_approval(const std::string& id, Verdict verdict);
  void emit(std::string_view channel, Json data, const std::string& trace_id);

  Bus& bus_;
  const ToolRegistry& registry_;
  ToolBrokerOptions options_;
  std::vector<SubscriptionId> subscriptions_;
  std::atomic<bool> running_{false};

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Approval>, std::less<>> approvals_;
  std::map<std::string, SessionApprover, std::less<>> session_approvers_;
  int approvers_ = 0;
  mutable std::shared_ptr<const Json> listing_;
  mutable uint64_t listing_version_ = ~uint64_t{0};

  std::atomic<uint64_t> calls_{0}, invalid_{0}, denied_{0}, failed_{0}, timed_out_{0},
      truncated_{0};
};

// `result` as given when its JSON text fits in `max_bytes`; otherwise cut
// (a string keeps its start, anything else becomes the start of its text)
// with a note saying how much was left out. Sets *truncated accordingly.
Json cap_result(Json result, size_t max_bytes, bool* truncated);

}  // namespace lotus::llm
