#include "core/module_host.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "absl/strings/str_join.h"
#include "core/bus_tool_call.h"
#include "core/timer_sleep.h"
#include "lotus/strings.h"

namespace lotus {
namespace {

constexpr auto kHealthInterval = std::chrono::seconds(10);

std::string last_segment(std::string_view channel) {
  auto dot = channel.rfind('.');
  return std::string(dot == std::string_view::npos ? channel : channel.substr(dot + 1));
}

template <typename Map>
std::string key_list(const Map& map) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : map) keys.push_back(key);
  return keys.empty() ? "none" : absl::StrJoin(keys, ", ");
}

}  // namespace

std::string_view to_string(ModuleState state) {
  switch (state) {
    case ModuleState::kDiscovered:
      return "discovered";
    case ModuleState::kValidated:
      return "validated";
    case ModuleState::kResolved:
      return "resolved";
    case ModuleState::kStarting:
      return "starting";
    case ModuleState::kRunning:
      return "running";
    case ModuleState::kDegraded:
      return "degraded";
    case ModuleState::kFailed:
      return "failed";
    case ModuleState::kStopping:
      return "stopping";
    case ModuleState::kStopped:
      return "stopped";
  }
  return "unknown";
}

std::string ModuleHost::tool_channel(std::string_view module, std::string_view tool) {
  return cat("tool.", module, ".", tool);
}

ModuleHost::ModuleHost(Manifest manifest, Json user_config, Services services)
    : manifest_(std::make_unique<Manifest>(std::move(manifest))),
      user_config_(std::move(user_config)),
      services_(std::move(services)) {
  current_manifest_.store(manifest_.get(), std::memory_order_release);
  config_ = this->manifest().config_defaults.is_object() ? this->manifest().config_defaults
                                                         : Json::object();
  if (user_config_.is_object()) config_.merge_patch(user_config_);
  Mailbox::Options options;
  options.owner = this->manifest().name;
  options.capacity = this->manifest().mailbox.capacity;
  options.overflow =
      parse_overflow_policy(this->manifest().mailbox.overflow).value_or(OverflowPolicy::kWait);
  mailbox_ = std::make_shared<Mailbox>(options, services_.bus->executor());
  set_lifecycle(ModuleState::kResolved);
}

ModuleHost::~ModuleHost() {
  stop_jobs();
  unsubscribe_all();
  mailbox_->set_dispatch(nullptr);
}

void ModuleHost::set_manifest(Manifest manifest) {
  auto next = std::make_unique<Manifest>(std::move(manifest));
  current_manifest_.store(next.get(), std::memory_order_release);
  replaced_manifests_.push_back(std::move(next));
}

void ModuleHost::set_lifecycle(ModuleState state) { state_.store(state); }

void ModuleHost::set_error(std::string error) {
  std::lock_guard lock(mutex_);
  last_error_ = std::move(error);
}

std::string ModuleHost::last_error() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

Task<Status> ModuleHost::start() {
  set_lifecycle(ModuleState::kStarting);
  auto factory = make_module_factory(manifest(), services_.plugin_cache);
  if (!factory.ok()) {
    set_error(std::string(message_of(factory.status())));
    set_lifecycle(ModuleState::kFailed);
    co_return factory.status();
  }
  factory_ = std::move(*factory);
  auto self = shared_from_this();
  mailbox_->set_dispatch([self](const Delivery& d) { return self->dispatch(d); });
  mailbox_->set_drop_observer([this](const Delivery& d, std::string_view why) {
    dropped_reported_.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("[{}] delivery of {} not handled: {}", manifest().name,
                 d.event ? cat("event ", d.event->id.to_string(), " on ", d.event->channel)
                         : std::string("a periodic job"),
                 why);
  });

  // A module whose initialize fails is retried with backoff like any crash,
  // but boot waits for the verdict so its dependents know whether to start.
  Status status;
  for (;;) {
    status = co_await start_instance();
    if (status.ok()) break;
    report_error("initialize", "initialize", message_of(status));
    if (status.code() == absl::StatusCode::kInvalidArgument ||
        status.code() == absl::StatusCode::kNotFound ||
        status.code() == absl::StatusCode::kFailedPrecondition) {
      break;  // a broken contract or missing code does not heal by retrying
    }
    auto now = std::chrono::steady_clock::now();
    while (!restart_times_.empty() && now - restart_times_.front() > services_.supervision.window) {
      restart_times_.pop_front();
    }
    if (static_cast<int>(restart_times_.size()) >= services_.supervision.max_restarts) break;
    if (services_.stopping && services_.stopping()) break;
    restart_times_.push_back(now);
    restarts_.fetch_add(1);
    auto backoff = std::min(services_.supervision.backoff_max,
                            services_.supervision.backoff_initial *
                                (1 << std::min<size_t>(restart_times_.size() - 1, 20)));
    co_await sleep(backoff);
  }
  if (!status.ok()) {
    set_lifecycle(ModuleState::kFailed);
    publish_failed(std::string(message_of(status)));
    co_return status;
  }
  if (Status s = subscribe_all(); !s.ok()) {
    co_await stop_instance();
    set_error(std::string(message_of(s)));
    set_lifecycle(ModuleState::kFailed);
    publish_failed(std::string(message_of(s)));
    co_return s;
  }
  start_jobs();
  set_lifecycle(ModuleState::kRunning);
  co_return absl::OkStatus();
}

