// A test module whose initialize always fails: a crash loop.
#include <stdexcept>

#include "lotus/module.h"

class CrashLoop : public lotus::Module {
 public:
  lotus::Task<void> initialize() override {
    throw std::runtime_error("cannot start: this module always crashes");
    co_return;
  }
};

LOTUS_MODULE(CrashLoop)
