#include "core/periodic_timer.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/thread_pool.hpp>

namespace lotus {
namespace {

using namespace std::chrono_literals;

TEST(PeriodicTimerTest, TicksUntilStoppedAndNeverAfter) {
  boost::asio::thread_pool pool(2);
  std::atomic<int> ticks{0};
  auto timer = PeriodicTimer::start(pool.get_executor(), 5ms, [&] { ++ticks; });
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (ticks < 5 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  ASSERT_GE(ticks.load(), 5);
  timer->stop();
  int at_stop = ticks.load();
  std::this_thread::sleep_for(50ms);
  EXPECT_LE(ticks.load(), at_stop + 1) << "at most a tick already running may finish";
  pool.join();
}

TEST(PeriodicTimerTest, StopFromManyThreadsWhileTickingIsSafe) {
  boost::asio::thread_pool pool(2);
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> ticks{0};
    auto timer = PeriodicTimer::start(pool.get_executor(), 1ms, [&] { ++ticks; });
    std::this_thread::sleep_for(2ms);
    std::thread a([&] { timer->stop(); });
    std::thread b([&] { timer->stop(); });
    a.join();
    b.join();
  }
  pool.join();
}

}  // namespace
}  // namespace lotus