Task<Status> ModuleHost::start_instance() {
  auto created = factory_->create();
  if (!created.ok()) co_return created.status();
  ModulePtr instance = std::move(*created);
  instance->attach(this);
  Status status = co_await instance->invoke_lifecycle(instance->initialize());
  if (!status.ok()) {
    // FailedPrecondition (a PermanentError) keeps its code so start() does
    // not retry it; anything else is worth another try.
    std::string message =
        cat("module \"", manifest().name, "\": initialize failed: ", message_of(status));
    co_return status.code() == absl::StatusCode::kFailedPrecondition
        ? absl::FailedPreconditionError(message)
        : absl::UnavailableError(message);
  }
  instance_ = std::move(instance);
  if (Status contract = check_contract(); !contract.ok()) {
    co_await stop_instance();
    co_return contract;
  }
  assign_slots();
  handler_by_slot_.assign(slot_handlers_.size(), nullptr);
  for (size_t slot = 0; slot < slot_handlers_.size(); ++slot) {
    if (slot_handlers_[slot].empty()) continue;  // a subscription a reload removed
    handler_by_slot_[slot] = &instance_->handlers().find(slot_handlers_[slot])->second;
  }
  started_at_ = std::chrono::steady_clock::now();
  co_return absl::OkStatus();
}

Status ModuleHost::check_contract() const {
  const std::string file = manifest().path.string();
  const auto& handlers = instance_->handlers();
  const auto& tools = instance_->tools();
  for (size_t i = 0; i < manifest().subscriptions.size(); ++i) {
    const auto& handler = manifest().subscriptions[i].handler;
    if (handlers.find(handler) == handlers.end()) {
      return absl::InvalidArgumentError(cat(
          file, ": subscriptions[", i, "].handler: \"", handler,
          "\" is not registered by the module's code (it registers: ", key_list(handlers), ")"));
    }
  }
  for (const auto& [tool_name, fn] : tools) {
    if (manifest().find_tool(tool_name) == nullptr) {
      return absl::InvalidArgumentError(
          cat(file, ": tools: the code registers tool \"", tool_name,
              "\", which the manifest does not declare (add it under tools: with its parameters)"));
    }
  }
  for (size_t i = 0; i < manifest().tools.size(); ++i) {
    if (tools.find(manifest().tools[i].name) == tools.end()) {
      return absl::InvalidArgumentError(
          cat(file, ": tools[", i, "].name: \"", manifest().tools[i].name,
              "\" is declared but the code registers no such tool (it registers: ", key_list(tools),
              ")"));
    }
  }
  return absl::OkStatus();
}

