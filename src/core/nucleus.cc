#include "core/nucleus.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>
#include <set>

#include <boost/asio/post.hpp>

#include "absl/strings/str_join.h"
#include "bus/bus_factory.h"
#include "bus/local_bus.h"
#include "core/dependency_graph.h"
#include "core/metrics.h"
#include "core/node_tools.h"
#include "lotus/strings.h"

namespace lotus {
namespace {

constexpr auto kHotloadInterval = std::chrono::milliseconds(250);

void scan(const std::filesystem::path& dir, int depth, Discovery& found) {
  std::error_code ec;
  std::filesystem::path manifest = dir / "manifest.yaml";
  if (std::filesystem::is_regular_file(manifest, ec)) {
    auto loaded = load_manifest(manifest);
    if (loaded.ok()) {
      found.manifests.push_back(std::move(*loaded));
    } else {
      found.errors.emplace_back(manifest, loaded.status());
    }
    return;  // a module folder is a leaf: its subfolders are its own business
  }
  if (depth == 0) return;
  std::vector<std::filesystem::path> children;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) children.push_back(it->path());
  }
  std::sort(children.begin(), children.end());
  for (const auto& child : children) scan(child, depth - 1, found);
}

std::filesystem::file_time_type mtime(const std::filesystem::path& path) {
  std::error_code ec;
  auto time = std::filesystem::last_write_time(path, ec);
  return ec ? std::filesystem::file_time_type{} : time;
}

uintmax_t file_size_or_zero(const std::filesystem::path& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

}  // namespace

Discovery discover_modules(const std::vector<std::filesystem::path>& dirs) {
  Discovery found;
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) continue;
    scan(dir, 3, found);
  }
  // Two folders defining one module name: the first (built-in before user,
  // in folder order) wins and the second is reported.
  std::set<std::string> seen;
  std::vector<Manifest> unique;
  std::map<std::string, std::filesystem::path> first_path;
  for (auto& manifest : found.manifests) {
    if (!seen.insert(manifest.name).second) {
      found.errors.emplace_back(
          manifest.path, absl::AlreadyExistsError(cat(manifest.path.string(), ": name: module \"",
                                                      manifest.name, "\" is already defined by ",
                                                      first_path[manifest.name].string())));
      continue;
    }
    first_path[manifest.name] = manifest.path;
    unique.push_back(std::move(manifest));
  }
  found.manifests = std::move(unique);
  return found;
}

Result<std::unique_ptr<Nucleus>> Nucleus::create(Config config) {
  auto bus = make_bus(config);
  if (!bus.ok()) return bus.status();
  return std::make_unique<Nucleus>(std::move(config), *std::move(bus));
}

Nucleus::Nucleus(Config config, std::unique_ptr<Bus> bus)
    : config_(std::move(config)),
      bus_(bus ? std::move(bus) : std::make_unique<LocalBus>(config_.threads, config_.idle_spin)),
      started_at_(std::chrono::steady_clock::now()) {}

Nucleus::~Nucleus() { shutdown().IgnoreError(); }

Status Nucleus::run(Task<Status> task) {
  // Bridges the synchronous callers (CLI, signal handling, tests) to the
  // coroutine world. Never called from a pool thread: it blocks.
  std::promise<Status> done;
  auto future = done.get_future();
  Task<void> outer = [](Task<Status> inner, std::promise<Status>* result) -> Task<void> {
    result->set_value(co_await std::move(inner));
  }(std::move(task), &done);
  boost::asio::post(bus_->executor(), [&outer, &done] {
    start_detached(std::move(outer), [&done](std::exception_ptr failure) {
      if (!failure) return;
      try {
        std::rethrow_exception(failure);
      } catch (const std::exception& e) {
        done.set_value(absl::InternalError(e.what()));
      } catch (...) {
        done.set_value(absl::InternalError("unknown exception"));
      }
    });
  });
  return future.get();
}

void Nucleus::emit(std::string channel, Json data) {
  auto routed = bus_->publish(Event::make(std::move(channel), "nucleus", std::move(data)));
  if (!routed.ok()) spdlog::error("nucleus could not publish: {}", message_of(routed.status()));
}

