// ModuleHost: one loaded module, seen from the nucleus.
//
// It owns the module's instance, mailbox, bus subscriptions and periodic
// timers; implements the ModuleContext the module talks through; checks the
// manifest contract against what the code registered; measures each handler;
// and supervises: a failing handler or initialize restarts the instance with
// exponential backoff until too many restarts in the window mark it failed.
// Subscriptions and the mailbox outlive instance swaps, which is what lets a
// restart or hot reload lose no event.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "bus/bus.h"
#include "core/metrics.h"
#include "core/periodic_timer.h"
#include "core/state_store.h"
#include "lotus/manifest.h"
#include "lotus/module.h"
#include "runtime/module_factory.h"

namespace lotus {

enum class ModuleState {
  kDiscovered,
  kValidated,
  kResolved,
  kStarting,
  kRunning,
  kDegraded,
  kFailed,
  kStopping,
  kStopped
};
std::string_view to_string(ModuleState state);

struct SupervisionPolicy {
  int max_restarts = 5;
  std::chrono::seconds window{60};
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{30000};
};

class ModuleHost final : public ModuleContext, public std::enable_shared_from_this<ModuleHost> {
 public:
  struct Services {
    Bus* bus = nullptr;
    StateStore* state = nullptr;  // may be null: state calls then fail
    SupervisionPolicy supervision;
    std::filesystem::path plugin_cache;
    std::filesystem::path data_dir;  // the nucleus's; modules get <data_dir>/modules/<name>
    // Publishes a system.* event as the nucleus.
    std::function<void(std::string channel, Json data)> emit;
    // True once the nucleus is stopping: retries at start give up early.
    std::function<bool()> stopping;
    // Runs one LLM turn off the bus threads, with the fallback chain given
    // (empty: the configured one). Null: no LLM at all.
    std::function<Task<Result<ChatResponse>>(ChatRequest, StreamCallback, std::vector<std::string>)>
        chat;
    // Registers (or, with no tools, removes) a group of run-time tools for
    // the module named first; with an empty group, removes all of its groups.
    std::function<Status(const std::string& owner, std::string_view group,
                         std::vector<MountedTool> tools, MountedToolHandler handler)>
        mount_tools;
    // Every loaded module's memory.vector_collections. Null: none.
    std::function<std::map<std::string, std::vector<std::string>>()> vector_collections;
  };

  // The channel a tool is called on: requests carry {"arguments": {...}} and
  // are answered with {"ok": true, "result": ...} or {"ok": false, "error": ...}.
  static std::string tool_channel(std::string_view module, std::string_view tool);

  ModuleHost(Manifest manifest, Json user_config, Services services);
  ~ModuleHost() override;

  // Creates the instance, runs initialize(), checks the contract, subscribes
  // and starts periodic jobs. On error the module is left stopped/failed.
  Task<Status> start();
  // Stops intake, drains the mailbox until `deadline`, runs shutdown().
  Task<Status> stop(std::chrono::steady_clock::time_point deadline);
  // Hot swap: pause the mailbox, shut the old instance down, start a new one
  // (from `manifest` if given: a changed manifest or library), resume. If the
  // new one cannot start, the previous code is restored and the error returned.
  Task<Status> reload(std::optional<Manifest> manifest);

  ModuleState state() const { return state_.load(); }
  // The manifest in force. A reload swaps in a new one; earlier ones are kept
  // alive, so a reference another thread holds (health, publish checks) stays
  // valid for the life of the host.
  const Manifest& manifest() const { return *current_manifest_.load(std::memory_order_acquire); }
  std::string last_error() const;
  Json health() const;

  // ModuleContext.
  const std::string& module_name() const override { return manifest().name; }
  const Json& config() const override { return config_; }
  Status publish(std::string_view channel, Json data, EventMetadata metadata) override;
  Task<Result<EventPtr>> request(std::string_view channel, Json data,
                                 std::chrono::milliseconds timeout,
                                 EventMetadata metadata) override;
  Status reply(const Event& request, Json data) override;
  std::filesystem::path data_dir() override;
  Result<Json> get_state(std::string_view key) override;
  Status set_state(std::string_view key, const Json& value) override;
  Task<void> sleep(std::chrono::milliseconds duration) override;
  Task<Result<ChatResponse>> chat(ChatRequest request, StreamCallback on_text) override;
  void log(LogLevel level, std::string_view message) override;
  Status mount_tools(std::string_view group, std::vector<MountedTool> tools,
                     MountedToolHandler handler) override;
  std::map<std::string, std::vector<std::string>> vector_collections() const override {
    return services_.vector_collections ? services_.vector_collections()
                                        : std::map<std::string, std::vector<std::string>>{};
  }

 private:
  static constexpr uint32_t kToolSlot = 1u << 20;
  static constexpr uint32_t kJobSlot = 2u << 20;
  static constexpr uint32_t kHealthSlot = 3u << 20;

  Task<Status> start_instance();
  Task<void> stop_instance();
  Status check_contract() const;
  Status subscribe_all();
  void unsubscribe_all();
  void start_jobs();
  void stop_jobs();
  Task<Status> dispatch(const Delivery& delivery);
  Task<Status> run_tool(const Event& event);
  void report_error(std::string_view key, std::string_view where, std::string_view message);
  void on_crash(const Status& status, std::string_view key, std::string_view where);
  Task<void> restart_after_crash(std::string reason);
  void set_lifecycle(ModuleState state);
  void set_error(std::string error);
  void publish_failed(const std::string& reason);

  void set_manifest(Manifest manifest);

  std::unique_ptr<Manifest> manifest_;  // the first; later ones live in replaced_manifests_
  std::vector<std::unique_ptr<Manifest>> replaced_manifests_;
  std::atomic<const Manifest*> current_manifest_{nullptr};
  Json user_config_;
  Json config_;
  Services services_;
  std::shared_ptr<Mailbox> mailbox_;

  std::unique_ptr<ModuleFactory> factory_;
  ModulePtr instance_;
  void assign_slots();

  // Slot bookkeeping (see assign_slots): per slot, the subscription's
  // identity and handler name ("" once retired); per manifest subscription,
  // its slot; per slot, the running instance's handler (null when retired).
  std::vector<std::string> slot_keys_;
  std::vector<std::string> slot_handlers_;
  std::vector<uint32_t> slot_of_subscription_;
  std::vector<const Module::Handler*> handler_by_slot_;

  std::vector<SubscriptionId> subscriptions_;
  std::vector<std::shared_ptr<PeriodicTimer>> job_timers_;  // jobs, then health
  std::vector<std::shared_ptr<std::atomic<bool>>> job_queued_;

  std::atomic<ModuleState> state_{ModuleState::kDiscovered};
  std::atomic<bool> restarting_{false};
  std::chrono::steady_clock::time_point started_at_{};
  std::deque<std::chrono::steady_clock::time_point> restart_times_;
  std::atomic<uint64_t> restarts_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> publish_refused_{0};
  std::atomic<uint64_t> dropped_reported_{0};
  LatencyHistogram latency_;
  std::string current_trace_;  // trace of the event being handled (one at a time)

  mutable std::mutex mutex_;  // guards last_error_, module_health_
  std::string last_error_;
  struct ErrorReport {
    std::chrono::steady_clock::time_point last_report{};
    uint64_t folded = 0;
  };
  static constexpr auto kErrorReportWindow = std::chrono::seconds(10);
  std::map<std::string, ErrorReport, std::less<>> error_reports_;
  Json module_health_ = Json{{"status", "unknown"}};
};

}  // namespace lotus