void ModuleHost::assign_slots() {
  // A delivery names its handler by slot. Slots are never renumbered: a
  // subscription a reload keeps keeps its slot, a new one gets the next, and
  // a removed one is retired, so deliveries queued during a reload reach the
  // handler they were routed to (or are reported if it is gone).
  std::vector<bool> live(slot_keys_.size(), false);
  slot_of_subscription_.clear();
  for (const auto& sub : manifest().subscriptions) {
    std::string key = cat(sub.pattern, "\n", sub.handler, "\n", sub.filter.spec().dump());
    auto it = std::find(slot_keys_.begin(), slot_keys_.end(), key);
    size_t slot = static_cast<size_t>(it - slot_keys_.begin());
    if (it == slot_keys_.end()) {
      slot_keys_.push_back(std::move(key));
      slot_handlers_.push_back(sub.handler);
      live.push_back(true);
    } else {
      slot_handlers_[slot] = sub.handler;
      live[slot] = true;
    }
    slot_of_subscription_.push_back(static_cast<uint32_t>(slot));
  }
  for (size_t slot = 0; slot < live.size(); ++slot) {
    if (!live[slot]) slot_handlers_[slot].clear();
  }
}

Status ModuleHost::subscribe_all() {
  unsubscribe_all();
  for (size_t i = 0; i < manifest().subscriptions.size(); ++i) {
    const auto& sub = manifest().subscriptions[i];
    auto id = services_.bus->subscribe(sub.pattern, sub.filter,
                                       Subscriber{mailbox_, slot_of_subscription_[i], nullptr});
    if (!id.ok()) {
      unsubscribe_all();
      return absl::InvalidArgumentError(cat(manifest().path.string(), ": subscriptions[", i,
                                            "].pattern: ", message_of(id.status())));
    }
    subscriptions_.push_back(*id);
  }
  if (!manifest().tools.empty()) {
    auto id = services_.bus->subscribe(tool_channel(manifest().name, "*"), SubscriptionFilter(),
                                       Subscriber{mailbox_, kToolSlot, nullptr});
    if (!id.ok()) return id.status();
    subscriptions_.push_back(*id);
  }
  return absl::OkStatus();
}

void ModuleHost::unsubscribe_all() {
  for (SubscriptionId id : subscriptions_) services_.bus->unsubscribe(id);
  subscriptions_.clear();
}

void ModuleHost::start_jobs() {
  stop_jobs();
  std::weak_ptr<ModuleHost> weak = weak_from_this();
  // Each tick queues the job in the mailbox, so jobs never run beside the
  // module's handlers; a tick whose previous run is still queued is skipped.
  auto arm = [this, weak](uint32_t slot, std::chrono::milliseconds interval) {
    auto queued = std::make_shared<std::atomic<bool>>(false);
    job_queued_.push_back(queued);
    job_timers_.push_back(
        PeriodicTimer::start(services_.bus->executor(), interval, [weak, slot, queued] {
          auto host = weak.lock();
          if (!host || queued->exchange(true)) return;
          if (!host->mailbox_->push(Delivery{nullptr, slot})) queued->store(false);
        }));
  };
  const auto& jobs = instance_->jobs();
  for (size_t i = 0; i < jobs.size(); ++i)
    arm(kJobSlot + static_cast<uint32_t>(i), jobs[i].interval);
  arm(kHealthSlot, std::chrono::duration_cast<std::chrono::milliseconds>(kHealthInterval));
  // A first health report right away, so `lotus health` after boot shows
  // the module's own view rather than "unknown".
  job_queued_.back()->store(true);
  if (!mailbox_->push(Delivery{nullptr, kHealthSlot})) job_queued_.back()->store(false);
}

void ModuleHost::stop_jobs() {
  for (auto& timer : job_timers_) timer->stop();
  job_timers_.clear();
  job_queued_.clear();
}

Status ModuleHost::mount_tools(std::string_view group, std::vector<MountedTool> tools,
                               MountedToolHandler handler) {
  if (!services_.mount_tools) return absl::UnimplementedError("this nucleus cannot mount tools");
  return services_.mount_tools(manifest().name, group, std::move(tools), std::move(handler));
}

Task<void> ModuleHost::stop_instance() {
  if (!instance_) co_return;
  // Mounted tools' handlers belong to this instance: they go before it does.
  if (services_.mount_tools) (void)services_.mount_tools(manifest().name, "", {}, nullptr);
  Status status = co_await instance_->invoke_lifecycle(instance_->shutdown());
  if (!status.ok()) {
    spdlog::warn("[{}] shutdown reported: {}", manifest().name, message_of(status));
  }
  handler_by_slot_.clear();
  instance_.reset();
}

