// The reasoning module: LOTUS's ReAct loop (see manifest.yaml for the flow).
//
// A task runs as a detached coroutine, not inside the input handler, so the
// module's mailbox stays free for cancellations and new input while a task
// thinks or waits for an approval. Tasks of one conversation run one after
// another; tasks of different conversations run side by side.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "conversation.h"
#include "llm/tool_call_text.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "runtime/module_factory.h"

namespace lotus::reasoning {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kDelegateTool = "delegate";
constexpr std::string_view kMissingCapabilityTool = "report_missing_capability";

constexpr std::string_view kDefaultPrompt =
    "You are LOTUS, an AI operating system running on the user's own machine. You act through "
    "tools: use them whenever they help, and call several at once when they do not depend on "
    "each other. A tool result that is an error tells you what to fix; adjust and try again, or "
    "explain. When no tool can do what is asked, call report_missing_capability, then tell the "
    "user plainly. Keep answers short and concrete.";

struct Settings {
  int max_iterations = 10;
  std::chrono::milliseconds time_budget{300'000};
  int max_tokens = 2048;
  size_t history_messages = 40;
  size_t keep_messages = 400;
  int recall_limit = 5;
  std::chrono::milliseconds recall_timeout{300};
  bool learn = true;
  bool stream = true;
  std::string system_prompt{kDefaultPrompt};
  std::map<std::string, std::string> delegation;  // kind -> model alias
};

// One request being worked on.
struct TaskState {
  std::string id;  // the trace id every event of the task carries
  std::string conversation_id;
  std::string request_text;
  std::string user_id;
  Clock::time_point started = Clock::now();
  Clock::time_point deadline;
  std::atomic<bool> cancel{false};
  std::atomic<bool> streamed{false};
  int iterations = 0;
  int tool_calls = 0;
  std::vector<std::string> worked;  // "fs.read(path=...)" for calls that succeeded
};

struct ToolOutcome {
  ToolCall call;
  bool ok = false;
  std::string text;  // what the model reads
  Json shown;        // what displays show (result or error)
};

std::string short_text(const std::string& text, size_t limit) {
  if (text.size() <= limit) return text;
  return text.substr(0, limit) + "...";
}

class ReasoningModule : public Module {
 public:
  Task<void> initialize() override {
    read_settings();
    on("on_user_input", &ReasoningModule::on_user_input);
    on("on_cancel", &ReasoningModule::on_cancel);
    on("on_tools_changed", &ReasoningModule::on_tools_changed);
    on("on_history", &ReasoningModule::on_history);
    co_return;
  }

  Task<void> shutdown() override {
    {
      std::lock_guard lock(mutex_);
      shutting_down_ = true;
      for (auto& [id, task] : tasks_) task->cancel.store(true);
    }
    // Running tasks notice the flag at their next step; give them a moment
    // to save their conversation and say they stopped.
    for (int i = 0; i < 300 && running_tasks_.load() > 0; ++i) {
      co_await context().sleep(std::chrono::milliseconds(10));
    }
  }

  Task<Json> health_check() override {
    std::lock_guard lock(mutex_);
    co_return Json{{"status", "healthy"},
                   {"running_tasks", tasks_.size()},
                   {"completed_tasks", completed_tasks_},
                   {"failed_tasks", failed_tasks_},
                   {"conversations", conversations_.size()}};
  }

 private:
  struct ConversationSlot {
    std::unique_ptr<Conversation> conversation;
    bool busy = false;
    std::vector<std::shared_ptr<TaskState>> queued;
  };

  void read_settings() {
    const Json& c = config();
    s_.max_iterations = std::max(1, c.value("max_iterations", 10));
    s_.time_budget = std::chrono::milliseconds(
        static_cast<int64_t>(std::max(0.1, c.value("time_budget_seconds", 300.0)) * 1000));
    s_.max_tokens = std::max(16, c.value("max_tokens", 2048));
    s_.history_messages = static_cast<size_t>(std::max(2, c.value("history_messages", 40)));
    s_.keep_messages = static_cast<size_t>(std::max(10, c.value("keep_messages", 400)));
    s_.recall_limit = std::max(0, c.value("recall_limit", 5));
    s_.recall_timeout = std::chrono::milliseconds(std::max(1, c.value("recall_timeout_ms", 300)));
    s_.learn = c.value("learn", true);
    s_.stream = c.value("stream", true);
    std::string prompt = c.value("system_prompt", "");
    if (!prompt.empty()) s_.system_prompt = prompt;
    if (auto d = c.find("delegation"); d != c.end() && d->is_object()) {
      for (const auto& [kind, model] : d->items()) {
        if (model.is_string() && !model.get<std::string>().empty()) {
          s_.delegation[kind] = model.get<std::string>();
        }
      }
    }
  }

