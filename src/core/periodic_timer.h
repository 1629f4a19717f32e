// PeriodicTimer: calls a function at a fixed rate on an executor until
// stopped. Asio timers are not safe to touch from two threads at once, and
// a tick re-arms on a pool thread while stop() may come from any other, so
// every timer operation here happens under one mutex.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace lotus {

class PeriodicTimer : public std::enable_shared_from_this<PeriodicTimer> {
 public:
  // First tick one interval from now. `tick` runs on the executor; a tick
  // that overruns delays the next one rather than piling up.
  static std::shared_ptr<PeriodicTimer> start(boost::asio::any_io_executor executor,
                                              std::chrono::milliseconds interval,
                                              std::function<void()> tick);
  PeriodicTimer(boost::asio::any_io_executor executor, std::chrono::milliseconds interval,
                std::function<void()> tick);

  // No tick starts after stop() returns (one already running may finish).
  void stop();

 private:
  void arm_locked();

  std::mutex mutex_;
  boost::asio::steady_timer timer_;
  const std::chrono::milliseconds interval_;
  const std::function<void()> tick_;
  std::chrono::steady_clock::time_point next_;
  bool stopped_ = false;
};

}  // namespace lotus