void Nucleus::record_problem(const std::string& name, const Manifest* manifest,
                             const Status& status) {
  std::lock_guard lock(mutex_);
  Problem& problem = problems_[name];
  if (manifest != nullptr) {
    problem.version = manifest->version.to_string();
    problem.type = std::string(to_string(manifest->type));
  }
  problem.state = "failed";
  problem.error = std::string(message_of(status));
}

Status Nucleus::boot() {
  auto begin = std::chrono::steady_clock::now();
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  auto store = StateStore::open(config_.data_dir / "state.db");
  if (!store.ok()) return store.status();
  state_ = std::move(*store);

  Subscriber control;
  control.tap = [this](const EventPtr& event) { handle_control_event(event); };
  for (const char* channel :
       {"system.load_module", "system.unload_module", "system.reload_module"}) {
    auto id = bus_->subscribe(channel, SubscriptionFilter(), control);
    if (!id.ok()) return id.status();
    control_subscriptions_.push_back(*id);
  }

  if (Status s = start_tools_and_llm(); !s.ok()) return s;

  Discovery found = discover_modules(config_.module_dirs);
  emit("system.boot", Json{{"version", LOTUS_VERSION},
                           {"modules_found", found.manifests.size()},
                           {"manifest_errors", found.errors.size()}});
  for (const auto& [path, status] : found.errors) {
    spdlog::error("skipping module: {}", message_of(status));
    std::string name = path.parent_path().filename().string();
    record_problem(name, nullptr, status);
    emit("system.module_failed", Json{{"module", name}, {"error", message_of(status)}});
  }
  std::vector<Manifest> manifests;
  for (auto& manifest : found.manifests) {
    if (config_.disabled_modules.count(manifest.name) > 0) {
      spdlog::info("module {} is disabled in config", manifest.name);
      continue;
    }
    manifests.push_back(std::move(manifest));
  }
  ResolvedOrder resolved = resolve_load_order(manifests);
  for (const auto& [name, status] : resolved.excluded) {
    spdlog::error("not starting module {}: {}", name, message_of(status));
    const Manifest* manifest = nullptr;
    for (const auto& m : manifests) {
      if (m.name == name) manifest = &m;
    }
    record_problem(name, manifest, status);
    emit("system.module_failed", Json{{"module", name}, {"error", message_of(status)}});
  }
  for (const Manifest* manifest : resolved.order) {
    if (stop_requested()) {
      spdlog::warn("boot interrupted: not starting {} and the modules after it", manifest->name);
      break;
    }
    // A dependency that failed while starting takes its dependents with it.
    std::string missing;
    for (const auto& dependency : manifest->dependencies.modules) {
      auto host = find(dependency.name);
      if (!host || host->state() != ModuleState::kRunning) {
        missing = dependency.name;
        break;
      }
    }
    if (!missing.empty()) {
      Status status = absl::FailedPreconditionError(
          cat("module \"", manifest->name, "\" needs \"", missing, "\", which failed to start"));
      spdlog::error("not starting module {}: {}", manifest->name, message_of(status));
      record_problem(manifest->name, manifest, status);
      emit("system.module_failed", Json{{"module", manifest->name}, {"error", message_of(status)}});
      continue;
    }
    run(start_module(*manifest)).IgnoreError();
  }
  boot_duration_ = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - begin);
  spdlog::info("booted in {} ms: {} modules running, {} with problems", boot_duration_.count(),
               hosts_.size(), problems_.size());
  watch_hotload();
  return absl::OkStatus();
}

