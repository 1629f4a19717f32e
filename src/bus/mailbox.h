// Mailbox: one per module, the module's actor queue.
//
// Deliveries queue here and one drain coroutine at a time runs their
// handlers, in order, on the bus's thread pool; a module's handlers never run
// concurrently, so module state needs no locks. The queue is bounded and its
// overflow policy is declared (manifest `mailbox.overflow`); every drop is
// counted and reported, never silent. Pausing (for hot reload) stops handler
// dispatch but keeps accepting deliveries, so nothing published during a
// swap is lost.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "lotus/event.h"
#include "lotus/task.h"

namespace lotus {

enum class OverflowPolicy { kWait, kDropOldest, kDropNewest };
std::string_view to_string(OverflowPolicy policy);
Result<OverflowPolicy> parse_overflow_policy(std::string_view text);

// What a mailbox carries: the event plus which of the owner's handlers
// (subscription slot) it is for. Slots let one module have several handlers.
// `on_done`, when set, hears how it ended: the handler's status, or an
// error when the delivery was dropped; durable (stream) deliveries use it to
// acknowledge only what a handler finished.
struct Delivery {
  EventPtr event;
  uint32_t slot = 0;
  std::function<void(const Status&)> on_done = nullptr;
};

struct MailboxStats {
  uint64_t enqueued = 0;
  uint64_t handled = 0;
  uint64_t failed = 0;          // handler threw or returned an error
  uint64_t dropped_oldest = 0;  // evicted to make room (drop_oldest)
  uint64_t dropped_newest = 0;  // refused because full (drop_newest, or wait timed out)
  uint64_t waited = 0;          // publishes that had to wait for room
  uint64_t over_capacity = 0;   // self-publishes admitted past capacity to avoid deadlock
  size_t depth = 0;
  size_t capacity = 0;
};

class Mailbox : public std::enable_shared_from_this<Mailbox> {
 public:
  // Runs one delivery; the returned Status says whether the handler succeeded.
  using Dispatch = std::function<Task<Status>(const Delivery&)>;
  // Told about each delivery that was dropped rather than handled.
  using DropObserver = std::function<void(const Delivery&, std::string_view why)>;

  struct Options {
    std::string owner;
    size_t capacity = 1024;
    OverflowPolicy overflow = OverflowPolicy::kWait;
    std::chrono::milliseconds wait_timeout{5000};
    size_t batch = 256;  // deliveries per turn on a pool thread before yielding
  };

  Mailbox(Options options, boost::asio::any_io_executor executor);
  ~Mailbox();

  void set_dispatch(Dispatch dispatch);
  void set_drop_observer(DropObserver observer);

  // Queues a delivery. Returns false when it was refused (counted, observed).
  bool push(Delivery delivery);

  // Stops dispatching; completes once no handler is running. Deliveries keep
  // queueing while paused.
  Task<void> pause();
  void resume();
  // Closes intake (further pushes are refused and counted) and completes once
  // the queue is empty or `deadline` passes; returns how many were left.
  Task<size_t> drain_and_close(std::chrono::steady_clock::time_point deadline);

  MailboxStats stats() const;
  const std::string& owner() const { return options_.owner; }
  size_t depth() const;

 private:
  void schedule_locked();
  static void start_drain(std::shared_ptr<Mailbox> self);
  static detail::DetachedCoroutine drain(std::shared_ptr<Mailbox> self);
  void notify_idle_locked();

  const Options options_;
  boost::asio::any_io_executor executor_;
  Dispatch dispatch_;
  DropObserver drop_observer_;

  mutable std::mutex mutex_;
  std::condition_variable not_full_;
  std::deque<Delivery> queue_;
  bool running_ = false;  // a drain coroutine exists
  // The thread that deferred the drain to run after its own handler, until
  // the drain starts (see continuation.h).
  std::thread::id drain_deferred_by_;
  bool paused_ = false;
  bool closed_ = false;
  std::vector<std::function<void(bool)>> idle_waiters_;

  std::atomic<uint64_t> enqueued_{0};
  std::atomic<uint64_t> handled_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<uint64_t> dropped_oldest_{0};
  std::atomic<uint64_t> dropped_newest_{0};
  std::atomic<uint64_t> waited_{0};
  std::atomic<uint64_t> over_capacity_{0};
};

}  // namespace lotus
