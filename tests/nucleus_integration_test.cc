// Boots a real nucleus with real plugin modules (built from tests/plugins)
// and checks the contract end to end: dependency problems, supervision,
// tools over the bus, state, unload/load, graceful drain and hot reload of
// an out-of-tree plugin under a stream of events.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/nucleus.h"
#include "lotus/strings.h"
#include "support/test_env.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Records the events of a pattern from the moment it is attached.
class EventLog {
 public:
  EventLog(Bus& bus, std::string_view pattern) : bus_(bus) {
    Subscriber tap;
    tap.tap = [this](const EventPtr& event) {
      std::lock_guard lock(mutex_);
      events_.push_back(event);
      changed_.notify_all();
    };
    id_ = *bus.subscribe(pattern, SubscriptionFilter(), tap);
  }
  ~EventLog() { bus_.unsubscribe(id_); }

  bool wait_until(const std::function<bool(const std::vector<EventPtr>&)>& done,
                  std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return done(events_); });
  }
  bool wait_for(std::string_view channel, std::string_view module = "",
                std::chrono::milliseconds timeout = 10s) {
    return wait_until(
        [&](const std::vector<EventPtr>& events) {
          for (const auto& e : events) {
            if (e->channel == channel &&
                (module.empty() || e->data.value("module", "") == module)) {
              return true;
            }
          }
          return false;
        },
        timeout);
  }
  std::vector<EventPtr> snapshot() {
    std::lock_guard lock(mutex_);
    return events_;
  }

 private:
  Bus& bus_;
  SubscriptionId id_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<EventPtr> events_;
};

// Configures and builds a module project with CMake, as a module author
// would, outside the LOTUS tree. Output goes to <build_dir>/out; the log to
// <build_dir>.log. Returns the shell's exit status.
int build_out_of_tree(const std::filesystem::path& source, const std::filesystem::path& build_dir,
                      const std::string& extra_args = "") {
  std::string log = build_dir.string() + ".log";
  return testing::run_shell(cat(
      "\"", LOTUS_CMAKE_COMMAND, "\" -S \"", source.string(), "\" -B \"", build_dir.string(),
      "\" -G Ninja -DCMAKE_BUILD_TYPE=Release ", extra_args, " -DCMAKE_LIBRARY_OUTPUT_DIRECTORY=\"",
      build_dir.string(), "/out\" > \"", log, "\" 2>&1 && \"", LOTUS_CMAKE_COMMAND, "\" --build \"",
      build_dir.string(), "\" >> \"", log, "\" 2>&1"));
}

class NucleusTest : public ::testing::Test {
 protected:
  std::filesystem::path modules() const { return dir_.path() / "modules"; }

  void add_module(const std::string& name) {
    testing::copy_folder(std::filesystem::path(LOTUS_TEST_MODULES_DIR) / name, modules() / name);
  }
  void add_fixture(const std::string& name) {
    testing::copy_folder(std::filesystem::path(LOTUS_FIXTURES_DIR) / "manifests" / name,
                         modules() / name);
  }

  Config config() const {
    Config c;
    c.module_dirs = {modules()};
    c.data_dir = dir_.path() / "data";
    c.threads = 2;
    c.shutdown_deadline = 5000ms;
    c.supervision.max_restarts = 3;
    c.supervision.window = 30s;
    c.supervision.backoff_initial = 10ms;
    c.supervision.backoff_max = 100ms;
    return c;
  }

  static std::map<std::string, ModuleSummary> by_name(const std::vector<ModuleSummary>& list) {
    std::map<std::string, ModuleSummary> out;
    for (const auto& m : list) out[m.name] = m;
    return out;
  }

  static Json call_tool(Nucleus& nucleus, const std::string& module, const std::string& tool) {
    Event request = Event::make(ModuleHost::tool_channel(module, tool), "test",
                                Json{{"arguments", Json::object()}});
    auto reply =
        testing::sync_wait(nucleus.bus().executor(), nucleus.bus().request(std::move(request), 5s));
    if (!reply.ok()) return Json{{"ok", false}, {"error", std::string(message_of(reply.status()))}};
    return (*reply)->data;
  }

