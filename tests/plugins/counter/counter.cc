// A test module: counts `test.count` events and reports each one on
// `test.counted` with the build generation that handled it, so a hot-reload
// test can prove every event was handled exactly once, by one of the builds.
// Its `tick` tool reports each run on `test.ticked` with the process id, so
// a test with the module on several nodes can count where calls ran.
#include <unistd.h>

#include "lotus/module.h"

#ifndef COUNTER_GENERATION
#define COUNTER_GENERATION 1
#endif

class Counter : public lotus::Module {
 public:
  lotus::Task<void> initialize() override {
    auto stored = get_state("handled");
    handled_ = stored.ok() && stored->is_number_integer() ? stored->get<int64_t>() : 0;
    on("count", &Counter::count);
    tool("get_count", &Counter::get_count);
    tool("tick", &Counter::tick);
    co_return;
  }

  // State is saved on the way out, so a reload continues the count.
  lotus::Task<void> shutdown() override {
    set_state("handled", handled_).IgnoreError();
    co_return;
  }

 private:
  lotus::Task<void> count(const lotus::Event& event) {
    ++handled_;
    publish("test.counted", lotus::Json{{"n", event.data.value("n", -1)},
                                        {"generation", COUNTER_GENERATION},
                                        {"handled", handled_}})
        .IgnoreError();
    co_return;
  }

  lotus::Task<lotus::ToolResult> get_count(const lotus::Json&) {
    co_return lotus::Json{{"handled", handled_}, {"generation", COUNTER_GENERATION}};
  }

  lotus::Task<lotus::ToolResult> tick(const lotus::Json& args) {
    ++ticks_;
    publish("test.ticked", lotus::Json{{"pid", getpid()}, {"n", args.value("n", -1)}})
        .IgnoreError();
    co_return lotus::Json{{"pid", getpid()}, {"ticks", ticks_}};
  }

  int64_t handled_ = 0;
  int64_t ticks_ = 0;
};

LOTUS_MODULE(Counter)