Task<Status> ModuleHost::dispatch(const Delivery& delivery) {
  if (!instance_) {
    co_return absl::FailedPreconditionError(
        cat("module \"", manifest().name, "\" has no running instance"));
  }
  if (delivery.slot < handler_by_slot_.size()) {
    if (handler_by_slot_[delivery.slot] == nullptr) {
      co_return absl::FailedPreconditionError(
          cat("module \"", manifest().name, "\": event ", delivery.event->id.to_string(),
              " was queued for a subscription the last reload removed"));
    }
    const Event& event = *delivery.event;
    {
      std::lock_guard lock(mutex_);
      current_trace_ =
          event.metadata.trace_id.empty() ? event.id.to_string() : event.metadata.trace_id;
    }
    auto begin = std::chrono::steady_clock::now();
    Status status = co_await instance_->invoke_handler(*handler_by_slot_[delivery.slot], event);
    latency_.record(std::chrono::steady_clock::now() - begin);
    if (!status.ok()) {
      const std::string& handler = slot_handlers_[delivery.slot];
      on_crash(status, handler,
               cat("handler \"", handler, "\" on event ", event.id.to_string(), " (", event.channel,
                   ")"));
    }
    co_return status;
  }
  if (delivery.slot == kToolSlot) co_return co_await run_tool(*delivery.event);
  if (delivery.slot == kHealthSlot) {
    if (!job_queued_.empty()) job_queued_.back()->store(false);
    Json health;
    try {
      health = co_await instance_->health_check();
    } catch (const std::exception& e) {
      health = Json{{"status", "unhealthy"}, {"error", e.what()}};
    }
    std::lock_guard lock(mutex_);
    module_health_ = std::move(health);
    co_return absl::OkStatus();
  }
  if (delivery.slot >= kJobSlot && delivery.slot < kHealthSlot) {
    size_t index = delivery.slot - kJobSlot;
    const auto& jobs = instance_->jobs();
    if (index < job_queued_.size()) job_queued_[index]->store(false);
    if (index >= jobs.size()) co_return absl::OkStatus();
    {
      std::lock_guard lock(mutex_);
      current_trace_.clear();
    }
    Status status = co_await instance_->invoke_job(jobs[index].job);
    if (!status.ok()) {
      // A periodic job survives its own exceptions: counted and reported,
      // no restart, next tick as scheduled.
      std::string where = cat("periodic job \"", jobs[index].name, "\"");
      report_error(where, where, message_of(status));
    }
    co_return status;
  }
  co_return absl::InternalError(cat("delivery for unknown slot ", delivery.slot));
}

Task<Status> ModuleHost::run_tool(const Event& event) {
  std::string tool_name = last_segment(event.channel);
  const auto& tools = instance_->tools();
  auto it = tools.find(tool_name);
  Json response;
  if (it == tools.end()) {
    response =
        Json{{"ok", false},
             {"error", cat("module \"", manifest().name, "\" has no tool \"", tool_name, "\"")}};
  } else {
    static const Json kNoArguments = Json::object();
    auto given = event.data.find("arguments");  // read in place: the event outlives the call
    const Json& arguments = given != event.data.end() ? *given : kNoArguments;
    BusToolCall call(*services_.bus, manifest().name, event.data.value("call_id", std::string()),
                     event.data.value("session", std::string()), event.metadata.trace_id);
    auto begin = std::chrono::steady_clock::now();
    ToolResult result = co_await instance_->invoke_tool(it->second, arguments, call);
    latency_.record(std::chrono::steady_clock::now() - begin);
    if (result.ok()) {
      // Member by member: a braced list would build each pair as an array.
      response["ok"] = true;
      response["result"] = std::move(*result);
    } else {
      errors_.fetch_add(1);
      response = Json{{"ok", false}, {"error", message_of(result.status())}};
    }
  }
  if (!event.metadata.reply_to.empty()) {
    auto sent = services_.bus->reply(event, manifest().name, std::move(response));
    if (!sent.ok()) co_return sent.status();
  }
  co_return absl::OkStatus();
}

