// lotus::Module: what a module author writes.
//
// A module is a manifest.yaml (its contract) plus a class derived from
// Module. In initialize() it registers the handlers its manifest's
// subscriptions name, the tools its manifest declares and any periodic jobs;
// the nucleus checks both directions of that contract at load. Everything a
// module may do goes through its ModuleContext: publish (only to declared
// publications), request/reply, persistent state, config, logs. This header
// and the ones it includes are the whole surface; it is versioned by
// LOTUS_MODULE_ABI_VERSION and is all a shared-library plugin links against.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lotus/event.h"
#include "lotus/llm.h"
#include "lotus/status.h"
#include "lotus/task.h"

// Bumped whenever Module, ModuleContext or a type they use changes layout.
// It folds in the compiler and library versions a plugin must share with
// the nucleus, since the boundary passes C++ objects.
#define LOTUS_MODULE_ABI_VERSION 6
#define LOTUS_ABI_STAMP                                                                            \
  (static_cast<uint64_t>(LOTUS_MODULE_ABI_VERSION) << 48 | static_cast<uint64_t>(__GNUC__) << 40 | \
   static_cast<uint64_t>(__GNUC_MINOR__) << 32 |                                                   \
   static_cast<uint64_t>(NLOHMANN_JSON_VERSION_MAJOR) << 24 |                                      \
   static_cast<uint64_t>(NLOHMANN_JSON_VERSION_MINOR) << 16 |                                      \
   static_cast<uint64_t>(__cplusplus / 100 % 10000))

namespace lotus {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// A tool a module finds at run time rather than declaring in its manifest
// (an MCP client mounting a server's tools); see ModuleContext::mount_tools.
struct MountedTool {
  std::string name;  // [A-Za-z0-9_-]{1,64}
  std::string description;
  Json parameters = Json::object();      // a JSON Schema object
  std::vector<std::string> permissions;  // what it needs: decides its risk level
};
// Runs one call of a mounted tool: (tool name, arguments) -> result or error.
using MountedToolHandler = std::function<Task<Result<Json>>(std::string tool, Json arguments)>;

// The narrow view of the nucleus a module gets. Implemented by the nucleus.
class ModuleContext {
 public:
  virtual ~ModuleContext() = default;

  virtual const std::string& module_name() const = 0;
  // The module's config: manifest defaults overlaid with the user's config.
  virtual const Json& config() const = 0;

  // Publishes to a channel the manifest's `publications` declare; anything
  // else is refused (PermissionDenied) and counted. Thread-safe. Without a
  // trace_id in `metadata`, the event joins the trace of the event the module
  // is handling, so call it from a thread of your own with an explicit
  // trace_id (or the event's own id starts a new trace).
  virtual Status publish(std::string_view channel, Json data, EventMetadata metadata) = 0;
  // Sends a request and waits for its reply (see Bus::request). The trace
  // follows the same rule as publish(): give a trace_id in `metadata` when
  // calling from work that outlives the handler that started it.
  virtual Task<Result<EventPtr>> request(std::string_view channel, Json data,
                                         std::chrono::milliseconds timeout,
                                         EventMetadata metadata) = 0;
  // Answers a request event received by a handler.
  virtual Status reply(const Event& request, Json data) = 0;

  // A folder of the module's own under the LOTUS data folder (created on
  // first call): where it keeps files of its own, beside the nucleus's.
  virtual std::filesystem::path data_dir() = 0;

  // Per-module state that survives reloads and restarts.
  virtual Result<Json> get_state(std::string_view key) = 0;
  virtual Status set_state(std::string_view key, const Json& value) = 0;

  // Suspends the calling coroutine without blocking a thread.
  virtual Task<void> sleep(std::chrono::milliseconds duration) = 0;

  // One assistant turn from the configured LLM providers, run off the bus
  // threads. An empty `request.model` means the manifest's
  // `providers.primary` (then its `fallback` chain); with none, the
  // configured default model. Tokens and cost are counted for this module.
  // FailedPrecondition, naming what to set, when no provider is configured.
  virtual Task<Result<ChatResponse>> chat(ChatRequest request, StreamCallback on_text) = 0;

  virtual void log(LogLevel level, std::string_view message) = 0;

  // Offers tools found at run time under `group`, which must be this
  // module's name followed by "_" and more ("mcp_github"). They are
  // registered as "group.tool" and listed and called like any tool (schema
  // check, permission policy, approvals, timeout); calls arrive at `handler`
  // concurrently and off the module's mailbox, so it must be thread-safe and
  // must not touch state the module's handlers own without a lock. Replaces
  // the group's earlier tools; an empty list removes the group. Every group
  // a module mounted is removed when it stops, restarts or reloads.
  virtual Status mount_tools(std::string_view group, std::vector<MountedTool> tools,
                             MountedToolHandler handler) {
    (void)group;
    (void)tools;
    (void)handler;
    return absl::UnimplementedError("this context cannot mount tools");
  }

