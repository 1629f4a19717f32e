// sync_wait(): runs a Task to completion from a plain thread (tests, tools).
// Must not be called from a thread of the pool the task needs.
#pragma once

#include <future>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include "lotus/task.h"

namespace lotus::testing {

template <typename T>
T sync_wait(boost::asio::any_io_executor executor, Task<T> task) {
  std::promise<T> done;
  auto future = done.get_future();
  Task<void> outer = [](Task<T> inner, std::promise<T>* result) -> Task<void> {
    result->set_value(co_await std::move(inner));
  }(std::move(task), &done);
  boost::asio::post(executor, [&outer, &done] {
    start_detached(std::move(outer), [&done](std::exception_ptr failure) {
      if (failure) done.set_exception(failure);
    });
  });
  return future.get();
}

inline void sync_wait(boost::asio::any_io_executor executor, Task<void> task) {
  std::promise<void> done;
  auto future = done.get_future();
  boost::asio::post(executor, [&task, &done] {
    start_detached(std::move(task), [&done](std::exception_ptr failure) {
      if (failure) {
        done.set_exception(failure);
      } else {
        done.set_value();
      }
    });
  });
  future.get();
}

}  // namespace lotus::testing