  // --- handlers ------------------------------------------------------------

  Task<void> on_user_input(const Event& event) {
    std::string text = event.data.value("text", "");
    auto task = std::make_shared<TaskState>();
    task->id = event.metadata.trace_id.empty() ? event.id.to_string() : event.metadata.trace_id;
    task->conversation_id = event.data.value("conversation_id", "default");
    task->user_id = event.metadata.user_id;
    if (text.empty() || task->conversation_id.empty()) {
      emit_display(*task, "error",
                   "perception.user_input needs a non-empty \"text\" (and, if given, a non-empty "
                   "\"conversation_id\")");
      co_return;
    }
    task->request_text = std::move(text);
    task->deadline = Clock::now() + s_.time_budget;
    bool start_now = false;
    {
      std::lock_guard lock(mutex_);
      if (shutting_down_) co_return;
      ConversationSlot& slot = slot_for(task->conversation_id);
      tasks_[task->id] = task;
      if (slot.busy) {
        slot.queued.push_back(task);
      } else {
        slot.busy = true;
        start_now = true;
      }
    }
    if (start_now) launch(task);
    co_return;
  }

  Task<void> on_cancel(const Event& event) {
    std::string task_id = event.data.value("task_id", "");
    std::vector<std::shared_ptr<TaskState>> cancelled;
    {
      std::lock_guard lock(mutex_);
      for (auto& [id, task] : tasks_) {
        if (task_id.empty() || id == task_id) cancelled.push_back(task);
      }
    }
    for (auto& task : cancelled) {
      if (!task->cancel.exchange(true)) emit_display(*task, "cancelled", "Cancelled.");
    }
    co_return;
  }

  // cognition.history {conversation_id}: the conversation as last kept (read
  // from the state store, so a task still running is never touched).
  Task<void> on_history(const Event& event) {
    const std::string id = event.data.value("conversation_id", "");
    if (id.empty()) {
      (void)reply(event, Json{{"ok", false}, {"error", "conversation_id: required, a string"}});
      co_return;
    }
    Conversation conversation(id, s_.keep_messages);
    if (Status loaded = conversation.load(context()); !loaded.ok()) {
      (void)reply(event, Json{{"ok", false}, {"error", std::string(message_of(loaded))}});
      co_return;
    }
    Json messages = Json::array();
    for (const ChatMessage& message : conversation.messages()) messages.push_back(to_json(message));
    (void)reply(event,
                Json{{"ok", true}, {"conversation_id", id}, {"messages", std::move(messages)}});
  }

  Task<void> on_tools_changed(const Event&) {
    tools_stale_.store(true);
    co_return;
  }

  // --- running tasks --------------------------------------------------------

  ConversationSlot& slot_for(const std::string& id) {
    ConversationSlot& slot = conversations_[id];
    if (!slot.conversation) {
      slot.conversation = std::make_unique<Conversation>(id, s_.keep_messages);
      if (Status loaded = slot.conversation->load(context()); !loaded.ok()) {
        log(LogLevel::kWarn,
            cat("starting conversation \"", id, "\" afresh: the stored one could not be read (",
                message_of(loaded), ")"));
      }
    }
    return slot;
  }

  void launch(std::shared_ptr<TaskState> task) {
    running_tasks_.fetch_add(1);
    start_detached(run_task(std::move(task)), [this](std::exception_ptr failure) {
      if (failure) log(LogLevel::kError, "a reasoning task ended with an exception");
      running_tasks_.fetch_sub(1);
    });
  }

  Task<void> run_task(std::shared_ptr<TaskState> task) {
    Conversation* conversation = nullptr;
    {
      std::lock_guard lock(mutex_);
      conversation = conversations_[task->conversation_id].conversation.get();
    }
    auto work = react(task, *conversation);
    Result<std::string> answer = co_await std::move(work);
    finish(*task, *conversation, answer);

    std::shared_ptr<TaskState> next;
    {
      std::lock_guard lock(mutex_);
      tasks_.erase(task->id);
      ConversationSlot& slot = conversations_[task->conversation_id];
      if (!slot.queued.empty() && !shutting_down_) {
        next = slot.queued.front();
        slot.queued.erase(slot.queued.begin());
      } else {
        slot.busy = false;
        for (auto& dropped : slot.queued) tasks_.erase(dropped->id);
        slot.queued.clear();
      }
    }
    if (next) launch(std::move(next));
  }

