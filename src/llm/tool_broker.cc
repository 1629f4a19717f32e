#include "llm/tool_broker.h"

#include <algorithm>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <utility>

#include "core/timer_sleep.h"
#include "lotus/strings.h"

namespace lotus::llm {

namespace {

constexpr std::string_view kSource = "nucleus";
// How long a call to another node's tool waits for that node's subscriptions
// to become known (a heartbeat or two).
constexpr auto kRemoteSettle = std::chrono::seconds(3);

int64_t elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               since)
      .count();
}

std::string seconds_text(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0) return cat(d.count() / 1000, " s");
  return cat(d.count(), " ms");
}

}  // namespace

Json cap_result(Json result, size_t max_bytes, bool* truncated) {
  *truncated = false;
  if (result.is_string()) {
    const std::string& text = result.get_ref<const std::string&>();
    if (text.size() <= max_bytes) return result;
    *truncated = true;
    return Json(cat(text.substr(0, max_bytes), "\n[... ", text.size() - max_bytes,
                    " more bytes left out]"));
  }
  std::string text = result.dump();
  if (text.size() <= max_bytes) return result;
  *truncated = true;
  return Json(cat(text.substr(0, max_bytes), "\n[... ", text.size() - max_bytes,
                  " more bytes of JSON left out]"));
}

Json ToolAnswer::to_json() const {
  Json json = {{"ok", ok},
               {"tool", tool},
               {"call_id", call_id},
               {"denied", denied},
               {"duration_ms", duration_ms}};
  if (ok) {
    json["result"] = result;
    json["truncated"] = truncated;
  } else {
    json["error"] = error;
  }
  return json;
}

struct ToolBroker::Approval {
  explicit Approval(boost::asio::any_io_executor executor) : timer(std::move(executor)) {}
  std::string id;
  Json shown;  // what the person is asked about
  std::function<void(Verdict)> resume;
  boost::asio::steady_timer timer;
  std::atomic<bool> done{false};
};

std::shared_ptr<ToolBroker> ToolBroker::create(Bus& bus, const ToolRegistry& registry,
                                               ToolBrokerOptions options) {
  return std::shared_ptr<ToolBroker>(new ToolBroker(bus, registry, std::move(options)));
}

ToolBroker::ToolBroker(Bus& bus, const ToolRegistry& registry, ToolBrokerOptions options)
    : bus_(bus), registry_(registry), options_(std::move(options)) {}

ToolBroker::~ToolBroker() = default;

Status ToolBroker::start() {
  if (running_.exchange(true)) return absl::OkStatus();
  std::weak_ptr<ToolBroker> weak = weak_from_this();
  Subscriber calls;
  // Taps run on the publisher's thread: hand the call to the pool at once.
  calls.tap = [weak, executor = bus_.executor()](const EventPtr& event) {
    auto self = weak.lock();
    if (!self || !self->running_.load()) return;
    // On a bus shared by several nodes every broker sees the call: the
    // caller's node answers (its policy decides); a call that wants no
    // answer is carried out where the tool's module runs.
    if (!event->metadata.reply_to.empty() ? !self->bus_.replies_here(event->metadata.reply_to)
                                          : !self->serves_unanswered(*event)) {
      return;
    }
    boost::asio::post(executor, [self = std::move(self), event] {
      start_detached(self->serve(event), [](std::exception_ptr) {});
    });
  };
  auto id = bus_.subscribe(kCallChannel, SubscriptionFilter(), std::move(calls));
  if (!id.ok()) return id.status();
  subscriptions_.push_back(*id);

  Subscriber lists;
  lists.tap = [weak](const EventPtr& event) {
    auto self = weak.lock();
    if (!self || event->metadata.reply_to.empty()) return;
    if (!self->bus_.replies_here(event->metadata.reply_to)) return;  // another node's
    (void)self->bus_.reply(*event, std::string(kSource), *self->tool_listing());
  };
  id = bus_.subscribe(kListChannel, SubscriptionFilter(), std::move(lists));
  if (!id.ok()) return id.status();
  subscriptions_.push_back(*id);

  Subscriber answers;
  answers.tap = [weak](const EventPtr& event) {
    if (auto self = weak.lock()) self->on_approval_response(event);
  };
  id = bus_.subscribe(kApprovalResponseChannel, SubscriptionFilter(), std::move(answers));
  if (!id.ok()) return id.status();
  subscriptions_.push_back(*id);
  return absl::OkStatus();
}