Task<Status> Nucleus::start_module(Manifest manifest) {
  ModuleHost::Services services;
  services.bus = bus_.get();
  services.state = state_.get();
  services.supervision =
      SupervisionPolicy{config_.supervision.max_restarts, config_.supervision.window,
                        config_.supervision.backoff_initial, config_.supervision.backoff_max};
  services.plugin_cache = config_.data_dir / "plugin-cache";
  services.data_dir = config_.data_dir;
  services.emit = [this](std::string channel, Json data) {
    emit(std::move(channel), std::move(data));
  };
  services.stopping = [this] { return stop_requested() || !accepting_; };
  services.chat = [this](ChatRequest request, StreamCallback on_text,
                         std::vector<std::string> fallbacks) {
    return chat(std::move(request), std::move(on_text), std::move(fallbacks));
  };
  services.mount_tools = [this](const std::string& owner, std::string_view group,
                                std::vector<MountedTool> tools, MountedToolHandler handler) {
    return mount_tools(owner, group, std::move(tools), std::move(handler));
  };
  services.vector_collections = [this] { return vector_collections(); };
  Json user_config = Json::object();
  if (auto it = config_.module_config.find(manifest.name); it != config_.module_config.end()) {
    user_config = it->second;
  }
  // The memory module's server profile shares the bus's Redis unless its
  // config names another.
  if (manifest.name == "memory" && config_.bus != "local" && !user_config.contains("redis")) {
    user_config["redis"] = config_.bus;
  }
  const std::string name = manifest.name;
  auto host = std::make_shared<ModuleHost>(std::move(manifest), std::move(user_config), services);
  Status status = co_await host->start();
  if (!status.ok()) {
    record_problem(name, &host->manifest(), status);
    co_return status;
  }
  {
    std::lock_guard lock(mutex_);
    problems_.erase(name);
    hosts_.push_back(host);
    const Manifest& m = host->manifest();
    if (m.hotload) {
      watched_[name] = Watched{
          mtime(m.path),
          m.runtime.library.empty() ? std::filesystem::file_time_type{}
                                    : mtime(m.directory / m.runtime.library),
          m.runtime.library.empty() ? 0 : file_size_or_zero(m.directory / m.runtime.library),
          false};
    }
  }
  spdlog::info("module {} {} running ({})", name, host->manifest().version.to_string(),
               host->health().value("origin", ""));
  tools_added(host->manifest());
  emit("system.module_loaded", Json{{"module", name},
                                    {"version", host->manifest().version.to_string()},
                                    {"type", to_string(host->manifest().type)},
                                    {"mcp_prompts", host->manifest().mcp.prompts.size()}});
  co_return absl::OkStatus();
}

Task<Status> Nucleus::stop_module(std::shared_ptr<ModuleHost> host,
                                  std::chrono::steady_clock::time_point deadline) {
  Status status = co_await host->stop(deadline);
  if (!status.ok()) spdlog::warn("{}", message_of(status));
  co_return status;
}

Status Nucleus::shutdown() {
  accepting_ = false;
  // Control work in flight (load/unload/reload requested by events or the
  // hot-reload watcher) finishes first; none starts after accepting_ drops.
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mutex_);
    workers.swap(workers_);
  }
  for (auto& worker : workers) worker.join();
  std::lock_guard control(control_mutex_);
  if (shut_down_) return absl::OkStatus();
  shut_down_ = true;
  if (watch_timer_) watch_timer_->stop();
  emit("system.shutdown", Json{{"reason", stop_requested() ? "signal" : "requested"}});
  // Approvals still waiting are answered "no" before the modules go.
  if (broker_) broker_->stop();
  // Other nodes stop offering this node's tools before its modules go.
  if (node_tools_) node_tools_->stop();
  auto deadline = std::chrono::steady_clock::now() + config_.shutdown_deadline;
  std::vector<std::shared_ptr<ModuleHost>> hosts;
  {
    std::lock_guard lock(mutex_);
    hosts = hosts_;
  }
  Status overall = absl::OkStatus();
  for (auto it = hosts.rbegin(); it != hosts.rend(); ++it) {
    Status status = run(stop_module(*it, deadline));
    emit("system.module_unloaded", Json{{"module", (*it)->manifest().name},
                                        {"mcp_prompts", (*it)->manifest().mcp.prompts.size()}});
    if (!status.ok() && overall.ok()) overall = status;
  }
  {
    std::lock_guard lock(mutex_);
    hosts_.clear();
  }
  for (SubscriptionId id : control_subscriptions_) bus_->unsubscribe(id);
  if (llm_pool_) llm_pool_->join();
  bus_->stop();
  state_.reset();
  return overall;
}

std::shared_ptr<ModuleHost> Nucleus::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  for (const auto& host : hosts_) {
    if (host->manifest().name == name) return host;
  }
  return nullptr;
}