  void finish(TaskState& task, Conversation& conversation, const Result<std::string>& answer) {
    if (Status saved = conversation.save(context()); !saved.ok()) {
      log(LogLevel::kError,
          cat("could not keep conversation \"", conversation.id(), "\": ", message_of(saved)));
    }
    bool cancelled = task.cancel.load() || answer.status().code() == absl::StatusCode::kCancelled;
    Json done = {{"task_id", task.id},
                 {"conversation_id", task.conversation_id},
                 {"ok", answer.ok()},
                 {"cancelled", cancelled},
                 {"iterations", task.iterations},
                 {"tool_calls", task.tool_calls},
                 {"duration_ms",
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - task.started)
                      .count()}};
    if (answer.ok()) {
      done["answer"] = *answer;
      Json shown = {{"streamed", task.streamed.load()}, {"final", true}};
      emit_display(task, "message", *answer, std::move(shown));
      learn(task);
    } else {
      done["error"] = std::string(message_of(answer.status()));
      if (!cancelled) {
        emit_display(task, "error", cat("I could not finish: ", message_of(answer.status())),
                     Json{{"final", true}});
      }
    }
    {
      std::lock_guard lock(mutex_);
      ++(answer.ok() ? completed_tasks_ : failed_tasks_);
    }
    emit(task, "cognition.task_complete", std::move(done));
  }

  Task<Result<std::string>> react(std::shared_ptr<TaskState> task, Conversation& conversation) {
    conversation.append(ChatMessage::user(task->request_text));
    record(*task, conversation.messages().back());
    if (Status saved = conversation.save(context()); !saved.ok()) {
      log(LogLevel::kError,
          cat("could not keep conversation \"", conversation.id(), "\": ", message_of(saved)));
    }

    auto recalling = recall_memories(task);
    std::string memories = co_await std::move(recalling);
    auto listing = tool_specs();
    ToolSpecs tools = co_await std::move(listing);

    std::string system = s_.system_prompt;
    if (!memories.empty()) system += cat("\n\nWhat you remember that may help:\n", memories);
    std::vector<ChatMessage> messages;
    messages.push_back(ChatMessage::system(std::move(system)));
    for (ChatMessage& m : conversation.window(s_.history_messages))
      messages.push_back(std::move(m));

    while (task->iterations < s_.max_iterations) {
      if (task->cancel.load()) co_return absl::CancelledError("cancelled");
      if (Clock::now() >= task->deadline) {
        co_return absl::DeadlineExceededError(
            cat("the time budget of ", s_.time_budget.count() / 1000.0, " s ran out"));
      }
      ++task->iterations;

      // THINK
      ChatRequest request;
      request.messages = messages;
      request.tools = tools;
      request.max_tokens = s_.max_tokens;
      request.stream = s_.stream;
      request.cancel = &task->cancel;
      StreamCallback on_text;
      if (s_.stream) {
        on_text = [this, task](std::string_view delta) {
          if (delta.empty() || task->cancel.load()) return;
          task->streamed.store(true);
          emit_display(*task, "delta", std::string(delta));
        };
      }
      auto thinking = chat(std::move(request), std::move(on_text));
      Result<ChatResponse> turn = co_await std::move(thinking);
      if (!turn.ok()) co_return turn.status();
      if (task->cancel.load()) co_return absl::CancelledError("cancelled");

      ChatMessage said = ChatMessage::assistant(turn->text, turn->tool_calls);
      conversation.append(said);
      record(*task, said);
      messages.push_back(std::move(said));
      if (turn->tool_calls.empty()) co_return turn->text;
      if (!turn->text.empty() && !task->streamed.load()) {
        emit_display(*task, "thought", turn->text);
      }

      // ACT, in parallel
      std::vector<Task<ToolOutcome>> calls;
      for (ToolCall& call : turn->tool_calls) {
        if (call.id.empty()) call.id = cat("call_", task->tool_calls + calls.size() + 1);
        calls.push_back(act(task, call));
      }
      task->tool_calls += static_cast<int>(calls.size());
      auto acting = when_all(std::move(calls));
      std::vector<ToolOutcome> outcomes = co_await std::move(acting);

      // OBSERVE
      for (ToolOutcome& outcome : outcomes) {
        ChatMessage result = ChatMessage::tool_result(outcome.call, outcome.text, !outcome.ok);
        conversation.append(result);
        record(*task, result);
        messages.push_back(std::move(result));
      }
      task->streamed.store(false);
    }
    co_return absl::ResourceExhaustedError(cat("no answer after ", s_.max_iterations,
                                               " rounds of thinking and acting (raise "
                                               "modules.reasoning.max_iterations to allow more)"));
  }