void ToolBroker::stop() {
  running_.store(false);
  for (SubscriptionId id : subscriptions_) bus_.unsubscribe(id);
  subscriptions_.clear();
  std::vector<std::string> waiting;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, approval] : approvals_) waiting.push_back(id);
  }
  for (const std::string& id : waiting) {
    finish_approval(id, Verdict{false, "LOTUS is shutting down"});
  }
}

bool ToolBroker::serves_unanswered(const Event& event) const {
  if (bus_.node_id().empty()) return true;
  auto tool = event.data.find("tool");
  if (tool == event.data.end() || !tool->is_string()) return false;
  const std::string& name = tool->get_ref<const std::string&>();
  auto entry = registry_.find(name);
  if (entry == nullptr || !entry->node.empty()) return false;
  // Several nodes run the tool's module: each of them sees the call and
  // makes the same choice (the event id picks one of the sorted nodes), so
  // one runs it.
  std::vector<std::string> nodes = registry_.nodes_offering(name);
  if (nodes.empty()) return true;
  nodes.push_back(bus_.node_id());
  std::sort(nodes.begin(), nodes.end());
  uint64_t hash = 1469598103934665603ull;  // FNV-1a: the same in every process
  for (char c : event.id.to_string()) {
    hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ull;
  }
  return nodes[hash % nodes.size()] == bus_.node_id();
}

Task<void> ToolBroker::serve(EventPtr event) {
  ToolCallRequest request;
  const Json& data = event->data;
  if (auto it = data.find("tool"); it != data.end() && it->is_string()) {
    request.tool = it->get<std::string>();
  }
  if (auto it = data.find("arguments"); it != data.end()) request.arguments = *it;
  if (auto it = data.find("call_id"); it != data.end() && it->is_string()) {
    request.call_id = it->get<std::string>();
  }
  request.trace_id =
      event->metadata.trace_id.empty() ? event->id.to_string() : event->metadata.trace_id;
  request.requested_by = event->source;
  auto running = call(std::move(request));
  ToolAnswer answer = co_await std::move(running);
  if (!event->metadata.reply_to.empty()) {
    (void)bus_.reply(*event, std::string(kSource), answer.to_json());
  }
}

