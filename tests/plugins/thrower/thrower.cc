// A test module for supervision: its handler throws when asked to, and it
// runs one periodic job that always throws and one that ticks.
#include <stdexcept>

#include "lotus/module.h"

class Thrower : public lotus::Module {
 public:
  lotus::Task<void> initialize() override {
    on("maybe_throw", &Thrower::maybe_throw);
    every(std::chrono::milliseconds(20), "flaky", [this]() -> lotus::Task<void> {
      ++flaky_runs_;
      throw std::runtime_error("flaky job failed on purpose");
      co_return;
    });
    every(std::chrono::milliseconds(20), "tick", [this]() -> lotus::Task<void> {
      publish("test.tick", lotus::Json{{"flaky_runs", flaky_runs_}}).IgnoreError();
      co_return;
    });
    co_return;
  }

 private:
  lotus::Task<void> maybe_throw(const lotus::Event& event) {
    if (event.data.value("fail", false)) throw std::runtime_error("asked to fail");
    publish("test.ok", lotus::Json{{"n", event.data.value("n", -1)}}).IgnoreError();
    co_return;
  }

  int flaky_runs_ = 0;
};

LOTUS_MODULE(Thrower)