  Task<ToolOutcome> act(std::shared_ptr<TaskState> task, ToolCall call) {
    ToolOutcome outcome;
    outcome.call = call;
    emit_display(*task, "tool_call", llm::describe_tool_call(call.name, call.arguments),
                 Json{{"tool", call.name}, {"arguments", call.arguments}, {"call_id", call.id}});
    if (call.name == kMissingCapabilityTool) {
      emit(*task, "cognition.capability_missing",
           Json{{"task_id", task->id},
                {"request", task->request_text},
                {"capability", call.arguments.value("capability", "")},
                {"reason", call.arguments.value("reason", "")}});
      outcome.ok = true;
      outcome.text = "Noted. Tell the user plainly that this cannot be done yet, and why.";
    } else if (call.name == kDelegateTool) {
      auto delegating = delegate(task, call);
      outcome = co_await std::move(delegating);
    } else {
      auto remaining =
          std::chrono::duration_cast<std::chrono::milliseconds>(task->deadline - Clock::now());
      auto calling = request_traced(*task, "cognition.tool_call",
                                    Json{{"tool", call.name},
                                         {"arguments", call.arguments},
                                         {"call_id", call.id},
                                         {"task_id", task->id}},
                                    std::max(remaining, std::chrono::milliseconds(1)));
      Result<EventPtr> reply = co_await std::move(calling);
      if (!reply.ok()) {
        outcome.text = cat("the call could not be made: ", message_of(reply.status()));
      } else {
        const Json& data = (*reply)->data;
        outcome.ok = data.value("ok", false);
        if (outcome.ok) {
          const Json& result = data.contains("result") ? data["result"] : Json();
          outcome.text = result.is_string() ? result.get<std::string>() : result.dump();
          outcome.shown = result;
          task->worked.push_back(
              llm::describe_tool_call(data.value("tool", call.name), call.arguments));
        } else {
          outcome.text = data.value("error", std::string("the tool failed"));
        }
      }
    }
    if (!outcome.ok) outcome.shown = outcome.text;
    emit_display(*task, "tool_result", short_text(outcome.text, 2000),
                 Json{{"tool", call.name}, {"call_id", call.id}, {"ok", outcome.ok}});
    co_return outcome;
  }

  Task<ToolOutcome> delegate(std::shared_ptr<TaskState> task, ToolCall call) {
    ToolOutcome outcome;
    outcome.call = call;
    std::string kind = call.arguments.value("kind", "");
    std::string work = call.arguments.value("task", "");
    auto model = s_.delegation.find(kind);
    if (work.empty() || model == s_.delegation.end()) {
      outcome.text = cat("delegate needs \"task\" and a \"kind\" among the configured ones");
      co_return outcome;
    }
    emit(*task, "cognition.delegate",
         Json{{"task_id", task->id}, {"kind", kind}, {"model", model->second}, {"task", work}});
    ChatRequest request;
    request.model = model->second;
    request.messages = {ChatMessage::system("Do this task well and answer with the result only."),
                        ChatMessage::user(work)};
    request.max_tokens = s_.max_tokens;
    request.cancel = &task->cancel;
    auto asking = chat(std::move(request));
    Result<ChatResponse> reply = co_await std::move(asking);
    if (reply.ok()) {
      outcome.ok = true;
      outcome.text = reply->text;
      task->worked.push_back(cat("delegate(", kind, " -> ", model->second, ")"));
    } else {
      outcome.text = cat("delegation to ", model->second, " failed: ", message_of(reply.status()));
    }
    co_return outcome;
  }

  // --- context ----------------------------------------------------------------

  Task<std::string> recall_memories(std::shared_ptr<TaskState> task) {
    if (s_.recall_limit <= 0) co_return std::string();
    auto asking = request_traced(*task, "memory.recall",
                                 Json{{"query", task->request_text}, {"limit", s_.recall_limit}},
                                 s_.recall_timeout);
    Result<EventPtr> reply = co_await std::move(asking);
    // No memory module (NotFound) or a slow one: think without memories.
    if (!reply.ok() || !(*reply)->data.value("ok", false)) co_return std::string();
    std::string lines;
    for (const Json& memory : (*reply)->data.value("results", Json::array())) {
      std::string content = memory.value("content", "");
      if (!content.empty()) lines += cat("- ", short_text(content, 500), "\n");
    }
    co_return lines;
  }

