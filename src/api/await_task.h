// await_task: awaits a LOTUS Task<T> from an Asio coroutine.
//
// The HTTP server runs on Asio's awaitables; the nucleus, the bus and the
// tool broker speak lotus::Task. The task runs detached and, wherever it
// finishes, the Asio coroutine resumes on its own executor.
#pragma once

#include <exception>
#include <memory>
#include <optional>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "lotus/task.h"

namespace lotus::api {

namespace detail {
template <typename T>
Task<void> store_result(Task<T> task, std::shared_ptr<std::optional<T>> out) {
  Task<T> owned = std::move(task);
  *out = co_await std::move(owned);
}
}  // namespace detail

template <typename T>
boost::asio::awaitable<T> await_task(Task<T> task) {
  auto out = std::make_shared<std::optional<T>>();
  Task<void> runner = detail::store_result(std::move(task), out);
  auto initiate = [runner = std::move(runner)](auto handler) mutable {
    using Handler = decltype(handler);
    auto shared = std::make_shared<Handler>(std::move(handler));
    start_detached(std::move(runner), [shared](std::exception_ptr error) {
      auto executor = boost::asio::get_associated_executor(*shared);
      boost::asio::post(executor, [shared, error]() mutable { std::move (*shared)(error); });
    });
  };
  co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                       void(std::exception_ptr)>(std::move(initiate),
                                                                 boost::asio::use_awaitable);
  co_return std::move(**out);
}

}  // namespace lotus::api
