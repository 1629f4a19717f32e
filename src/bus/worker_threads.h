// WorkerThreads: the bus's handler threads, which look for more work for a
// moment before they sleep.
//
// An io_context run by N threads. A thread that runs out of work keeps
// polling for more (I/O readiness, timers, posted handlers) for `idle_spin`,
// giving the CPU to anything else runnable between polls, and only then
// blocks. On a request/reply path - a client's call read, handed to a
// module, answered, the client's next call - the next message comes tens of
// microseconds after the last reply: a thread still awake picks it up, where
// a sleeping one first has to be woken, and waking a sleeping thread (on a
// virtual machine, an idle vCPU) costs more than the call's whole work.
// Measured with one MCP call at a time over stdio on two vCPUs: ~20k
// calls/s sleeping at once, ~60k with a 100 us window (bench/mcp_bench.sh).
//
// The price is CPU time while idle spells are shorter than the window: a
// thread that handles something every 50 us never sleeps. Idle longer than
// the window, the threads sleep as asio's would, and 0 turns spinning off.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace lotus {

inline constexpr std::chrono::microseconds kDefaultIdleSpin{100};

class WorkerThreads {
 public:
  using executor_type = boost::asio::io_context::executor_type;

  // threads: 0 = one per hardware thread, at least two.
  WorkerThreads(size_t threads, std::chrono::microseconds idle_spin);
  ~WorkerThreads();  // joins
  WorkerThreads(const WorkerThreads&) = delete;
  WorkerThreads& operator=(const WorkerThreads&) = delete;

  executor_type get_executor() { return io_.get_executor(); }
  size_t size() const { return threads_.size(); }

  // Lets the threads finish once nothing is left to run (queued handlers,
  // pending timers and I/O all count) and waits for them. Safe to call twice.
  void join();

  // How many times a thread's idle window ran out and it went to sleep
  // waiting for work (without a window, asio's loop sleeps uncounted).
  uint64_t sleeps() const { return sleeps_.load(std::memory_order_relaxed); }

 private:
  void run();

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<executor_type> work_;
  const std::chrono::microseconds idle_spin_;
  std::atomic<uint64_t> sleeps_{0};
  std::vector<std::thread> threads_;
};

}  // namespace lotus
