// SignalWatcher: turns SIGINT/SIGTERM/SIGHUP into readable bytes on a pipe.
//
// Constructed before any other thread exists, it blocks those signals in
// every thread and receives them on its own thread with sigwait(), so no
// code runs in an async-signal context and the main loop can poll() the
// pipe beside its input.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

namespace lotus::cli {

class SignalWatcher {
 public:
  // `on_signal` runs on the watcher thread for each signal received.
  explicit SignalWatcher(std::function<void(int)> on_signal = {});
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  int fd() const { return pipe_[0]; }  // readable when a signal arrived
  int take();                          // the next signal number, or 0

 private:
  int pipe_[2] = {-1, -1};
  std::function<void(int)> on_signal_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace lotus::cli
