// The bus's worker threads: they run what is posted and what I/O and timers
// complete, finish what is queued before join() returns, and - the point of
// them - stay awake for their idle window instead of sleeping between
// handlers.
#include "bus/worker_threads.h"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <future>
#include <mutex>
#include <set>

namespace lotus {
namespace {

using namespace std::chrono_literals;

// Posts `work` and waits for it to have run.
template <typename Work>
void run_on(WorkerThreads& threads, Work work) {
  std::promise<void> done;
  boost::asio::post(threads.get_executor(), [&] {
    work();
    done.set_value();
  });
  ASSERT_EQ(done.get_future().wait_for(10s), std::future_status::ready);
}

// Runs 20 handlers one after another with 5 ms pauses between them: far
// longer than a short idle window.
void run_with_pauses(WorkerThreads& threads) {
  for (int i = 0; i < 20; ++i) {
    run_on(threads, [] {});
    std::this_thread::sleep_for(5ms);
  }
}

// Starts a timer of `delay` and joins at once: whether join() waited for it.
bool join_waits_for_a_timer(WorkerThreads& threads, std::chrono::milliseconds delay) {
  boost::asio::steady_timer timer(threads.get_executor(), delay);
  std::atomic<bool> fired{false};
  timer.async_wait([&](boost::system::error_code ec) { fired = !ec; });
  threads.join();
  return fired.load();
}

TEST(WorkerThreadsTest, RunsPostedWorkOnItsThreadsAndFinishesTheQueueOnJoin) {
  WorkerThreads threads(3, kDefaultIdleSpin);
  EXPECT_EQ(threads.size(), 3u);
  std::mutex mutex;
  std::set<std::thread::id> seen;
  std::atomic<int> ran{0};
  for (int i = 0; i < 200; ++i) {
    boost::asio::post(threads.get_executor(), [&] {
      {
        std::lock_guard lock(mutex);
        seen.insert(std::this_thread::get_id());
      }
      ran.fetch_add(1);
    });
  }
  threads.join();
  EXPECT_EQ(ran.load(), 200);
  EXPECT_FALSE(seen.contains(std::this_thread::get_id()));
  EXPECT_LE(seen.size(), 3u);
  threads.join();  // twice is harmless
}

TEST(WorkerThreadsTest, ZeroThreadsMeansOnePerHardwareThreadAndAtLeastTwo) {
  WorkerThreads threads(0, 0us);
  EXPECT_GE(threads.size(), 2u);
  EXPECT_GE(threads.size(), static_cast<size_t>(std::thread::hardware_concurrency()));
}

TEST(WorkerThreadsTest, JoinWaitsForPendingTimers) {
  WorkerThreads threads(2, kDefaultIdleSpin);
  EXPECT_TRUE(join_waits_for_a_timer(threads, 20ms));
}

TEST(WorkerThreadsTest, PastItsIdleWindowAThreadSleeps) {
  WorkerThreads threads(2, 100us);  // shorter than the pauses between handlers
  run_with_pauses(threads);
  // Each handler's thread went back to sleep after it (on a loaded machine a
  // thread may not get the CPU back within a pause: most, not all).
  EXPECT_GE(threads.sleeps(), 10u);
}

TEST(WorkerThreadsTest, WithoutAnIdleWindowTheThreadsRunAsiosOwnLoop) {
  WorkerThreads threads(2, 0us);
  run_with_pauses(threads);
  EXPECT_EQ(threads.sleeps(), 0u);  // asio's loop: its sleeps are not counted
  EXPECT_TRUE(join_waits_for_a_timer(threads, 5ms));
}

TEST(WorkerThreadsTest, WithinTheIdleWindowThreadsStayAwakeForTheNextHandler) {
  // A window far longer than the test: no thread ever sleeps, and work posted
  // with gaps between is still picked up (the threads poll for it).
  WorkerThreads threads(2, std::chrono::microseconds(std::chrono::minutes(10)));
  run_with_pauses(threads);
  EXPECT_EQ(threads.sleeps(), 0u);
}

TEST(WorkerThreadsTest, SpinningThreadsStillRunTimersAndJoinPromptly) {
  // Awake threads poll the reactor too, so a timer fires while nobody sleeps.
  WorkerThreads threads(2, std::chrono::microseconds(std::chrono::minutes(10)));
  boost::asio::steady_timer timer(threads.get_executor(), 5ms);
  std::promise<void> fired;
  timer.async_wait([&](boost::system::error_code) { fired.set_value(); });
  ASSERT_EQ(fired.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(threads.sleeps(), 0u);
  const auto before = std::chrono::steady_clock::now();
  threads.join();  // the window does not hold up the end
  EXPECT_LT(std::chrono::steady_clock::now() - before, 5s);
}

}  // namespace
}  // namespace lotus
