#include "bus/worker_threads.h"

#include <sched.h>

#include <algorithm>

namespace lotus {
namespace {

size_t thread_count(size_t requested) {
  return requested > 0 ? requested : std::max(2u, std::thread::hardware_concurrency());
}

// One thread: asio's single-threaded mode keeps work a handler starts on its
// own thread instead of waking (nonexistent) others, as asio::thread_pool
// does for a pool of one.
int concurrency_hint(size_t threads) {
  return threads == 1 ? 1 : BOOST_ASIO_CONCURRENCY_HINT_DEFAULT;
}

}  // namespace

WorkerThreads::WorkerThreads(size_t threads, std::chrono::microseconds idle_spin)
    : io_(concurrency_hint(thread_count(threads))),
      work_(io_.get_executor()),
      idle_spin_(std::max(idle_spin, std::chrono::microseconds::zero())) {
  const size_t count = thread_count(threads);
  threads_.reserve(count);
  for (size_t i = 0; i < count; ++i) threads_.emplace_back([this] { run(); });
}

WorkerThreads::~WorkerThreads() { join(); }

void WorkerThreads::join() {
  work_.reset();
  for (auto& thread : threads_) {
    if (!thread.joinable()) continue;
    // A handler that stops the bus runs on one of these threads: it cannot
    // wait for itself, and it finishes on its own.
    if (thread.get_id() == std::this_thread::get_id()) {
      thread.detach();
    } else {
      thread.join();
    }
  }
}

void WorkerThreads::run() {
  if (idle_spin_.count() == 0) {
    // asio's own loop. It also runs a handler's continuations (deferred
    // work) right after it, under the lock that queued them, so no other
    // thread can take them in between.
    io_.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  auto last_work = Clock::now();
  for (;;) {
    // poll() runs what is ready (the reactor included, without blocking).
    if (io_.poll() > 0) {
      last_work = Clock::now();
      continue;
    }
    if (io_.stopped()) return;
    if (Clock::now() - last_work < idle_spin_) {
      // Whatever else wants this CPU - the client the last reply woke,
      // often - runs first.
      sched_yield();
      continue;
    }
    sleeps_.fetch_add(1, std::memory_order_relaxed);
    if (io_.run_one() == 0) return;  // stopped: nothing left to run
    last_work = Clock::now();
  }
}

}  // namespace lotus