Task<ToolAnswer> ToolBroker::call(ToolCallRequest request) {
  auto begin = std::chrono::steady_clock::now();
  calls_.fetch_add(1, std::memory_order_relaxed);
  ToolAnswer answer;
  answer.tool = request.tool;
  answer.call_id = request.call_id;
  // The audit events are made only for someone to read: on a bus of this
  // process alone with no subscriber they would be dropped unseen.
  const bool results_watched = bus_.has_audience(kResultChannel);
  const bool logged = bus_.has_audience(kActionLogChannel);
  auto fail = [&](std::string error, bool denied = false) {
    answer.error = std::move(error);
    answer.denied = denied;
    answer.duration_ms = elapsed_ms(begin);
    if (results_watched) emit(kResultChannel, answer.to_json(), request.trace_id);
  };

  std::shared_ptr<const ToolEntry> tool = registry_.find(request.tool);
  if (tool == nullptr) {
    invalid_.fetch_add(1, std::memory_order_relaxed);
    fail(request.tool.empty()
             ? std::string("no \"tool\" named in the call")
             : cat("there is no tool \"", request.tool, "\"; use one of the tools offered"));
    co_return answer;
  }
  answer.tool = tool->qualified;
  if (tool->schema == nullptr) {
    invalid_.fetch_add(1, std::memory_order_relaxed);
    fail(cat("tool ", tool->qualified,
             " cannot be called: its manifest's parameters are not a "
             "usable JSON Schema (",
             tool->schema_error, ")"));
    co_return answer;
  }
  if (Status valid = tool->schema->validate(request.arguments); !valid.ok()) {
    invalid_.fetch_add(1, std::memory_order_relaxed);
    fail(cat("invalid arguments for ", tool->qualified, ": ", message_of(valid)));
    co_return answer;
  }

  PolicyVerdict verdict = options_.policy.decide(*tool);
  std::string approved_by = "policy";
  if (verdict.decision == ToolDecision::kDeny) {
    denied_.fetch_add(1, std::memory_order_relaxed);
    fail(cat("calling ", tool->qualified, " is not allowed (", verdict.because, ")"), true);
    co_return answer;
  }
  if (verdict.decision == ToolDecision::kAsk) {
    auto asking = ask_person(*tool, request, verdict.because);
    Verdict person = co_await std::move(asking);
    if (!person.approved) {
      denied_.fetch_add(1, std::memory_order_relaxed);
      fail(cat("the call to ", tool->qualified, " was not approved",
               person.reason.empty() ? std::string() : cat(": ", person.reason)),
           true);
      co_return answer;
    }
    approved_by = "person";
  }

  Json log_entry;
  if (logged) {
    log_entry = {{"tool", tool->qualified},    {"arguments", request.arguments},
                 {"call_id", request.call_id}, {"requested_by", request.requested_by},
                 {"approved_by", approved_by}, {"risk", to_string(tool->risk)}};
  }
  Json call_data;
  call_data["call_id"] = request.call_id;
  call_data["arguments"] = std::move(request.arguments);
  if (!request.session.empty()) call_data["session"] = request.session;
  Event call_event = Event::make(tool->channel, std::string(kSource), std::move(call_data));
  call_event.metadata.trace_id = request.trace_id;
  // Only a tool of another node is asked again (below): for it the event is
  // kept; a local tool's takes the arguments along instead of a copy.
  auto pending = tool->node.empty() ? bus_.request(std::move(call_event), options_.timeout)
                                    : bus_.request(call_event, options_.timeout);
  Result<EventPtr> reply = co_await std::move(pending);
  // A node announces its tools as its modules start; the other nodes learn
  // the subscriptions that route to them with its next heartbeat, so a call
  // right after the announcement may find no receiver yet: try again for a
  // little while before calling the tool unavailable.
  const auto give_up = std::chrono::steady_clock::now() + kRemoteSettle;
  while (!reply.ok() && absl::IsNotFound(reply.status()) && !tool->node.empty() &&
         std::chrono::steady_clock::now() < give_up) {
    auto pause = sleep_on(bus_.executor(), std::chrono::milliseconds(100));
    co_await std::move(pause);
    auto again = bus_.request(call_event, options_.timeout);
    reply = co_await std::move(again);
  }

  if (!reply.ok()) {
    bool timed_out = reply.status().code() == absl::StatusCode::kDeadlineExceeded;
    (timed_out ? timed_out_ : failed_).fetch_add(1, std::memory_order_relaxed);
    std::string error =
        timed_out ? cat(tool->qualified, " did not answer within ", seconds_text(options_.timeout))
        : reply.status().code() == absl::StatusCode::kNotFound
            ? cat(tool->qualified, " is not available: module \"", tool->module,
                  "\" is not running")
            : cat(tool->qualified, " failed: ", message_of(reply.status()));
    fail(error);
    if (logged) {
      log_entry["ok"] = false;
      log_entry["error"] = answer.error;
      log_entry["duration_ms"] = answer.duration_ms;
      emit(kActionLogChannel, std::move(log_entry), request.trace_id);
    }
    co_return answer;
  }
  const Json& response = (*reply)->data;
  bool ok = response.value("ok", false);
  if (ok) {
    bool truncated = false;
    Json result = response.value("result", Json());
    // MCP content for an MCP client (images, audio) goes whole: the cap keeps
    // models' context small, and cutting base64 would only corrupt it.
    bool mcp_content = !request.session.empty() && result.is_object() && result.contains("mcp") &&
                       result["mcp"] == true;
    answer.result = mcp_content
                        ? std::move(result)
                        : cap_result(std::move(result), options_.max_result_bytes, &truncated);
    answer.truncated = truncated;
    if (truncated) truncated_.fetch_add(1, std::memory_order_relaxed);
    answer.ok = true;
  } else {
    failed_.fetch_add(1, std::memory_order_relaxed);
    answer.error = response.value("error", std::string("the tool failed without saying why"));
  }
  answer.duration_ms = elapsed_ms(begin);
  if (results_watched) emit(kResultChannel, answer.to_json(), request.trace_id);
  if (logged) {
    log_entry["ok"] = ok;
    if (!ok) log_entry["error"] = answer.error;
    log_entry["duration_ms"] = answer.duration_ms;
    emit(kActionLogChannel, std::move(log_entry), request.trace_id);
  }
  co_return answer;
}

