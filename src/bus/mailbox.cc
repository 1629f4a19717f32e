#include "bus/mailbox.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bus/continuation.h"

#include "lotus/strings.h"

namespace lotus {
namespace {

// The mailbox whose drain coroutine is running on this thread, so a handler
// that publishes into its own full mailbox is not made to wait for itself.
thread_local const Mailbox* current_mailbox = nullptr;

struct CurrentMailboxScope {
  explicit CurrentMailboxScope(const Mailbox* m) : previous(current_mailbox) {
    current_mailbox = m;
  }
  ~CurrentMailboxScope() { current_mailbox = previous; }
  CurrentMailboxScope(const CurrentMailboxScope&) = delete;
  CurrentMailboxScope& operator=(const CurrentMailboxScope&) = delete;
  const Mailbox* previous;
};

}  // namespace

std::string_view to_string(OverflowPolicy policy) {
  switch (policy) {
    case OverflowPolicy::kWait:
      return "wait";
    case OverflowPolicy::kDropOldest:
      return "drop_oldest";
    case OverflowPolicy::kDropNewest:
      return "drop_newest";
  }
  return "wait";
}

Result<OverflowPolicy> parse_overflow_policy(std::string_view text) {
  if (text == "wait") return OverflowPolicy::kWait;
  if (text == "drop_oldest") return OverflowPolicy::kDropOldest;
  if (text == "drop_newest") return OverflowPolicy::kDropNewest;
  return absl::InvalidArgumentError(
      cat("overflow policy \"", text, "\" is unknown (expected wait, drop_oldest or drop_newest)"));
}

Mailbox::Mailbox(Options options, boost::asio::any_io_executor executor)
    : options_(std::move(options)), executor_(std::move(executor)) {}

Mailbox::~Mailbox() = default;

void Mailbox::set_dispatch(Dispatch dispatch) {
  std::lock_guard lock(mutex_);
  dispatch_ = std::move(dispatch);
}

void Mailbox::set_drop_observer(DropObserver observer) {
  std::lock_guard lock(mutex_);
  drop_observer_ = std::move(observer);
}

bool Mailbox::push(Delivery delivery) {
  std::unique_lock lock(mutex_);
  auto refuse = [&](std::atomic<uint64_t>& counter, std::string_view why) {
    counter.fetch_add(1, std::memory_order_relaxed);
    DropObserver observer = drop_observer_;
    lock.unlock();
    if (observer) observer(delivery, why);
    if (delivery.on_done) delivery.on_done(absl::ResourceExhaustedError(std::string(why)));
    return false;
  };
  if (closed_) return refuse(dropped_newest_, "mailbox closed (module shutting down)");
  if (queue_.size() >= options_.capacity) {
    switch (options_.overflow) {
      case OverflowPolicy::kDropNewest:
        return refuse(dropped_newest_, "mailbox full (policy drop_newest)");
      case OverflowPolicy::kDropOldest: {
        Delivery evicted = std::move(queue_.front());
        queue_.pop_front();
        dropped_oldest_.fetch_add(1, std::memory_order_relaxed);
        if (drop_observer_) {
          DropObserver observer = drop_observer_;
          queue_.push_back(std::move(delivery));
          enqueued_.fetch_add(1, std::memory_order_relaxed);
          schedule_locked();
          lock.unlock();
          observer(evicted, "mailbox full (policy drop_oldest): evicted");
          if (evicted.on_done) {
            evicted.on_done(absl::ResourceExhaustedError("mailbox full (policy drop_oldest)"));
          }
          return true;
        }
        if (evicted.on_done) {
          queue_.push_back(std::move(delivery));
          enqueued_.fetch_add(1, std::memory_order_relaxed);
          schedule_locked();
          lock.unlock();
          evicted.on_done(absl::ResourceExhaustedError("mailbox full (policy drop_oldest)"));
          return true;
        }
        break;
      }
      case OverflowPolicy::kWait:
        // A handler publishing into its own mailbox, or a thread whose
        // continuation is this mailbox's drain (it cannot start before the
        // thread returns): waiting would only wait for itself.
        if (current_mailbox == this || drain_deferred_by_ == std::this_thread::get_id()) {
          over_capacity_.fetch_add(1, std::memory_order_relaxed);
          break;
        }
        waited_.fetch_add(1, std::memory_order_relaxed);
        if (!not_full_.wait_for(lock, options_.wait_timeout,
                                [&] { return closed_ || queue_.size() < options_.capacity; })) {
          return refuse(dropped_newest_, "mailbox full: publisher waited past wait_timeout");
        }
        if (closed_) return refuse(dropped_newest_, "mailbox closed (module shutting down)");
        break;
    }
  }
  queue_.push_back(std::move(delivery));
  enqueued_.fetch_add(1, std::memory_order_relaxed);
  schedule_locked();
  return true;
}

void Mailbox::schedule_locked() {
  if (running_ || paused_ || queue_.empty()) return;
  running_ = true;
  const bool deferred = in_continuation_scope();
  if (deferred) drain_deferred_by_ = std::this_thread::get_id();
  post_or_continue(executor_, [self = shared_from_this(), deferred] {
    if (deferred) {
      std::lock_guard lock(self->mutex_);
      self->drain_deferred_by_ = std::thread::id();
    }
    start_drain(self);
  });
}

void Mailbox::start_drain(std::shared_ptr<Mailbox> self) {
  drain(std::move(self));
  // Returns when the drain ends or a handler suspends: either way this
  // thread goes on to other work.
  allow_continuations_in_handler(false);
}

detail::DetachedCoroutine Mailbox::drain(std::shared_ptr<Mailbox> self) {
  size_t turn = 0;
  bool last = false;  // the delivery being handled left the queue empty
  Dispatch dispatch;  // copied once per turn, not per delivery
  for (;;) {
    Delivery delivery;
    {
      std::lock_guard lock(self->mutex_);
      if (self->queue_.empty() || self->paused_ || !self->dispatch_) {
        self->running_ = false;
        self->notify_idle_locked();
        co_return;
      }
      if (turn == self->options_.batch) {
        // Yield the pool thread so other mailboxes get their turn.
        boost::asio::post(self->executor_, [self] { start_drain(self); });
        co_return;
      }
      if (turn > 0 && continuations_waiting()) {
        // The last handler started work this thread is to run next (a
        // reply's continuation): let it, and go on after it.
        boost::asio::post(self->executor_, [self] { start_drain(self); });
        co_return;
      }
      delivery = std::move(self->queue_.front());
      self->queue_.pop_front();
      last = self->queue_.empty();
      if (!dispatch) dispatch = self->dispatch_;
      if (self->options_.overflow == OverflowPolicy::kWait) self->not_full_.notify_one();
    }
    ++turn;
    Status status;
    {
      CurrentMailboxScope scope(self.get());
      // With nothing else queued this thread is free once the handler
      // returns, so what the handler starts (the continuation of the
      // request it answers) may run here next. Cleared after the co_await
      // and, should the handler suspend, by start_drain.
      allow_continuations_in_handler(last);
      try {
        status = co_await dispatch(delivery);
      } catch (const std::exception& e) {
        status = absl::InternalError(cat("handler threw: ", e.what()));
      } catch (...) {
        status = absl::InternalError("handler threw a non-standard exception");
      }
      allow_continuations_in_handler(false);
    }
    self->handled_.fetch_add(1, std::memory_order_relaxed);
    // A failed handler is counted here; its owner reports the failure
    // itself (the drop observer is for deliveries never handed over).
    if (!status.ok()) self->failed_.fetch_add(1, std::memory_order_relaxed);
    if (delivery.on_done) delivery.on_done(status);
  }
}

void Mailbox::notify_idle_locked() {
  auto waiters = std::move(idle_waiters_);
  idle_waiters_.clear();
  for (auto& waiter : waiters) {
    boost::asio::post(executor_, [w = std::move(waiter)] { w(true); });
  }
}

Task<void> Mailbox::pause() {
  auto awaiter = resume_with<bool>([this](auto resume) {
    std::lock_guard lock(mutex_);
    paused_ = true;
    if (!running_) {
      boost::asio::post(executor_, [resume] { resume(true); });
    } else {
      idle_waiters_.push_back(resume);
    }
  });
  co_await awaiter;
}

void Mailbox::resume() {
  std::lock_guard lock(mutex_);
  paused_ = false;
  schedule_locked();
}

Task<size_t> Mailbox::drain_and_close(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    paused_ = false;
    schedule_locked();
  }
  not_full_.notify_all();
  // Either the drain coroutine goes idle with an empty queue, or the deadline
  // passes first; whichever fires first resumes us, the other is ignored.
  struct Race {
    std::atomic<bool> fired{false};
    std::function<void(bool)> resume;
    boost::asio::steady_timer timer;
    explicit Race(boost::asio::any_io_executor ex) : timer(ex) {}
  };
  auto race = std::make_shared<Race>(executor_);
  auto awaiter = resume_with<bool>([this, race, deadline](auto resume) {
    race->resume = resume;
    auto fire = [race](bool drained) {
      if (!race->fired.exchange(true)) {
        race->timer.cancel();
        race->resume(drained);
      }
    };
    std::lock_guard lock(mutex_);
    if (!running_ && queue_.empty()) {
      boost::asio::post(executor_, [fire] { fire(true); });
      return;
    }
    idle_waiters_.push_back(fire);
    race->timer.expires_at(deadline);
    race->timer.async_wait([fire](boost::system::error_code ec) {
      if (!ec) fire(false);
    });
  });
  co_await awaiter;
  std::lock_guard lock(mutex_);
  size_t left = queue_.size();
  if (left > 0) {
    dropped_newest_.fetch_add(left, std::memory_order_relaxed);
    if (drop_observer_) {
      for (const auto& delivery : queue_) {
        drop_observer_(delivery, "shutdown deadline passed before the mailbox drained");
      }
    }
    for (const auto& delivery : queue_) {
      if (delivery.on_done)
        delivery.on_done(absl::CancelledError("mailbox closed before handling"));
    }
    queue_.clear();
  }
  co_return left;
}

MailboxStats Mailbox::stats() const {
  MailboxStats s;
  s.enqueued = enqueued_.load(std::memory_order_relaxed);
  s.handled = handled_.load(std::memory_order_relaxed);
  s.failed = failed_.load(std::memory_order_relaxed);
  s.dropped_oldest = dropped_oldest_.load(std::memory_order_relaxed);
  s.dropped_newest = dropped_newest_.load(std::memory_order_relaxed);
  s.waited = waited_.load(std::memory_order_relaxed);
  s.over_capacity = over_capacity_.load(std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  s.depth = queue_.size();
  s.capacity = options_.capacity;
  return s;
}

size_t Mailbox::depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace lotus