  // The vector collections each loaded module's manifest declares under
  // memory.vector_collections, by module name (the memory module checks
  // stores against them).
  virtual std::map<std::string, std::vector<std::string>> vector_collections() const { return {}; }
};

using ToolResult = Result<Json>;

// One call of a tool, as the tool sees it while it runs: besides returning its
// result it may tell its caller how far it got, log to it, and ask it things
// (an MCP client's sampling/createMessage or elicitation/create). Callers
// that take none of this (the reasoning engine) drop progress and logs, and
// ask() fails for them. Valid until the tool returns.
//
// A result may carry MCP content instead of plain JSON: an object with a
// "content" array of MCP content blocks ({"type": "text" | "image" | "audio" |
// "resource" | "resource_link", ...}) and "mcp": true; MCP clients get the
// blocks as they are, everyone else gets the object. An error Status is an
// error result (MCP "isError": true) with the status message as its text.
class ToolCallContext {
 public:
  virtual ~ToolCallContext() = default;
  virtual const std::string& call_id() const = 0;
  // `progress` out of `total` (0 when unknown); each report must be higher
  // than the one before. Dropped when the caller did not ask for progress.
  virtual void progress(double progress, double total = 0, std::string_view message = {}) = 0;
  // A log message for the caller: an MCP level name ("debug", "info", "notice",
  // "warning", "error", "critical", "alert", "emergency") and any JSON.
  virtual void log(std::string_view level, Json data) = 0;
  // Sends a request (`method`, `params`) to whoever made the call and waits
  // for its result. FailedPrecondition when the caller cannot be asked (it is
  // not an MCP client, or its client does not offer `method`),
  // DeadlineExceeded after `timeout`.
  virtual Task<Result<Json>> ask(std::string method, Json params,
                                 std::chrono::milliseconds timeout) = 0;
};

// A finished MCP tool result: `content` blocks, and whether it is an error.
inline Json mcp_content(Json content, bool is_error = false) {
  Json out = {{"mcp", true}, {"content", std::move(content)}};
  if (is_error) out["isError"] = true;
  return out;
}

// Thrown from initialize() when retrying cannot help (bad config, a missing
// device): the module is marked failed at once instead of being restarted
// with backoff. Any other exception is treated as transient and retried.
class PermanentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Module {
 public:
  using Handler = std::function<Task<void>(const Event&)>;
  using Tool = std::function<Task<ToolResult>(const Json& arguments, ToolCallContext& call)>;
  using SimpleTool = std::function<Task<ToolResult>(const Json& arguments)>;
  using Job = std::function<Task<void>()>;

  struct PeriodicJob {
    std::string name;
    std::chrono::milliseconds interval;
    Job job;
  };

  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  virtual ~Module() = default;

  // Lifecycle hooks. initialize() registers handlers, tools and jobs.
  virtual Task<void> initialize() { co_return; }
  virtual Task<void> shutdown() { co_return; }
  virtual Task<Json> health_check() { co_return Json{{"status", "healthy"}}; }

  // --- called by the nucleus -------------------------------------------------
  void attach(ModuleContext* context) { context_ = context; }
  const std::map<std::string, Handler, std::less<>>& handlers() const { return handlers_; }
  const std::map<std::string, Tool, std::less<>>& tools() const { return tools_; }
  const std::vector<PeriodicJob>& jobs() const { return jobs_; }

  // Runs a handler, turning any exception into a Status so none crosses the
  // module boundary. Compiled into the module's own binary.
  Task<Status> invoke_handler(const Handler& handler, const Event& event) {
    try {
      co_await handler(event);
    } catch (const std::exception& e) {
      co_return absl::InternalError(std::string("handler threw: ") + e.what());
    } catch (...) {
      co_return absl::InternalError("handler threw a non-standard exception");
    }
    co_return absl::OkStatus();
  }
  Task<ToolResult> invoke_tool(const Tool& tool, const Json& arguments, ToolCallContext& call) {
    try {
      co_return co_await tool(arguments, call);
    } catch (const std::exception& e) {
      co_return absl::InternalError(std::string("tool threw: ") + e.what());
    } catch (...) {
      co_return absl::InternalError("tool threw a non-standard exception");
    }
  }
  Task<Status> invoke_job(const Job& job) {
    try {
      co_await job();
    } catch (const std::exception& e) {
      co_return absl::InternalError(std::string("periodic job threw: ") + e.what());
    } catch (...) {
      co_return absl::InternalError("periodic job threw a non-standard exception");
    }
    co_return absl::OkStatus();
  }
  Task<Status> invoke_lifecycle(Task<void> hook) {
    try {
      co_await std::move(hook);
    } catch (const PermanentError& e) {
      co_return absl::FailedPreconditionError(e.what());
    } catch (const std::exception& e) {
      co_return absl::InternalError(e.what());
    } catch (...) {
      co_return absl::InternalError("non-standard exception");
    }
    co_return absl::OkStatus();
  }

