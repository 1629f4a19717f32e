// await_task: awaits a LOTUS Task<T> from an Asio coroutine.
//
// The HTTP server runs on Asio's awaitables; the nucleus, the bus and the
// tool broker speak lotus::Task. The task runs detached and, wherever it
// finishes, the Asio coroutine resumes on its own executor. A cancelled
// coroutine resumes at once (with operation_aborted) and leaves the task to
// finish on its own.
#pragma once

#include <exception>
#include <memory>
#include <optional>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

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
    // Completed once: by the task, or by a cancellation (the HTTP server's
    // stop), whichever comes first; the other finds it done. Both complete
    // on the handler's executor, the only place the slot is touched.
    struct Waiter {
      explicit Waiter(Handler h) : handler(std::move(h)) {}
      Handler handler;
      boost::asio::cancellation_slot slot;
      bool done = false;
      void complete(std::exception_ptr error) {
        if (done) return;
        done = true;
        if (slot.is_connected()) slot.clear();
        std::move(handler)(error);
      }
    };
    auto waiter = std::make_shared<Waiter>(std::move(handler));
    auto executor = boost::asio::get_associated_executor(waiter->handler);
    waiter->slot = boost::asio::get_associated_cancellation_slot(waiter->handler);
    if (waiter->slot.is_connected()) {
      waiter->slot.assign([waiter, executor](boost::asio::cancellation_type) {
        boost::asio::post(executor, [waiter] {
          waiter->complete(std::make_exception_ptr(boost::system::system_error(
              boost::asio::error::operation_aborted, "the request was cancelled")));
        });
      });
    }
    start_detached(std::move(runner), [waiter, executor](std::exception_ptr error) {
      boost::asio::post(executor, [waiter, error] { waiter->complete(error); });
    });
  };
  co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                       void(std::exception_ptr)>(std::move(initiate),
                                                                 boost::asio::use_awaitable);
  co_return std::move(**out);
}

}  // namespace lotus::api