std::vector<std::string> Nucleus::dependents_of(std::string_view name) const {
  std::vector<std::string> dependents;
  std::lock_guard lock(mutex_);
  for (const auto& host : hosts_) {
    for (const auto& dependency : host->manifest().dependencies.modules) {
      if (dependency.name == name && host->state() != ModuleState::kStopped) {
        dependents.push_back(host->manifest().name);
      }
    }
  }
  return dependents;
}

Status Nucleus::load_module(std::string_view name_or_dir) {
  std::lock_guard control(control_mutex_);
  if (!accepting_) return absl::FailedPreconditionError("the nucleus is shutting down");
  std::optional<Manifest> manifest;
  std::error_code ec;
  std::filesystem::path as_path(name_or_dir);
  if (std::filesystem::is_directory(as_path, ec)) {
    auto loaded = load_manifest(as_path / "manifest.yaml");
    if (!loaded.ok()) return loaded.status();
    manifest = std::move(*loaded);
  } else {
    Discovery found = discover_modules(config_.module_dirs);
    for (auto& m : found.manifests) {
      if (m.name == name_or_dir) manifest = std::move(m);
    }
    if (!manifest) {
      for (const auto& [path, status] : found.errors) {
        if (path.parent_path().filename() == name_or_dir) return status;
      }
      return absl::NotFoundError(
          cat("no module named \"", name_or_dir, "\" in the module folders"));
    }
  }
  if (find(manifest->name)) {
    return absl::AlreadyExistsError(cat("module \"", manifest->name, "\" is already loaded"));
  }
  for (const auto& dependency : manifest->dependencies.modules) {
    auto host = find(dependency.name);
    if (!host || host->state() != ModuleState::kRunning) {
      Status status = absl::FailedPreconditionError(cat(
          "module \"", manifest->name, "\" needs \"", dependency.name, "\", which is not running"));
      record_problem(manifest->name, &*manifest, status);
      return status;
    }
    if (!dependency.constraint.allows(host->manifest().version)) {
      return absl::FailedPreconditionError(
          cat("module \"", manifest->name, "\" needs ", dependency.to_string(), ", but ",
              host->manifest().version.to_string(), " is running"));
    }
  }
  return run(start_module(std::move(*manifest)));
}

Status Nucleus::unload_module(std::string_view name) {
  std::lock_guard control(control_mutex_);
  if (!accepting_) return absl::UnavailableError("the nucleus is shutting down");
  auto host = find(name);
  if (!host) return absl::NotFoundError(cat("module \"", name, "\" is not loaded"));
  if (auto dependents = dependents_of(name); !dependents.empty()) {
    return absl::FailedPreconditionError(cat("module \"", name, "\" is needed by ",
                                             absl::StrJoin(dependents, ", "),
                                             "; unload those first"));
  }
  Status status =
      run(stop_module(host, std::chrono::steady_clock::now() + config_.shutdown_deadline));
  {
    std::lock_guard lock(mutex_);
    std::erase(hosts_, host);
    watched_.erase(std::string(name));
  }
  emit("system.module_unloaded", Json{{"module", host->manifest().name},
                                      {"mcp_prompts", host->manifest().mcp.prompts.size()}});
  tools_removed(host->manifest().name);
  return status;
}

Status Nucleus::reload_module(std::string_view name) {
  std::lock_guard control(control_mutex_);
  if (!accepting_) return absl::UnavailableError("the nucleus is shutting down");
  auto host = find(name);
  if (!host) return absl::NotFoundError(cat("module \"", name, "\" is not loaded"));
  auto manifest = load_manifest(host->manifest().path);
  if (!manifest.ok()) {
    return absl::InvalidArgumentError(cat(
        "not reloading \"", name, "\", its manifest is invalid: ", message_of(manifest.status())));
  }
  if (manifest->name != name) {
    return absl::InvalidArgumentError(cat(manifest->path.string(), ": name: changed from \"", name,
                                          "\" to \"", manifest->name,
                                          "\"; unload and load instead"));
  }
  Status status = run(host->reload(std::move(*manifest)));
  if (status.ok()) {
    spdlog::info("module {} reloaded", name);
    tools_added(host->manifest());
  }
  return status;
}