 protected:
  // Registers the handler a manifest subscription names (`handler:`).
  void on(std::string handler_name, Handler handler) {
    handlers_[std::move(handler_name)] = std::move(handler);
  }
  template <typename Derived>
  void on(std::string handler_name, Task<void> (Derived::*method)(const Event&)) {
    auto* self = static_cast<Derived*>(this);
    on(std::move(handler_name), [self, method](const Event& e) { return (self->*method)(e); });
  }

  // Registers a tool the manifest declares (`tools[].name`). The forms
  // taking a ToolCallContext& may report progress, log and ask the caller.
  void tool(std::string name, Tool fn) { tools_[std::move(name)] = std::move(fn); }
  void tool(std::string name, SimpleTool fn) {
    tools_[std::move(name)] = [fn = std::move(fn)](const Json& args, ToolCallContext&) {
      return fn(args);
    };
  }
  template <typename Derived>
  void tool(std::string name, Task<ToolResult> (Derived::*method)(const Json&)) {
    auto* self = static_cast<Derived*>(this);
    tool(std::move(name), Tool([self, method](const Json& args, ToolCallContext&) {
           return (self->*method)(args);
         }));
  }
  template <typename Derived>
  void tool(std::string name, Task<ToolResult> (Derived::*method)(const Json&, ToolCallContext&)) {
    auto* self = static_cast<Derived*>(this);
    tool(std::move(name), Tool([self, method](const Json& args, ToolCallContext& call) {
           return (self->*method)(args, call);
         }));
  }

  // Runs `job` every `interval` in the module's mailbox (never concurrently
  // with its handlers). An exception is logged and the job keeps its schedule.
  void every(std::chrono::milliseconds interval, std::string name, Job job) {
    jobs_.push_back(PeriodicJob{std::move(name), interval, std::move(job)});
  }
  template <typename Derived>
  void every(std::chrono::milliseconds interval, Task<void> (Derived::*method)()) {
    auto* self = static_cast<Derived*>(this);
    every(interval, "job" + std::to_string(jobs_.size()),
          [self, method] { return (self->*method)(); });
  }

  // Convenience wrappers over the context.
  Status publish(std::string_view channel, Json data = Json::object(),
                 EventMetadata metadata = {}) {
    return context_->publish(channel, std::move(data), std::move(metadata));
  }
  Task<Result<EventPtr>> request(std::string_view channel, Json data,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                 EventMetadata metadata = {}) {
    return context_->request(channel, std::move(data), timeout, std::move(metadata));
  }
  Status reply(const Event& request_event, Json data) {
    return context_->reply(request_event, std::move(data));
  }
  Task<Result<ChatResponse>> chat(ChatRequest request, StreamCallback on_text = {}) {
    return context_->chat(std::move(request), std::move(on_text));
  }
  Result<Json> get_state(std::string_view key) { return context_->get_state(key); }
  Status set_state(std::string_view key, const Json& value) {
    return context_->set_state(key, value);
  }
  const Json& config() const { return context_->config(); }
  const std::string& name() const { return context_->module_name(); }
  void log(LogLevel level, std::string_view message) { context_->log(level, message); }
  ModuleContext& context() { return *context_; }

 private:
  ModuleContext* context_ = nullptr;
  std::map<std::string, Handler, std::less<>> handlers_;
  std::map<std::string, Tool, std::less<>> tools_;
  std::vector<PeriodicJob> jobs_;
};

}  // namespace lotus

// Exports a module class from a shared-library plugin. The nucleus checks
// lotus_module_abi() before calling anything else, then creates and later
// destroys the instance through these functions, so allocation stays on one
// side of the boundary.
#define LOTUS_MODULE(ModuleClass)                                                            \
  extern "C" __attribute__((visibility("default"))) uint64_t lotus_module_abi() {            \
    return LOTUS_ABI_STAMP;                                                                  \
  }                                                                                          \
  extern "C" __attribute__((visibility("default"))) ::lotus::Module* lotus_module_create() { \
    try {                                                                                    \
      return new ModuleClass();                                                              \
    } catch (...) {                                                                          \
      return nullptr;                                                                        \
    }                                                                                        \
  }                                                                                          \
  extern "C" __attribute__((visibility("default"))) void lotus_module_destroy(               \
      ::lotus::Module* module) {                                                             \
    delete module;                                                                           \
  }