  testing::TempDir dir_;
};

TEST_F(NucleusTest, BootsWhatItCanAndSaysWhyTheRestDidNot) {
  for (auto name : {"counter", "thrower", "crashloop", "contract_breaker"}) add_module(name);
  for (auto name : {"bad_version", "cycle_a", "cycle_b", "needs_missing"}) add_fixture(name);
  Nucleus nucleus(config());
  EventLog system(nucleus.bus(), "system.**");
  ASSERT_TRUE(nucleus.boot().ok());

  auto modules = by_name(nucleus.modules());
  EXPECT_EQ(modules["counter"].state, "running");
  EXPECT_EQ(modules["thrower"].state, "running");
  EXPECT_EQ(modules["crashloop"].state, "failed");
  EXPECT_THAT(modules["crashloop"].error, HasSubstr("always crashes"));
  EXPECT_EQ(modules["contract_breaker"].state, "failed");
  EXPECT_THAT(modules["contract_breaker"].error,
              HasSubstr("subscriptions[0].handler: \"handle_nothing\" is not registered"));
  EXPECT_EQ(modules["bad_version"].state, "failed");
  EXPECT_THAT(modules["bad_version"].error, HasSubstr("version"));
  EXPECT_THAT(modules["cycle_a"].error, HasSubstr("dependency cycle"));
  EXPECT_THAT(modules["needs_missing"].error, HasSubstr("ghost"));

  EXPECT_TRUE(system.wait_for("system.boot"));
  EXPECT_TRUE(system.wait_for("system.module_loaded", "counter"));
  EXPECT_TRUE(system.wait_for("system.module_failed", "crashloop"));
  EXPECT_TRUE(system.wait_for("system.module_failed", "cycle_a"));

  Json health = nucleus.health();
  EXPECT_EQ(health["status"], "degraded");
  EXPECT_EQ(health["modules"]["counter"]["state"], "running");
  EXPECT_GT(health["process"]["rss_bytes"].get<uint64_t>(), 0u);
  // Each module's own health_check() runs right after it starts.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (nucleus.health()["modules"]["counter"]["module"]["status"] != "healthy" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(nucleus.health()["modules"]["counter"]["module"]["status"], "healthy");
  // The crash loop was retried max_restarts times before being marked failed.
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(NucleusTest, RefusesLibrariesThatAreNotModulesOfThisAbi) {
  add_module("bad_abi");
  add_module("not_a_module");
  add_module("counter");
  testing::write_file(modules() / "missing_library" / "manifest.yaml",
                      "name: missing_library\nversion: \"1.0.0\"\ntype: capability\n"
                      "runtime: {library: libnowhere.so}\n");
  testing::write_file(modules() / "no_code" / "manifest.yaml",
                      "name: no_code\nversion: \"1.0.0\"\ntype: capability\n");
  Nucleus nucleus(config());
  ASSERT_TRUE(nucleus.boot().ok());
  auto modules = by_name(nucleus.modules());
  EXPECT_EQ(modules["counter"].state, "running");
  EXPECT_EQ(modules["bad_abi"].state, "failed");
  EXPECT_THAT(modules["bad_abi"].error, HasSubstr("rebuild the plugin"));
  EXPECT_EQ(modules["not_a_module"].state, "failed");
  EXPECT_THAT(modules["not_a_module"].error, HasSubstr("not a LOTUS module library"));
  EXPECT_THAT(modules["missing_library"].error, HasSubstr("plugin library not found"));
  EXPECT_THAT(modules["no_code"].error, HasSubstr("no built-in module named \"no_code\""));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(NucleusTest, ThrowingHandlerRestartsTheModuleNotTheNucleus) {
  add_module("thrower");
  Nucleus nucleus(config());
  ASSERT_TRUE(nucleus.boot().ok());
  EventLog log(nucleus.bus(), "**");
  ASSERT_TRUE(nucleus.publish(Event::make("test.throw", "test", Json{{"fail", true}})).ok());
  ASSERT_TRUE(log.wait_for("system.module_error", "thrower"));
  ASSERT_TRUE(log.wait_for("system.module_restarted", "thrower"));
  ASSERT_TRUE(nucleus.publish(Event::make("test.throw", "test", Json{{"n", 7}})).ok());
  ASSERT_TRUE(log.wait_for("test.ok"));

  Json health = nucleus.health()["modules"]["thrower"];
  EXPECT_EQ(health["state"], "running");
  EXPECT_EQ(health["restarts"], 1);
  EXPECT_GE(health["errors"].get<int>(), 1);
  EXPECT_THAT(health["last_error"].get<std::string>(), HasSubstr("asked to fail"));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(NucleusTest, PeriodicJobsSurviveTheirOwnExceptions) {
  add_module("thrower");
  Nucleus nucleus(config());
  EventLog ticks(nucleus.bus(), "test.tick");
  EventLog errors(nucleus.bus(), "system.module_error");
  ASSERT_TRUE(nucleus.boot().ok());
  ASSERT_TRUE(ticks.wait_until([](const std::vector<EventPtr>& events) {
    return !events.empty() && events.back()->data["flaky_runs"].get<int>() >= 5;
  }));
  Json health = nucleus.health()["modules"]["thrower"];
  EXPECT_EQ(health["state"], "running");
  EXPECT_EQ(health["restarts"], 0) << "a failing periodic job must not restart its module";
  EXPECT_GE(health["errors"].get<int>(), 5);
  // Every failure is counted, but a job failing every 20 ms is reported once
  // per window, not 50 times a second.
  EXPECT_EQ(errors.snapshot().size(), 1u);
  EXPECT_THAT(health["last_error"].get<std::string>(), HasSubstr("flaky job failed on purpose"));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(NucleusTest, CrashLoopIsMarkedFailedAfterTheConfiguredRestarts) {
  add_module("crashloop");
  add_module("counter");
  Nucleus nucleus(config());
  EventLog system(nucleus.bus(), "system.module_error");
  ASSERT_TRUE(nucleus.boot().ok());
  auto modules = by_name(nucleus.modules());
  EXPECT_EQ(modules["crashloop"].state, "failed");
  EXPECT_EQ(modules["counter"].state, "running");
  // One first attempt plus max_restarts retries, all failing the same way:
  // reported once, the repeats folded into the next report.
  ASSERT_EQ(system.snapshot().size(), 1u);
  EXPECT_EQ(system.snapshot()[0]->data["where"], "initialize");
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(NucleusTest, ToolsAnswerOverTheBusAndStateSurvivesARestart) {
  add_module("counter");
  {
    Nucleus nucleus(config());
    ASSERT_TRUE(nucleus.boot().ok());
    EventLog counted(nucleus.bus(), "test.counted");
    for (int i = 0; i < 25; ++i) {
      ASSERT_TRUE(nucleus.publish(Event::make("test.count", "test", Json{{"n", i}})).ok());
    }
    ASSERT_TRUE(counted.wait_until([](const auto& events) { return events.size() == 25; }));
    Json reply = call_tool(nucleus, "counter", "get_count");
    ASSERT_EQ(reply["ok"], true) << reply.dump();
    EXPECT_EQ(reply["result"]["handled"], 25);
    Json missing = call_tool(nucleus, "counter", "no_such_tool");
    EXPECT_EQ(missing["ok"], false);
    EXPECT_THAT(missing["error"].get<std::string>(), HasSubstr("no tool \"no_such_tool\""));
    ASSERT_TRUE(nucleus.shutdown().ok());
  }
  Nucleus again(config());
  ASSERT_TRUE(again.boot().ok());
  EXPECT_EQ(call_tool(again, "counter", "get_count")["result"]["handled"], 25);
  ASSERT_TRUE(again.shutdown().ok());
}

TEST_F(NucleusTest, UndeclaredPublicationsAreRefusedAndCounted) {
  add_module("counter");
  // The counter declares only test.counted: a manifest that takes it away
  // makes each of its publishes a refusal.
  testing::write_file(modules() / "counter" / "manifest.yaml",
                      "name: counter\nversion: \"1.0.0\"\ntype: capability\n"
                      "subscriptions: [{pattern: test.count, handler: count}]\n"
                      "publications: [test.other]\n"
                      "tools: [{name: get_count, description: count, parameters: []},"
                      " {name: tick, description: tick, parameters: []}]\n"
                      "runtime: {library: libcounter.so}\n");
  Nucleus nucleus(config());
  ASSERT_TRUE(nucleus.boot().ok());
  EventLog counted(nucleus.bus(), "test.counted");
  for (int i = 0; i < 3; ++i) nucleus.publish(Event::make("test.count", "test")).IgnoreError();
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (nucleus.health()["modules"]["counter"]["publish_refused"] != 3 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(nucleus.health()["modules"]["counter"]["publish_refused"], 3);
  EXPECT_TRUE(counted.snapshot().empty());
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(NucleusTest, UnloadLoadAndReloadAtRunTime) {
  add_module("counter");
  add_module("thrower");
  Nucleus nucleus(config());
  ASSERT_TRUE(nucleus.boot().ok());
  ASSERT_TRUE(nucleus.unload_module("counter").ok());
  EXPECT_EQ(by_name(nucleus.modules()).count("counter"), 0u);
  EXPECT_EQ(*nucleus.publish(Event::make("test.count", "test")), 0u) << "nobody subscribes now";
  EXPECT_EQ(nucleus.unload_module("counter").code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(nucleus.load_module("counter").ok());
  EXPECT_EQ(by_name(nucleus.modules())["counter"].state, "running");
  EXPECT_EQ(nucleus.load_module("counter").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(nucleus.load_module("nothing_here").code(), absl::StatusCode::kNotFound);

  EventLog system(nucleus.bus(), "system.module_reloaded");
  ASSERT_TRUE(nucleus.reload_module("counter").ok());
  EXPECT_TRUE(system.wait_for("system.module_reloaded", "counter"));
  EXPECT_EQ(by_name(nucleus.modules())["counter"].state, "running");
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(NucleusTest, ReloadWithChangedSubscriptionsRoutesByTheNewManifest) {
  add_module("counter");
  Nucleus nucleus(config());
  ASSERT_TRUE(nucleus.boot().ok());
  EventLog counted(nucleus.bus(), "test.counted");
  // The new manifest drops test.count and subscribes the same handler to
  // two other channels, the first of them in the old one's position.
  testing::write_file(modules() / "counter" / "manifest.yaml",
                      "name: counter\nversion: \"1.1.0\"\ntype: capability\n"
                      "subscriptions: [{pattern: test.tally, handler: count},"
                      " {pattern: test.count.more, handler: count}]\n"
                      "publications: [test.counted]\n"
                      "tools: [{name: get_count, description: count, parameters: []},"
                      " {name: tick, description: tick, parameters: []}]\n"
                      "runtime: {library: libcounter.so}\n");
  ASSERT_TRUE(nucleus.reload_module("counter").ok());
  EXPECT_EQ(by_name(nucleus.modules())["counter"].version, "1.1.0");
  EXPECT_EQ(*nucleus.publish(Event::make("test.count", "test", Json{{"n", 1}})), 0u);
  EXPECT_EQ(*nucleus.publish(Event::make("test.tally", "test", Json{{"n", 2}})), 1u);
  EXPECT_EQ(*nucleus.publish(Event::make("test.count.more", "test", Json{{"n", 3}})), 1u);
  ASSERT_TRUE(counted.wait_until([](const auto& events) { return events.size() == 2; }));
  EXPECT_EQ(counted.snapshot()[0]->data["n"], 2);
  EXPECT_EQ(counted.snapshot()[1]->data["n"], 3);
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(NucleusTest, ControlEventsSteerTheNucleus) {
  add_module("counter");
  Nucleus nucleus(config());
  ASSERT_TRUE(nucleus.boot().ok());
  EventLog system(nucleus.bus(), "system.**");
  ASSERT_TRUE(
      nucleus.publish(Event::make("system.unload_module", "test", Json{{"name", "counter"}})).ok());
  ASSERT_TRUE(system.wait_for("system.module_unloaded", "counter"));
  ASSERT_TRUE(
      nucleus.publish(Event::make("system.load_module", "test", Json{{"name", "counter"}})).ok());
  ASSERT_TRUE(system.wait_for("system.module_loaded", "counter"));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(NucleusTest, ShutdownDrainsQueuedEventsBeforeStopping) {
  add_module("counter");
  Nucleus nucleus(config());
  ASSERT_TRUE(nucleus.boot().ok());
  std::atomic<int> counted{0};
  Subscriber tap;
  tap.tap = [&](const EventPtr&) { ++counted; };
  ASSERT_TRUE(nucleus.bus().subscribe("test.counted", {}, tap).ok());
  constexpr int kEvents = 5000;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(nucleus.publish(Event::make("test.count", "test", Json{{"n", i}})).ok());
  }
  ASSERT_TRUE(nucleus.shutdown().ok());
  EXPECT_EQ(counted.load(), kEvents);
}

// The module of the README's guide, built out of tree as the guide says.
TEST_F(NucleusTest, TheReadmeExampleModuleBuildsLoadsAndWorks) {
  const auto source = std::filesystem::path(LOTUS_SOURCE_DIR) / "examples" / "file_indexer";
  const auto build_dir = dir_.path() / "example-build";
  ASSERT_EQ(build_out_of_tree(source, build_dir), 0)
      << "example build failed, see " << build_dir.string() << ".log";
  const auto module_dir = modules() / "file_indexer";
  std::filesystem::create_directories(module_dir);
  std::filesystem::copy_file(source / "manifest.yaml", module_dir / "manifest.yaml");
  std::filesystem::copy_file(build_dir / "out" / "libfile_indexer.so",
                             module_dir / "libfile_indexer.so");
  Nucleus nucleus(config());
  ASSERT_TRUE(nucleus.boot().ok());
  ASSERT_EQ(by_name(nucleus.modules())["file_indexer"].state, "running");
  EventLog display(nucleus.bus(), "action.display");
  for (auto path : {"/src/app.py", "/src/app.cc", "/src/lib/util.py"}) {
    ASSERT_TRUE(
        nucleus.publish(Event::make("perception.file_changed", "test", Json{{"path", path}})).ok());
  }
  ASSERT_TRUE(display.wait_until([](const auto& events) { return events.size() == 2; }));
  EXPECT_EQ(display.snapshot()[0]->data["text"], "indexed /src/app.py");
  Event request = Event::make(ModuleHost::tool_channel("file_indexer", "find_file"), "test",
                              Json{{"arguments", {{"query", "util"}}}});
  auto reply =
      testing::sync_wait(nucleus.bus().executor(), nucleus.bus().request(std::move(request), 5s));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ((*reply)->data["result"]["matches"], Json::array({"/src/lib/util.py"}));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

// The acceptance test for hot reload: a plugin built out of tree is rebuilt
// (generation 2) while events stream in; the nucleus swaps it and every
// event is handled exactly once, by generation 1 before the swap and by
// generation 2 after it, and the module's state carries across.
TEST_F(NucleusTest, HotReloadOfAnOutOfTreePluginUnderLoadLosesNothing) {
  const auto module_dir = modules() / "counter";
  std::filesystem::create_directories(module_dir);
  std::filesystem::copy_file(
      std::filesystem::path(LOTUS_PLUGIN_SOURCES) / "counter" / "manifest.yaml",
      module_dir / "manifest.yaml");
  const auto build_dir = dir_.path() / "plugin-build";
  auto build = [&](int generation) {
    return build_out_of_tree(std::filesystem::path(LOTUS_PLUGIN_SOURCES) / "counter", build_dir,
                             cat("-DCOUNTER_GENERATION=", generation));
  };
  // Install the way a build system should: write beside, then rename.
  auto install = [&] {
    std::filesystem::copy_file(build_dir / "out" / "libcounter.so",
                               module_dir / "libcounter.so.new",
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::rename(module_dir / "libcounter.so.new", module_dir / "libcounter.so");
  };
  ASSERT_EQ(build(1), 0) << "out-of-tree build failed, see " << build_dir.string() << ".log";
  install();

  Nucleus nucleus(config());
  ASSERT_TRUE(nucleus.boot().ok());
  ASSERT_EQ(by_name(nucleus.modules())["counter"].state, "running");

  std::mutex mutex;
  std::map<int, int> times_seen;
  std::map<int, int> generation_of;
  std::atomic<bool> saw_generation_2{false};
  Subscriber tap;
  tap.tap = [&](const EventPtr& event) {
    int n = event->data["n"].get<int>();
    int generation = event->data["generation"].get<int>();
    std::lock_guard lock(mutex);
    ++times_seen[n];
    generation_of[n] = generation;
    if (generation == 2) saw_generation_2 = true;
  };
  ASSERT_TRUE(nucleus.bus().subscribe("test.counted", {}, tap).ok());

  std::atomic<bool> stop{false};
  std::atomic<int> published{0};
  std::thread publisher([&] {
    // A steady stream (about 5,000 events/s) until well after the swap.
    while (!stop) {
      for (int i = 0; i < 50; ++i) {
        int n = published.load();
        if (nucleus.publish(Event::make("test.count", "test", Json{{"n", n}})).ok()) ++published;
      }
      std::this_thread::sleep_for(10ms);
    }
  });
  std::this_thread::sleep_for(300ms);
  ASSERT_EQ(build(2), 0) << "rebuild failed, see " << build_dir.string() << ".log";
  install();
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!saw_generation_2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  std::this_thread::sleep_for(300ms);
  stop = true;
  publisher.join();
  ASSERT_TRUE(saw_generation_2.load()) << "the rebuilt plugin was never swapped in";
  ASSERT_TRUE(nucleus.shutdown().ok());  // drains what is queued

  std::lock_guard lock(mutex);
  const int total = published.load();
  ASSERT_GT(total, 1000);
  int duplicates = 0, missing = 0, switches = 0;
  for (int n = 0; n < total; ++n) {
    auto it = times_seen.find(n);
    if (it == times_seen.end()) {
      ++missing;
    } else if (it->second > 1) {
      ++duplicates;
    }
    if (n > 0 && generation_of[n] != generation_of[n - 1]) ++switches;
  }
  EXPECT_EQ(missing, 0) << "events lost across the swap";
  EXPECT_EQ(duplicates, 0) << "events delivered twice across the swap";
  EXPECT_EQ(switches, 1) << "generation 1 handles everything before the swap, 2 after";
  EXPECT_EQ(generation_of[0], 1);
  EXPECT_EQ(generation_of[total - 1], 2);

  // The state the old instance saved on shutdown was loaded by the new one.
  Nucleus again(config());
  ASSERT_TRUE(again.boot().ok());
  EXPECT_EQ(call_tool(again, "counter", "get_count")["result"]["handled"], total);
  EXPECT_EQ(call_tool(again, "counter", "get_count")["result"]["generation"], 2);
  ASSERT_TRUE(again.shutdown().ok());
}

}  // namespace
}  // namespace lotus
