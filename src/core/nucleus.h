// Nucleus: the small, stable kernel. It discovers modules from their
// manifests, resolves the load order, starts them, supervises and reloads
// them, answers health, and shuts everything down in reverse order. It knows
// nothing about AI: every capability is a module.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "bus/bus.h"
#include "core/config.h"
#include "core/module_host.h"
#include "core/periodic_timer.h"
#include "core/state_store.h"
#include "llm/provider_router.h"
#include "llm/tool_broker.h"
#include "llm/tool_registry.h"
#include "lotus/manifest.h"

namespace lotus {

class NodeTools;

// What scanning the module folders found: manifests that parsed, and the
// files that did not, each with the reason.
struct Discovery {
  std::vector<Manifest> manifests;
  std::vector<std::pair<std::filesystem::path, Status>> errors;
};
// Finds every manifest.yaml up to three levels below each folder
// (modules/<type>/<name>/manifest.yaml or <dir>/<name>/manifest.yaml).
Discovery discover_modules(const std::vector<std::filesystem::path>& dirs);

struct ModuleSummary {
  std::string name;
  std::string version;
  std::string type;
  std::string state;
  std::string error;                      // why it failed or was skipped
  std::vector<std::string> dependencies;  // modules it needs (loaded before it)
};

class Nucleus {
 public:
  // On the bus the config names (see make_bus); the error says why it could
  // not be set up, e.g. Redis unreachable at the configured URL.
  static Result<std::unique_ptr<Nucleus>> create(Config config);
  // On the embedded bus, or on `bus` when given.
  explicit Nucleus(Config config, std::unique_ptr<Bus> bus = nullptr);
  ~Nucleus();
  Nucleus(const Nucleus&) = delete;
  Nucleus& operator=(const Nucleus&) = delete;

  // Opens the state store, discovers and starts every module in dependency
  // order. Problems with single modules are logged and reported by health(),
  // never fatal; an error is returned only when the nucleus itself cannot run.
  Status boot();
  // Graceful: stops intake, drains each mailbox until the configured deadline,
  // shuts modules down in reverse load order. Safe to call twice.
  Status shutdown();
  // Asks a boot in progress to stop before the next module (signal handlers).
  void request_stop() { stop_requested_.store(true); }
  bool stop_requested() const { return stop_requested_.load(); }

  // Loads a module by name (from the module folders) or from a folder path.
  Status load_module(std::string_view name_or_dir);
  Status unload_module(std::string_view name);
  Status reload_module(std::string_view name);

  Json health() const;
  std::vector<ModuleSummary> modules() const;
  // The manifests of the modules that are running (or degraded), in load
  // order.
  std::vector<Manifest> running_manifests() const;
  // What MCP serves modules' resources and prompts from: the running
  // modules' manifests, then those of modules only other nodes on the bus
  // run (name and `mcp:` only).
  std::vector<Manifest> mcp_manifests() const;
  // Every loaded module's memory.vector_collections, by module name.
  std::map<std::string, std::vector<std::string>> vector_collections() const;
  // Publishes on behalf of an interface (the CLI, the API), not a module.
  Result<size_t> publish(Event event);
  Bus& bus() { return *bus_; }
  const Config& config() const { return config_; }
  // Every module's persistent state (null before boot and after shutdown);
  // interfaces read it, e.g. MCP serves conversations from it.
  StateStore* state_store() { return state_.get(); }

  // Every tool of every running module, and what carries out calls to them.
  const llm::ToolRegistry& tools() const { return tools_; }
  llm::ToolBroker* tool_broker() { return broker_.get(); }
  // The LLM providers; null when the `llm:` config could not be used
  // (llm_status() says why).
  llm::ProviderRouter* llm() { return llm_.get(); }
  const Status& llm_status() const { return llm_status_; }
  // One LLM turn off the bus threads (what ModuleContext::chat runs on).
  Task<Result<ChatResponse>> chat(ChatRequest request, StreamCallback on_text,
                                  std::vector<std::string> fallbacks);
  std::chrono::milliseconds boot_duration() const { return boot_duration_; }

 private:
  Task<Status> start_module(Manifest manifest);
  Task<Status> stop_module(std::shared_ptr<ModuleHost> host,
                           std::chrono::steady_clock::time_point deadline);
  Status run(Task<Status> task);
  void emit(std::string channel, Json data);
  void record_problem(const std::string& name, const Manifest* manifest, const Status& status);
  std::shared_ptr<ModuleHost> find(std::string_view name) const;
  std::vector<std::string> dependents_of(std::string_view name) const;
  void handle_control_event(const EventPtr& event);
  void watch_hotload();
  // Runs control work off the bus's threads (it waits for modules); joined
  // at shutdown.
  void spawn_worker(std::function<void()> work);
  void check_hotload();
  Status start_tools_and_llm();
  // Keep the tool registry in step with a module that started, reloaded or
  // stopped, tell listeners when its tools changed (system.tools_changed)
  // and, on a shared bus, the other nodes (see NodeTools) in any case.
  void tools_added(const Manifest& manifest);
  void tools_removed(const std::string& module);
  // ModuleContext::mount_tools for module `owner` (see include/lotus/module.h);
  // an empty group removes every group the owner mounted.
  Status mount_tools(const std::string& owner, std::string_view group,
                     std::vector<MountedTool> tools, MountedToolHandler handler);
  Json llm_health() const;
  Json tools_health() const;

  Config config_;
  std::unique_ptr<Bus> bus_;
  std::unique_ptr<StateStore> state_;
  std::chrono::steady_clock::time_point started_at_;
  std::chrono::milliseconds boot_duration_{0};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> accepting_{true};
  bool shut_down_ = false;

  // Held through load, unload, reload and shutdown so they never interleave.
  std::mutex control_mutex_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<ModuleHost>> hosts_;  // in load order
  std::vector<std::thread> workers_;
  struct Problem {
    std::string version;
    std::string type;
    std::string state;
    std::string error;
  };
  std::map<std::string, Problem> problems_;  // modules that failed or were skipped

  struct Watched {
    std::filesystem::file_time_type manifest_time;
    std::filesystem::file_time_type library_time;
    uintmax_t library_size = 0;
    bool pending = false;  // changed on the last check: reload once it is stable
  };
  std::map<std::string, Watched> watched_;
  std::shared_ptr<PeriodicTimer> watch_timer_;
  std::vector<SubscriptionId> control_subscriptions_;

  llm::ToolRegistry tools_;
  struct Mount {
    std::string owner;
    SubscriptionId subscription = 0;
  };
  std::mutex mounts_mutex_;
  std::map<std::string, Mount, std::less<>> mounts_;  // by group
  std::shared_ptr<llm::ToolBroker> broker_;
  std::shared_ptr<NodeTools> node_tools_;  // other nodes' tools, on a shared bus
  std::unique_ptr<llm::ProviderRouter> llm_;
  Status llm_status_;
  // Provider calls block (HTTP, minutes at worst), so they get threads of
  // their own and never hold a bus thread.
  std::unique_ptr<boost::asio::thread_pool> llm_pool_;
};

}  // namespace lotus