Status Nucleus::start_tools_and_llm() {
  auto policy = llm::ToolPolicy::create(config_.tools.policy, config_.tools.risk);
  if (!policy.ok()) return policy.status();
  llm::ToolBrokerOptions options;
  options.policy = *std::move(policy);
  options.timeout = config_.tools.timeout;
  options.approval_timeout = config_.tools.approval_timeout;
  options.max_result_bytes = config_.tools.max_result_bytes;
  broker_ = llm::ToolBroker::create(*bus_, tools_, std::move(options));
  if (Status s = broker_->start(); !s.ok()) return s;
  // On a bus shared with other nodes, their tools join the registry.
  node_tools_ =
      NodeTools::create(*bus_, tools_, [this](const std::string& node, NodeTools::Change what) {
        if (what.tools) {
          emit("system.tools_changed", Json{{"node", node}, {"version", tools_.version()}});
        }
        if (what.content) emit("system.node_content_changed", Json{{"node", node}});
      });
  node_tools_->set_local_content([this] {
    Json offered = Json::array();
    for (const Manifest& m : running_manifests()) {
      if (m.mcp.resources.empty() && m.mcp.resource_templates.empty() && m.mcp.prompts.empty()) {
        continue;
      }
      offered.push_back({{"module", m.name},
                         {"resources", m.mcp.resources},
                         {"resource_templates", m.mcp.resource_templates},
                         {"prompts", m.mcp.prompts}});
    }
    return offered;
  });
  if (Status s = node_tools_->start(); !s.ok()) return s;

  // A broken `llm:` section costs the LLM, not the system: everything that
  // needs no model keeps working, and health says what to fix.
  llm::ProviderContext context;
  if (!config_.config_file.empty()) context.base_dir = config_.config_file.parent_path();
  auto router = llm::ProviderRouter::create(config_.llm, context);
  if (router.ok()) {
    llm_ = *std::move(router);
    llm_status_ = llm_->ready();
    if (llm_status_.ok()) llm_status_ = llm_->default_model_ready();
  } else {
    llm_status_ = router.status();
    spdlog::error("LLM providers unavailable: {}", message_of(llm_status_));
  }
  llm_pool_ = std::make_unique<boost::asio::thread_pool>(4);
  return absl::OkStatus();
}

Task<Result<ChatResponse>> Nucleus::chat(ChatRequest request, StreamCallback on_text,
                                         std::vector<std::string> fallbacks) {
  if (!llm_) {
    co_return absl::FailedPreconditionError(cat("no LLM is available: ", message_of(llm_status_)));
  }
  if (Status ready = llm_->ready(); !ready.ok()) co_return ready;
  auto answered = resume_with<Result<ChatResponse>>(
      [this, request = std::move(request), on_text = std::move(on_text),
       fallbacks = std::move(fallbacks)](std::function<void(Result<ChatResponse>)> resume) mutable {
        boost::asio::post(
            *llm_pool_, [this, request = std::move(request), on_text = std::move(on_text),
                         fallbacks = std::move(fallbacks), resume = std::move(resume)]() mutable {
              Result<ChatResponse> result =
                  fallbacks.empty()
                      ? llm_->route(std::move(request), on_text)
                      : llm_->chat_with_fallbacks(std::move(request), on_text, fallbacks);
              // Back onto the bus's threads: the caller is a module coroutine.
              boost::asio::post(bus_->executor(),
                                [resume = std::move(resume), result = std::move(result)]() mutable {
                                  resume(std::move(result));
                                });
            });
      });
  Result<ChatResponse> result = co_await answered;
  co_return result;
}

void Nucleus::tools_added(const Manifest& manifest) {
  bool changed = true;
  if (manifest.tools.empty()) {
    // A module without tools changes none, unless a reload took its last
    // ones away.
    changed = tools_.remove_module(manifest.name);
  } else {
    // A bare MCP name another tool has already: the tool stays module__tool.
    for (const std::string& warning : tools_.add_module(manifest)) spdlog::warn("{}", warning);
  }
  // Other nodes hear of every module that comes or reloads, tools or not:
  // what this node announces carries the modules' MCP content as well.
  if (node_tools_) node_tools_->local_changed();
  if (changed) {
    emit("system.tools_changed", Json{{"module", manifest.name}, {"version", tools_.version()}});
  }
}

