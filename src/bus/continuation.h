// Continuations on the bus's pool: work a thread starts for itself.
//
// A pool thread that is about to go idle - it read a message and will only
// wait for the reply, or a module's handler is finishing with nothing else
// queued - can run the work it starts right after the handler it is in,
// instead of waking another thread for it: one thread switch less at each
// hop of a request and its reply. `post_or_continue` does that (asio's
// defer: the work goes to this thread's own queue) while continuations are
// allowed on this thread, and posts as usual otherwise.
//
// Only the pool's own threads allow continuations (elsewhere defer would
// post anyway). The state is thread-local and read through functions defined
// out of line, so a coroutine that moves threads never reads a stale copy.
#pragma once

#include <atomic>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/post.hpp>

namespace lotus {

// Allows continuations on this thread while it lives; for plain functions
// (never across a co_await).
class ContinuationScope {
 public:
  ContinuationScope();
  ~ContinuationScope();
  ContinuationScope(const ContinuationScope&) = delete;
  ContinuationScope& operator=(const ContinuationScope&) = delete;
};

// Allows continuations while a mailbox's handler runs with nothing else
// queued; the mailbox sets and clears it around the handler's synchronous
// part.
void allow_continuations_in_handler(bool allowed);

bool in_continuation_scope();

// Whether work this thread deferred has not started yet: its handler should
// return soon rather than take on more.
bool continuations_waiting();

namespace detail {
// Counts a continuation deferred by this thread: the counter to decrement
// when it starts (on this thread, or another that took it over).
std::atomic<int>* count_continuation();
}  // namespace detail

// Runs `work` once the handler this thread is in returns (asio's defer: on
// this thread, unless an idle one takes it over), counted among this
// thread's waiting continuations.
template <typename Work>
void continue_after_handler(const boost::asio::any_io_executor& executor, Work&& work) {
  boost::asio::defer(executor, [waiting = detail::count_continuation(),
                                work = std::forward<Work>(work)]() mutable {
    waiting->fetch_sub(1, std::memory_order_relaxed);
    work();
  });
}

template <typename Work>
void post_or_continue(const boost::asio::any_io_executor& executor, Work&& work) {
  if (!in_continuation_scope()) {
    boost::asio::post(executor, std::forward<Work>(work));
    return;
  }
  continue_after_handler(executor, std::forward<Work>(work));
}

}  // namespace lotus