void ModuleHost::report_error(std::string_view key, std::string_view where,
                              std::string_view message) {
  errors_.fetch_add(1);
  set_error(cat(where, ": ", message));
  // The same failure repeating (a job failing every 20 ms) is counted every
  // time but logged and published at most once per window, with how many
  // repeats were folded into the report.
  uint64_t folded = 0;
  {
    std::lock_guard lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    auto [it, first] = error_reports_.try_emplace(std::string(key));
    if (!first && now - it->second.last_report < kErrorReportWindow) {
      ++it->second.folded;
      return;
    }
    folded = std::exchange(it->second.folded, 0);
    it->second.last_report = now;
  }
  if (folded > 0) {
    spdlog::error("[{}] {}: {} (and {} more like it since the last report)", manifest().name, where,
                  message, folded);
  } else {
    spdlog::error("[{}] {}: {}", manifest().name, where, message);
  }
  if (services_.emit) {
    services_.emit("system.module_error", Json{{"module", manifest().name},
                                               {"error", message},
                                               {"where", where},
                                               {"repeats_folded", folded}});
  }
}

void ModuleHost::on_crash(const Status& status, std::string_view key, std::string_view where) {
  std::string reason = cat(where, ": ", message_of(status));
  report_error(key, where, message_of(status));
  if (restarting_.exchange(true)) return;
  auto self = shared_from_this();
  boost::asio::post(services_.bus->executor(), [self, reason] {
    start_detached(self->restart_after_crash(reason), [](std::exception_ptr) {});
  });
}

Task<void> ModuleHost::restart_after_crash(std::string reason) {
  co_await mailbox_->pause();
  if (state() == ModuleState::kStopping || state() == ModuleState::kStopped) {
    restarting_ = false;
    co_return;
  }
  auto now = std::chrono::steady_clock::now();
  while (!restart_times_.empty() && now - restart_times_.front() > services_.supervision.window) {
    restart_times_.pop_front();
  }
  if (static_cast<int>(restart_times_.size()) >= services_.supervision.max_restarts) {
    std::string verdict = cat("more than ", services_.supervision.max_restarts, " restarts in ",
                              services_.supervision.window.count(), " s; last error: ", reason);
    set_error(verdict);
    set_lifecycle(ModuleState::kFailed);
    stop_jobs();
    unsubscribe_all();
    co_await stop_instance();
    size_t dropped = co_await mailbox_->drain_and_close(std::chrono::steady_clock::now());
    spdlog::error("[{}] marked failed: {} ({} queued deliveries dropped)", manifest().name, verdict,
                  dropped);
    publish_failed(verdict);
    restarting_ = false;
    co_return;
  }
  restart_times_.push_back(now);
  restarts_.fetch_add(1);
  set_lifecycle(ModuleState::kDegraded);
  auto backoff = std::min(services_.supervision.backoff_max,
                          services_.supervision.backoff_initial *
                              (1 << std::min<size_t>(restart_times_.size() - 1, 20)));
  spdlog::warn("[{}] restarting in {} ms (restart {} of at most {} in {} s)", manifest().name,
               backoff.count(), restart_times_.size(), services_.supervision.max_restarts,
               services_.supervision.window.count());
  co_await sleep(backoff);
  stop_jobs();
  co_await stop_instance();
  Status status = co_await start_instance();
  if (!status.ok()) {
    restarting_ = false;
    on_crash(status, "initialize", "restart");
    co_return;
  }
  start_jobs();
  set_lifecycle(ModuleState::kRunning);
  if (services_.emit) {
    services_.emit(
        "system.module_restarted",
        Json{{"module", manifest().name}, {"restarts", restarts_.load()}, {"reason", reason}});
  }
  restarting_ = false;
  mailbox_->resume();
}

