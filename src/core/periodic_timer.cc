#include "core/periodic_timer.h"

namespace lotus {

std::shared_ptr<PeriodicTimer> PeriodicTimer::start(boost::asio::any_io_executor executor,
                                                    std::chrono::milliseconds interval,
                                                    std::function<void()> tick) {
  auto timer = std::make_shared<PeriodicTimer>(std::move(executor), interval, std::move(tick));
  std::lock_guard lock(timer->mutex_);
  timer->next_ = std::chrono::steady_clock::now() + interval;
  timer->arm_locked();
  return timer;
}

PeriodicTimer::PeriodicTimer(boost::asio::any_io_executor executor,
                             std::chrono::milliseconds interval, std::function<void()> tick)
    : timer_(std::move(executor)), interval_(interval), tick_(std::move(tick)) {}

void PeriodicTimer::arm_locked() {
  timer_.expires_at(next_);
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    {
      std::lock_guard lock(self->mutex_);
      if (self->stopped_) return;
    }
    self->tick_();
    std::lock_guard lock(self->mutex_);
    if (self->stopped_) return;
    self->next_ += self->interval_;
    // After a long stall, skip the missed ticks instead of firing them all.
    auto now = std::chrono::steady_clock::now();
    if (self->next_ < now) self->next_ = now + self->interval_;
    self->arm_locked();
  });
}

void PeriodicTimer::stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  timer_.cancel();
}

}  // namespace lotus