Task<ToolBroker::Verdict> ToolBroker::ask_person(const ToolEntry& tool,
                                                 const ToolCallRequest& request,
                                                 const std::string& because) {
  auto approval = std::make_shared<Approval>(bus_.executor());
  approval->id = EventId::generate().to_string();
  approval->shown = {
      {"approval_id", approval->id},     {"tool", tool.qualified},
      {"description", tool.description}, {"arguments", request.arguments},
      {"risk", to_string(tool.risk)},    {"because", because},
      {"call_id", request.call_id},      {"requested_by", request.requested_by},
      {"trace_id", request.trace_id},    {"timeout_ms", options_.approval_timeout.count()}};
  SessionApprover session_approver;
  bool anyone = bus_.has_audience(kApprovalRequestChannel);
  {
    std::lock_guard lock(mutex_);
    auto it = request.session.empty() ? session_approvers_.end()
                                      : session_approvers_.find(request.session);
    if (it != session_approvers_.end()) {
      session_approver = it->second;
    }
    anyone = anyone || approvers_ > 0 || session_approver;
  }
  std::weak_ptr<ToolBroker> weak = weak_from_this();
  auto waiting = resume_with<Verdict>(
      [this, approval, weak, trace = request.trace_id, anyone,
       session_approver = std::move(session_approver)](std::function<void(Verdict)> resume) {
        approval->resume = std::move(resume);
        {
          std::lock_guard lock(mutex_);
          approvals_.emplace(approval->id, approval);
        }
        approval->timer.expires_after(options_.approval_timeout);
        approval->timer.async_wait([weak, id = approval->id, limit = options_.approval_timeout](
                                       boost::system::error_code ec) {
          if (ec) return;
          if (auto self = weak.lock()) {
            self->finish_approval(
                id, Verdict{false, cat("nobody answered within ", seconds_text(limit))});
          }
        });
        if (!running_.load()) {
          finish_approval(approval->id, Verdict{false, "LOTUS is shutting down"});
          return;
        }
        emit(kApprovalRequestChannel, approval->shown, trace);
        if (session_approver) {
          session_approver(approval->shown);
        } else if (!anyone) {
          // Waiting would only end at the timeout, with the same "no".
          finish_approval(approval->id,
                          Verdict{false,
                                  "nobody is there to approve it (nothing in this LOTUS shows "
                                  "approvals, and the caller cannot ask a person): allow the tool "
                                  "in the tools: policy (lotus mcp --allow PATTERN), or use LOTUS "
                                  "through lotus serve, whose web UI and /api/approvals answer "
                                  "approvals"});
        }
      });
  Verdict verdict = co_await waiting;
  co_return verdict;
}