  // The tools as the model sees them, fetched from the broker again only
  // when system.tools_changed said the list changed.
  Task<ToolSpecs> tool_specs() {
    if (!tools_stale_.load()) {
      std::lock_guard lock(mutex_);
      if (tools_ready_) co_return tools_;
    }
    tools_stale_.store(false);
    auto asking = request("cognition.tools", Json::object(), std::chrono::seconds(2));  // NOLINT
    Result<EventPtr> reply = co_await std::move(asking);
    std::vector<ToolSpec> specs;
    if (reply.ok()) {
      for (const Json& tool : (*reply)->data.value("tools", Json::array())) {
        if (tool.value("decision", "") == "deny") continue;  // offering it would only waste turns
        specs.push_back(ToolSpec{tool.value("name", ""), tool.value("description", ""),
                                 tool.value("parameters", Json::object())});
      }
    } else {
      log(LogLevel::kWarn, cat("no tool list: ", message_of(reply.status())));
      tools_stale_.store(true);
    }
    specs.push_back(ToolSpec{
        std::string(kMissingCapabilityTool),
        "Say that no available tool can do what the user asks, naming the missing capability.",
        Json::parse(R"({"type": "object", "properties": {
            "capability": {"type": "string", "description": "What would be needed"},
            "reason": {"type": "string", "description": "Why the current tools cannot do it"}},
            "required": ["capability"]})")});
    if (!s_.delegation.empty()) {
      Json kinds = Json::array();
      for (const auto& [kind, model] : s_.delegation) kinds.push_back(kind);
      specs.push_back(ToolSpec{
          std::string(kDelegateTool),
          "Hand a self-contained piece of work to a model suited to its kind; returns its answer.",
          Json{{"type", "object"},
               {"properties",
                {{"kind", {{"type", "string"}, {"enum", kinds}}},
                 {"task",
                  {{"type", "string"}, {"description", "Everything the other model needs"}}}}},
               {"required", {"kind", "task"}}}});
    }
    ToolSpecs shared(std::move(specs));
    {
      std::lock_guard lock(mutex_);
      tools_ = shared;
      tools_ready_ = true;
    }
    co_return shared;
  }

  // --- learning ---------------------------------------------------------------

  void learn(const TaskState& task) {
    if (!s_.learn || task.worked.empty()) return;
    std::string steps;
    for (const std::string& step : task.worked) {
      if (!steps.empty()) steps += " -> ";
      steps += step;
    }
    emit(task, "memory.store",
         Json{{"content", cat("For a request like \"", short_text(task.request_text, 200),
                              "\", this worked: ", steps)},
              {"type", "procedural"},
              {"importance", 0.6},
              {"metadata", {{"task_id", task.id}, {"tools", task.worked}}}});
  }

  // --- events -----------------------------------------------------------------

  void record(const TaskState& task, const ChatMessage& message) {
    Json data = to_json(message);
    data["conversation_id"] = task.conversation_id;
    data["task_id"] = task.id;
    emit(task, "conversation_stream", std::move(data));
  }

  void emit_display(const TaskState& task, std::string_view kind, std::string text,
                    Json extra = Json::object()) {
    extra["kind"] = kind;
    extra["text"] = std::move(text);
    extra["task_id"] = task.id;
    extra["conversation_id"] = task.conversation_id;
    emit(task, "action.display", std::move(extra));
  }

  void emit(const TaskState& task, std::string_view channel, Json data) {
    EventMetadata metadata;
    metadata.trace_id = task.id;
    metadata.user_id = task.user_id;
    Status sent = publish(channel, std::move(data), std::move(metadata));
    if (!sent.ok())
      log(LogLevel::kWarn, cat("could not publish ", channel, ": ", message_of(sent)));
  }

  Task<Result<EventPtr>> request_traced(const TaskState& task, std::string_view channel, Json data,
                                        std::chrono::milliseconds timeout) {
    // Without it request() would take the trace of whatever event the
    // module happens to be handling: a task runs outside its handler.
    EventMetadata metadata;
    metadata.trace_id = task.id;
    metadata.user_id = task.user_id;
    return request(channel, std::move(data), timeout, std::move(metadata));
  }

  Settings s_;
  std::mutex mutex_;
  std::map<std::string, ConversationSlot> conversations_;
  std::map<std::string, std::shared_ptr<TaskState>> tasks_;
  ToolSpecs tools_;  // shared with every request: never copied per turn
  bool tools_ready_ = false;
  std::atomic<bool> tools_stale_{true};
  std::atomic<int> running_tasks_{0};
  bool shutting_down_ = false;
  uint64_t completed_tasks_ = 0;
  uint64_t failed_tasks_ = 0;
};

static RegisterBuiltinModule<ReasoningModule> registered("reasoning");

}  // namespace
}  // namespace lotus::reasoning