void Nucleus::tools_removed(const std::string& module) {
  const bool changed = tools_.remove_module(module);
  if (node_tools_) node_tools_->local_changed();  // as in tools_added
  if (changed) {
    emit("system.tools_changed", Json{{"module", module}, {"version", tools_.version()}});
  }
}

namespace {

// One call of a mounted tool, answered like a module's tool call.
Task<void> serve_mounted_call(Bus* bus, EventPtr event, std::string owner, std::string tool,
                              std::shared_ptr<const MountedToolHandler> handler) {
  Json arguments = event->data.value("arguments", Json::object());
  Result<Json> result = absl::InternalError("not run");
  try {
    auto running = (*handler)(std::move(tool), std::move(arguments));
    result = co_await std::move(running);
  } catch (const std::exception& e) {
    result = absl::InternalError(cat("the tool threw: ", e.what()));
  }
  Json reply = result.ok()
                   ? Json{{"ok", true}, {"result", std::move(*result)}}
                   : Json{{"ok", false}, {"error", std::string(message_of(result.status()))}};
  if (!event->metadata.reply_to.empty()) (void)bus->reply(*event, owner, std::move(reply));
}

bool valid_tool_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace

Status Nucleus::mount_tools(const std::string& owner, std::string_view group,
                            std::vector<MountedTool> tools, MountedToolHandler handler) {
  std::vector<std::string> removed;
  if (group.empty() || tools.empty()) {
    std::lock_guard lock(mounts_mutex_);
    for (auto it = mounts_.begin(); it != mounts_.end();) {
      if (it->second.owner == owner && (group.empty() || it->first == group)) {
        bus_->unsubscribe(it->second.subscription);
        removed.push_back(it->first);
        it = mounts_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (!removed.empty() || group.empty() || tools.empty()) {
    for (const std::string& name : removed) tools_removed(name);
    return absl::OkStatus();
  }
  std::string prefix = owner + "_";
  bool valid = group.size() > prefix.size() && group.substr(0, prefix.size()) == prefix;
  for (char c : group) {
    valid = valid && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  }
  if (!valid) {
    return absl::InvalidArgumentError(cat("module ", owner, " cannot mount tools as \"", group,
                                          "\": the group must be \"", prefix,
                                          "\" followed by lowercase letters, digits or _"));
  }
  if (find(group) != nullptr) {
    return absl::AlreadyExistsError(
        cat("cannot mount tools as \"", group, "\": a module of that name is loaded"));
  }
  if (!handler) return absl::InvalidArgumentError("mount_tools needs a handler");
  Manifest manifest;
  manifest.name = std::string(group);
  std::set<std::string> permissions;
  for (MountedTool& tool : tools) {
    if (!valid_tool_name(tool.name)) {
      return absl::InvalidArgumentError(cat("cannot mount tool \"", tool.name, "\" in ", group,
                                            ": names are 1-64 of [A-Za-z0-9_-]"));
    }
    Manifest::Tool entry;
    entry.name = std::move(tool.name);
    entry.description = std::move(tool.description);
    entry.parameters =
        tool.parameters.is_object() ? std::move(tool.parameters) : Json{{"type", "object"}};
    entry.permissions = std::move(tool.permissions);
    entry.has_own_permissions = true;
    permissions.insert(entry.permissions.begin(), entry.permissions.end());
    manifest.tools.push_back(std::move(entry));
  }
  manifest.permissions.assign(permissions.begin(), permissions.end());

  auto shared = std::make_shared<const MountedToolHandler>(std::move(handler));
  Subscriber calls;
  size_t prefix_length = cat("tool.", group, ".").size();
  calls.tap = [bus = bus_.get(), owner, shared, prefix_length](const EventPtr& event) {
    if (event->metadata.reply_to.empty()) return;  // a reply or a stray publish
    boost::asio::post(bus->executor(), [bus, event, owner, shared, prefix_length] {
      start_detached(
          serve_mounted_call(bus, event, owner, event->channel.substr(prefix_length), shared),
          [](std::exception_ptr) {});
    });
  };
  auto id = bus_->subscribe(cat("tool.", group, ".*"), SubscriptionFilter(), std::move(calls));
  if (!id.ok()) return id.status();
  {
    std::lock_guard lock(mounts_mutex_);
    auto [it, added] = mounts_.try_emplace(std::string(group));
    if (!added) {
      if (it->second.owner != owner) {
        bus_->unsubscribe(*id);
        return absl::AlreadyExistsError(
            cat("module ", it->second.owner, " has already mounted tools as \"", group, "\""));
      }
      bus_->unsubscribe(it->second.subscription);
    }
    it->second.owner = owner;
    it->second.subscription = *id;
  }
  tools_added(manifest);
  return absl::OkStatus();
}

void Nucleus::handle_control_event(const EventPtr& event) {
  // system.load_module / unload_module / reload_module {"name": ...}: how
  // modules (the self-modifier) and remote interfaces steer the nucleus.
  std::string action = event->channel.substr(std::string_view("system.").size());
  std::string name = event->data.value("name", "");
  if (name.empty()) {
    spdlog::warn("{} from {} has no data.name", event->channel, event->source);
    return;
  }
  // Runs off the publisher's thread: these wait for modules to start or stop.
  spawn_worker([this, action, name, event] {
    Status status = action == "load_module"     ? load_module(name)
                    : action == "unload_module" ? unload_module(name)
                                                : reload_module(name);
    if (!status.ok()) spdlog::error("{} {}: {}", action, name, message_of(status));
    if (!event->metadata.reply_to.empty()) {
      bus_->reply(*event, "nucleus",
                  Json{{"ok", status.ok()}, {"error", std::string(message_of(status))}})
          .IgnoreError();
    }
  });
}

void Nucleus::spawn_worker(std::function<void()> work) {
  std::lock_guard lock(mutex_);
  if (!accepting_) return;
  workers_.emplace_back(std::move(work));
}

void Nucleus::watch_hotload() {
  watch_timer_ = PeriodicTimer::start(bus_->executor(), kHotloadInterval, [this] {
    if (accepting_) check_hotload();
  });
}

void Nucleus::check_hotload() {
  std::vector<std::string> to_reload;
  {
    std::lock_guard lock(mutex_);
    for (auto& [name, watched] : watched_) {
      const Manifest* manifest = nullptr;
      for (const auto& host : hosts_) {
        if (host->manifest().name == name) manifest = &host->manifest();
      }
      if (manifest == nullptr) continue;
      auto manifest_time = mtime(manifest->path);
      std::filesystem::path library = manifest->runtime.library.empty()
                                          ? std::filesystem::path()
                                          : manifest->directory / manifest->runtime.library;
      auto library_time = library.empty() ? std::filesystem::file_time_type{} : mtime(library);
      auto library_size = library.empty() ? 0 : file_size_or_zero(library);
      bool changed = manifest_time != watched.manifest_time ||
                     library_time != watched.library_time || library_size != watched.library_size;
      watched.manifest_time = manifest_time;
      watched.library_time = library_time;
      watched.library_size = library_size;
      // Reload one tick after the files stop changing, so a library still
      // being written by the linker is not picked up half-done.
      if (changed) {
        watched.pending = true;
      } else if (watched.pending) {
        watched.pending = false;
        to_reload.push_back(name);
      }
    }
  }
  for (const auto& name : to_reload) {
    spawn_worker([this, name] {
      spdlog::info("module {} changed on disk: hot reloading", name);
      Status status = reload_module(name);
      if (!status.ok()) spdlog::error("hot reload of {} failed: {}", name, message_of(status));
    });
  }
}

Json Nucleus::health() const {
  ProcessStats process = read_process_stats();
  Json modules = Json::object();
  size_t unhealthy = 0;
  {
    std::lock_guard lock(mutex_);
    for (const auto& host : hosts_) {
      Json h = host->health();
      if (h["state"] != "running") ++unhealthy;
      modules[host->manifest().name] = std::move(h);
    }
    for (const auto& [name, problem] : problems_) {
      if (modules.contains(name)) continue;
      ++unhealthy;
      modules[name] = Json{{"name", name},
                           {"version", problem.version},
                           {"type", problem.type},
                           {"state", problem.state},
                           {"last_error", problem.error}};
    }
  }
  BusStats bus = bus_->stats();
  return Json{
      {"status", unhealthy == 0 ? "healthy" : "degraded"},
      {"version", LOTUS_VERSION},
      {"uptime_seconds",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count()},
      {"boot_ms", boot_duration_.count()},
      {"process",
       {{"rss_bytes", process.rss_bytes},
        {"cpu_user_seconds", process.cpu_user_seconds},
        {"cpu_system_seconds", process.cpu_system_seconds},
        {"threads", process.threads}}},
      {"bus",
       {{"kind", bus_->backend_health().value("backend", "local")},
        {"backend", bus_->backend_health()},
        {"published", bus.published},
        {"delivered", bus.delivered},
        {"unrouted", bus.unrouted},
        {"filtered", bus.filtered},
        {"refused", bus.refused},
        {"subscriptions", bus.subscriptions}}},
      {"llm", llm_health()},
      {"tools", tools_health()},
      {"modules", std::move(modules)},
  };
}

Json Nucleus::llm_health() const {
  Json out = {{"ready", llm_ != nullptr && llm_status_.ok()}};
  if (!llm_status_.ok()) out["problem"] = std::string(message_of(llm_status_));
  if (llm_) out["usage"] = llm_->usage_report();
  return out;
}

Json Nucleus::tools_health() const {
  auto list = tools_.list();
  size_t remote = 0;
  for (const auto& tool : *list) remote += tool->node.empty() ? 0 : 1;
  Json out = {{"registered", list->size()}, {"remote", remote}};
  if (broker_) {
    llm::ToolBroker::Stats stats = broker_->stats();
    out["calls"] = stats.calls;
    out["invalid"] = stats.invalid;
    out["denied"] = stats.denied;
    out["failed"] = stats.failed;
    out["timed_out"] = stats.timed_out;
    out["truncated"] = stats.truncated;
    out["pending_approvals"] = broker_->pending_approvals().size();
  }
  return out;
}

std::map<std::string, std::vector<std::string>> Nucleus::vector_collections() const {
  std::map<std::string, std::vector<std::string>> out;
  std::lock_guard lock(mutex_);
  for (const auto& host : hosts_) {
    const Manifest& m = host->manifest();
    out[m.name] = m.memory.vector_collections;
  }
  return out;
}

std::vector<Manifest> Nucleus::running_manifests() const {
  std::vector<Manifest> out;
  std::lock_guard lock(mutex_);
  for (const auto& host : hosts_) {
    ModuleState state = host->state();
    if (state == ModuleState::kRunning || state == ModuleState::kDegraded) {
      out.push_back(host->manifest());
    }
  }
  return out;
}

std::vector<Manifest> Nucleus::mcp_manifests() const {
  std::vector<Manifest> out = running_manifests();
  if (!node_tools_) return out;
  for (Manifest& remote : node_tools_->remote_content()) {
    bool here = std::any_of(out.begin(), out.end(),
                            [&](const Manifest& m) { return m.name == remote.name; });
    if (!here) out.push_back(std::move(remote));
  }
  return out;
}

std::vector<ModuleSummary> Nucleus::modules() const {
  std::vector<ModuleSummary> out;
  std::lock_guard lock(mutex_);
  for (const auto& host : hosts_) {
    const Manifest& m = host->manifest();
    ModuleSummary summary{m.name,
                          m.version.to_string(),
                          std::string(to_string(m.type)),
                          std::string(to_string(host->state())),
                          host->last_error(),
                          {}};
    for (const auto& requirement : m.dependencies.modules) {
      summary.dependencies.push_back(requirement.name);
    }
    out.push_back(std::move(summary));
  }
  for (const auto& [name, problem] : problems_) {
    bool loaded = false;
    for (const auto& s : out) loaded = loaded || s.name == name;
    if (!loaded)
      out.push_back(
          ModuleSummary{name, problem.version, problem.type, problem.state, problem.error, {}});
  }
  return out;
}

Result<size_t> Nucleus::publish(Event event) {
  if (!accepting_) return absl::UnavailableError("the nucleus is shutting down");
  return bus_->publish(std::move(event));
}

}  // namespace lotus