void ToolBroker::on_approval_response(const EventPtr& event) {
  const Json& data = event->data;
  auto id = data.find("approval_id");
  auto approved = data.find("approved");
  if (id == data.end() || !id->is_string() || approved == data.end() || !approved->is_boolean()) {
    return;  // not an answer this broker can read; other listeners may
  }
  (void)answer_approval(id->get<std::string>(), approved->get<bool>(),
                        data.value("reason", std::string()));
}

Status ToolBroker::answer_approval(std::string_view approval_id, bool approved,
                                   std::string reason) {
  {
    std::lock_guard lock(mutex_);
    if (approvals_.find(approval_id) == approvals_.end()) {
      return absl::NotFoundError(cat("no approval \"", approval_id, "\" is waiting"));
    }
  }
  if (!approved && reason.empty()) reason = "a person said no";
  finish_approval(std::string(approval_id), Verdict{approved, std::move(reason)});
  return absl::OkStatus();
}

void ToolBroker::add_approver() {
  std::lock_guard lock(mutex_);
  ++approvers_;
}

void ToolBroker::remove_approver() {
  std::lock_guard lock(mutex_);
  if (approvers_ > 0) --approvers_;
}

void ToolBroker::set_session_approver(const std::string& session, SessionApprover approver) {
  std::lock_guard lock(mutex_);
  session_approvers_[session] = std::move(approver);
}

void ToolBroker::clear_session_approver(const std::string& session) {
  std::lock_guard lock(mutex_);
  session_approvers_.erase(session);
}

void ToolBroker::finish_approval(const std::string& id, Verdict verdict) {
  std::shared_ptr<Approval> approval;
  {
    std::lock_guard lock(mutex_);
    auto it = approvals_.find(id);
    if (it == approvals_.end()) return;
    approval = it->second;
    approvals_.erase(it);
  }
  if (approval->done.exchange(true)) return;
  approval->timer.cancel();
  // Resume on the pool, not in the caller's stack (a CLI thread, a timer).
  boost::asio::post(bus_.executor(), [approval, verdict = std::move(verdict)]() mutable {
    approval->resume(std::move(verdict));
  });
}

std::shared_ptr<const Json> ToolBroker::tool_listing() const {
  std::lock_guard lock(mutex_);
  uint64_t version = registry_.version();
  if (listing_ && listing_version_ == version) return listing_;
  Json tools = Json::array();
  for (const auto& tool : *registry_.list()) {
    Json entry = {{"name", tool->model_name},
                  {"qualified", tool->qualified},
                  {"description", tool->description},
                  {"parameters", tool->parameters},
                  {"risk", to_string(tool->risk)},
                  {"decision", to_string(options_.policy.decide(*tool).decision)}};
    if (!tool->node.empty()) entry["node"] = tool->node;  // runs on another node
    tools.push_back(std::move(entry));
  }
  listing_ = std::make_shared<const Json>(Json{{"version", version}, {"tools", std::move(tools)}});
  listing_version_ = version;
  return listing_;
}

Json ToolBroker::pending_approvals() const {
  Json list = Json::array();
  std::lock_guard lock(mutex_);
  for (const auto& [id, approval] : approvals_) list.push_back(approval->shown);
  return list;
}

ToolBroker::Stats ToolBroker::stats() const {
  return Stats{calls_.load(),  invalid_.load(),   denied_.load(),
               failed_.load(), timed_out_.load(), truncated_.load()};
}

void ToolBroker::emit(std::string_view channel, Json data, const std::string& trace_id) {
  Event event = Event::make(std::string(channel), std::string(kSource), std::move(data));
  event.metadata.trace_id = trace_id;
  (void)bus_.publish(std::move(event));
}

}  // namespace lotus::llm
