// IoThread: an io_context with its own thread, kept alive by a work guard
// until stop(). Redis connections run here, so their I/O never waits behind
// module handlers on the bus's pool (and never blocks it).
#pragma once

#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace lotus {

class IoThread {
 public:
  IoThread() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~IoThread() { stop(); }
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  boost::asio::io_context& context() { return io_; }
  // Stops the loop (handlers not yet run are abandoned) and joins. Safe to
  // call twice.
  void stop() {
    work_.reset();
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
      } else {
        io_.stop();
        thread_.join();
      }
    }
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

}  // namespace lotus