Task<Status> ModuleHost::reload(std::optional<Manifest> manifest) {
  if (restarting_.exchange(true)) {
    co_return absl::FailedPreconditionError(
        cat("module \"", this->manifest().name, "\" is already restarting or reloading"));
  }
  if (state() != ModuleState::kRunning && state() != ModuleState::kDegraded) {
    restarting_ = false;
    co_return absl::FailedPreconditionError(
        cat("module \"", this->manifest().name, "\" is ", to_string(state()), ", not running"));
  }
  std::unique_ptr<ModuleFactory> next_factory;
  Manifest next_manifest = manifest ? std::move(*manifest) : this->manifest();
  {
    auto made = make_module_factory(next_manifest, services_.plugin_cache);
    if (!made.ok()) {
      restarting_ = false;
      co_return made.status();
    }
    next_factory = std::move(*made);
  }
  co_await mailbox_->pause();
  stop_jobs();
  co_await stop_instance();

  Manifest previous_manifest = this->manifest();
  std::unique_ptr<ModuleFactory> previous_factory = std::move(factory_);
  const bool subscriptions_changed =
      next_manifest.subscriptions.size() != this->manifest().subscriptions.size() ||
      !std::equal(next_manifest.subscriptions.begin(), next_manifest.subscriptions.end(),
                  this->manifest().subscriptions.begin(), [](const auto& a, const auto& b) {
                    return a.pattern == b.pattern && a.handler == b.handler &&
                           a.filter.spec() == b.filter.spec();
                  });
  set_manifest(std::move(next_manifest));
  factory_ = std::move(next_factory);
  Status status = co_await start_instance();
  if (!status.ok()) {
    spdlog::error("[{}] reload failed, restoring the previous version: {}", this->manifest().name,
                  message_of(status));
    set_manifest(std::move(previous_manifest));
    factory_ = std::move(previous_factory);
    Status restored = co_await start_instance();
    if (!restored.ok()) {
      set_lifecycle(ModuleState::kFailed);
      set_error(std::string(message_of(restored)));
      unsubscribe_all();
      publish_failed(cat("reload failed (", message_of(status),
                         ") and the previous version did not restart: ", message_of(restored)));
      restarting_ = false;
      co_return status;
    }
  } else if (subscriptions_changed) {
    // New routes; deliveries already queued keep their (stable) slots.
    if (Status s = subscribe_all(); !s.ok()) status = s;
  }
  start_jobs();
  set_lifecycle(ModuleState::kRunning);
  restarting_ = false;
  mailbox_->resume();
  if (status.ok() && services_.emit) {
    services_.emit(
        "system.module_reloaded",
        Json{{"module", this->manifest().name}, {"version", this->manifest().version.to_string()}});
  }
  co_return status;
}

Task<Status> ModuleHost::stop(std::chrono::steady_clock::time_point deadline) {
  set_lifecycle(ModuleState::kStopping);
  stop_jobs();
  unsubscribe_all();
  size_t left = co_await mailbox_->drain_and_close(deadline);
  co_await stop_instance();
  mailbox_->set_dispatch(nullptr);
  set_lifecycle(ModuleState::kStopped);
  if (left > 0) {
    co_return absl::DeadlineExceededError(cat("module \"", manifest().name, "\": ", left,
                                              " queued events not handled before the deadline"));
  }
  co_return absl::OkStatus();
}

void ModuleHost::publish_failed(const std::string& reason) {
  if (services_.emit) {
    services_.emit("system.module_failed", Json{{"module", manifest().name}, {"error", reason}});
  }
}

Json ModuleHost::health() const {
  MailboxStats mailbox = mailbox_->stats();
  double uptime = 0;
  if (state() == ModuleState::kRunning || state() == ModuleState::kDegraded) {
    uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count();
  }
  Json module_health;
  std::string error;
  {
    std::lock_guard lock(mutex_);
    module_health = module_health_;
    error = last_error_;
  }
  return Json{
      {"name", manifest().name},
      {"version", manifest().version.to_string()},
      {"type", to_string(manifest().type)},
      {"state", to_string(state())},
      {"origin", factory_ ? factory_->origin() : std::string()},
      {"uptime_seconds", uptime},
      {"restarts", restarts_.load()},
      {"errors", errors_.load()},
      {"events_handled", mailbox.handled},
      {"publish_refused", publish_refused_.load()},
      {"mailbox",
       {{"depth", mailbox.depth},
        {"capacity", mailbox.capacity},
        {"overflow", manifest().mailbox.overflow},
        {"enqueued", mailbox.enqueued},
        {"failed", mailbox.failed},
        {"dropped_oldest", mailbox.dropped_oldest},
        {"dropped_newest", mailbox.dropped_newest},
        {"waited", mailbox.waited},
        {"over_capacity", mailbox.over_capacity}}},
      {"latency_us",
       {{"p50", latency_.percentile(50)},
        {"p99", latency_.percentile(99)},
        {"count", latency_.count()}}},
      {"last_error", error},
      {"module", module_health},
  };
}

