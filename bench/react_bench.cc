// Framework overhead per ReAct iteration (think -> act -> observe), with no
// model latency: the scripted provider answers at once. A module offers 50
// tools; each task is a fresh conversation in which the model calls one tool
// per turn for `steps - 1` turns, each call travelling over the bus through
// the tool broker (schema check, policy, the module's mailbox, the reply,
// action.tool_result and action_log), then answers. bench/react_overhead.sh
// runs this beside the same scenario in LangGraph.js.
//
//   build/release/bench/react_bench [--tools 50] [--tasks 200] [--steps 5]
//
// Prints one JSON line: us_per_iteration = wall time of the measured tasks
// divided by tasks * steps.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/nucleus.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "runtime/module_factory.h"

namespace lotus {
namespace {

int tool_count = 50;

Task<ToolResult> echo(const Json& arguments) { co_return Json{{"echo", arguments}}; }

class BenchTools : public Module {
 public:
  Task<void> initialize() override {
    for (int i = 0; i < tool_count; ++i) tool(cat("tool_", i), echo);
    co_return;
  }
};
static RegisterBuiltinModule<BenchTools> registered("bench_tools");

int flag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::max(1, std::atoi(argv[i + 1]));
  }
  return fallback;
}

}  // namespace
}  // namespace lotus

int main(int argc, char** argv) {
  using namespace lotus;
  spdlog::set_level(spdlog::level::warn);
  tool_count = flag(argc, argv, "--tools", 50);
  const int tasks = flag(argc, argv, "--tasks", 200);
  const int steps = flag(argc, argv, "--steps", 5);
  constexpr int kWarmup = 20;

  std::string pattern = (std::filesystem::temp_directory_path() / "lotus-react-XXXXXX").string();
  std::filesystem::path root = mkdtemp(pattern.data());
  std::filesystem::create_directories(root / "modules" / "bench_tools");
  std::filesystem::create_directories(root / "modules" / "reasoning");
  std::filesystem::copy_file(
      std::filesystem::path(LOTUS_SOURCE_DIR) / "modules/core/reasoning/manifest.yaml",
      root / "modules" / "reasoning" / "manifest.yaml");
  {
    std::ofstream manifest(root / "modules" / "bench_tools" / "manifest.yaml");
    manifest << "name: bench_tools\nversion: 1.0.0\ntype: capability\ntools:\n";
    for (int i = 0; i < tool_count; ++i) {
      manifest << "  - name: tool_" << i << "\n    description: Echo tool number " << i
               << "\n    parameters:\n      type: object\n      properties: {q: {type: string}}\n"
               << "      required: [q]\n";
    }
  }

  // The script: steps-1 turns that each call one tool, then an answer; looped.
  Json turns = Json::array();
  for (int k = 0; k + 1 < steps; ++k) {
    turns.push_back({{"tool_calls",
                      {{{"id", cat("call_", k)},
                        {"name", cat("bench_tools__tool_", k % tool_count)},
                        {"arguments", {{"q", "x"}}}}}}});
  }
  turns.push_back({{"text", "done"}});

  Config config;
  config.module_dirs = {root / "modules"};
  config.data_dir = root / "data";
  config.llm = Json{{"providers",
                     {{"script",
                       {{"type", "scripted"},
                        {"keep_requests", 0},
                        {"script", {{"responses", turns}, {"loop", true}}}}}}},
                    {"default_model", "script:replay"}};
  Nucleus nucleus(config);
  if (Status s = nucleus.boot(); !s.ok()) {
    std::fprintf(stderr, "boot failed: %s\n", std::string(message_of(s)).c_str());
    return 1;
  }
  for (const auto& m : nucleus.modules()) {
    if (m.state != "running") {
      std::fprintf(stderr, "module %s is %s: %s\n", m.name.c_str(), m.state.c_str(),
                   m.error.c_str());
      return 1;
    }
  }

  std::mutex mutex;
  std::condition_variable finished;
  Json last;
  bool done = false;
  Subscriber tap;
  tap.tap = [&](const EventPtr& event) {
    std::lock_guard lock(mutex);
    last = event->data;
    done = true;
    finished.notify_all();
  };
  (void)nucleus.bus().subscribe("cognition.task_complete", SubscriptionFilter(), tap);

  std::vector<double> task_us;
  auto run_task = [&](int n) -> bool {
    Event input = Event::make("perception.user_input", "bench",
                              Json{{"text", "go"}, {"conversation_id", cat("bench-", n)}});
    input.metadata.trace_id = input.id.to_string();
    std::unique_lock lock(mutex);
    done = false;
    auto begin = std::chrono::steady_clock::now();
    lock.unlock();
    if (!nucleus.publish(std::move(input)).ok()) return false;
    lock.lock();
    if (!finished.wait_for(lock, std::chrono::seconds(10), [&] { return done; })) return false;
    task_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - begin)
            .count());
    return last.value("ok", false) && last.value("iterations", 0) == steps &&
           last.value("tool_calls", 0) == steps - 1;
  };
  for (int i = 0; i < kWarmup; ++i) {
    if (!run_task(-1 - i)) {
      std::fprintf(stderr, "warm-up task failed: %s\n", last.dump().c_str());
      return 1;
    }
  }
  task_us.clear();
  auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < tasks; ++i) {
    if (!run_task(i)) {
      std::fprintf(stderr, "task %d failed: %s\n", i, last.dump().c_str());
      return 1;
    }
  }
  double total_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - begin).count();
  std::sort(task_us.begin(), task_us.end());
  auto at = [&](double q) {
    return task_us[std::min(task_us.size() - 1, static_cast<size_t>(q * task_us.size()))];
  };
  Json out = {{"framework", "lotus"},
              {"tools", tool_count},
              {"tasks", tasks},
              {"steps", steps},
              {"iterations", tasks * steps},
              {"us_per_iteration", total_us / (tasks * steps)},
              {"p50_task_us", at(0.50)},
              {"p99_task_us", at(0.99)}};
  std::printf("%s\n", out.dump().c_str());
  (void)nucleus.shutdown();
  std::filesystem::remove_all(root);
  return 0;
}