Status ModuleHost::publish(std::string_view channel, Json data, EventMetadata metadata) {
  if (!manifest().may_publish(channel)) {
    publish_refused_.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("[{}] refused publish to \"{}\": not declared in publications", manifest().name,
                 channel);
    return absl::PermissionDeniedError(
        cat("module \"", manifest().name, "\" may not publish to \"", channel,
            "\": its manifest's publications do not declare it (declared: ",
            manifest().publications.empty() ? "none" : absl::StrJoin(manifest().publications, ", "),
            ")"));
  }
  Event event = Event::make(std::string(channel), manifest().name, std::move(data));
  event.metadata = std::move(metadata);
  if (event.metadata.trace_id.empty()) {
    std::lock_guard lock(mutex_);
    event.metadata.trace_id = current_trace_;
  }
  if (event.metadata.trace_id.empty()) event.metadata.trace_id = event.id.to_string();
  auto routed = services_.bus->publish(std::move(event));
  return routed.status();
}

Task<Result<EventPtr>> ModuleHost::request(std::string_view channel, Json data,
                                           std::chrono::milliseconds timeout,
                                           EventMetadata metadata) {
  if (!manifest().may_publish(channel)) {
    publish_refused_.fetch_add(1, std::memory_order_relaxed);
    co_return absl::PermissionDeniedError(cat("module \"", manifest().name,
                                              "\" may not send requests to \"", channel,
                                              "\": its manifest's publications do not declare it"));
  }
  Event event = Event::make(std::string(channel), manifest().name, std::move(data));
  event.metadata = std::move(metadata);
  if (event.metadata.trace_id.empty()) {
    std::lock_guard lock(mutex_);
    event.metadata.trace_id = current_trace_;
  }
  auto pending = services_.bus->request(std::move(event), timeout);
  Result<EventPtr> reply = co_await std::move(pending);
  co_return reply;
}

Status ModuleHost::reply(const Event& request_event, Json data) {
  return services_.bus->reply(request_event, manifest().name, std::move(data)).status();
}

std::filesystem::path ModuleHost::data_dir() {
  std::filesystem::path dir = services_.data_dir / "modules" / manifest().name;
  std::error_code ignored;  // a folder that cannot be made shows up when the module uses it
  std::filesystem::create_directories(dir, ignored);
  return dir;
}

Result<Json> ModuleHost::get_state(std::string_view key) {
  if (services_.state == nullptr) return absl::UnavailableError("no state store is configured");
  return services_.state->get(manifest().name, key);
}

Status ModuleHost::set_state(std::string_view key, const Json& value) {
  if (services_.state == nullptr) return absl::UnavailableError("no state store is configured");
  return services_.state->set(manifest().name, key, value);
}

Task<void> ModuleHost::sleep(std::chrono::milliseconds duration) {
  auto pause = sleep_on(services_.bus->executor(), duration);
  co_await std::move(pause);
}

Task<Result<ChatResponse>> ModuleHost::chat(ChatRequest request, StreamCallback on_text) {
  if (!services_.chat) {
    co_return absl::FailedPreconditionError("no LLM is available in this process");
  }
  const Manifest::Providers& providers = manifest().providers;
  std::vector<std::string> fallbacks;
  if (request.model.empty() && !providers.primary.empty()) {
    request.model = providers.primary;
    fallbacks = providers.fallback;
  }
  request.module = manifest().name;
  auto answered = services_.chat(std::move(request), std::move(on_text), std::move(fallbacks));
  Result<ChatResponse> result = co_await std::move(answered);
  co_return result;
}

void ModuleHost::log(LogLevel level, std::string_view message) {
  switch (level) {
    case LogLevel::kDebug:
      spdlog::debug("[{}] {}", manifest().name, message);
      break;
    case LogLevel::kInfo:
      spdlog::info("[{}] {}", manifest().name, message);
      break;
    case LogLevel::kWarn:
      spdlog::warn("[{}] {}", manifest().name, message);
      break;
    case LogLevel::kError:
      spdlog::error("[{}] {}", manifest().name, message);
      break;
  }
}

}  // namespace lotus
