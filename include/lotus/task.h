// Task<T>: the coroutine type of every LOTUS handler, tool and periodic job.
//
// Lazy (nothing runs until awaited or started), single-owner, and header-only
// with no static state, so a Task created inside a plugin's shared library can
// be driven by the nucleus. Completion uses symmetric transfer, so a chain of
// awaits that finishes synchronously never grows the stack.
#pragma once

#include <atomic>
#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace lotus {

template <typename T = void>
class Task;

namespace detail {

struct TaskPromiseBase {
  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <typename Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) noexcept {
      return self.promise().continuation;
    }
    void await_resume() const noexcept {}
  };

  std::suspend_always initial_suspend() const noexcept { return {}; }
  FinalAwaiter final_suspend() const noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
  void rethrow_if_failed() const {
    if (exception) std::rethrow_exception(exception);
  }

  std::coroutine_handle<> continuation = std::noop_coroutine();
  std::exception_ptr exception;
};

template <typename T>
struct TaskPromise : TaskPromiseBase {
  Task<T> get_return_object() noexcept;
  template <typename U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    rethrow_if_failed();
    return std::move(*value);
  }
  std::optional<T> value;
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() const noexcept {}
  void take() const { rethrow_if_failed(); }
};

}  // namespace detail

template <typename T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using Handle = std::coroutine_handle<promise_type>;

  Task() = default;
  explicit Task(Handle h) noexcept : handle_(h) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  bool valid() const noexcept { return static_cast<bool>(handle_); }

  // Awaiting a Task starts it and resumes the awaiter when it finishes.
  bool await_ready() const noexcept { return !handle_ || handle_.done(); }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
    handle_.promise().continuation = awaiter;
    return handle_;
  }
  T await_resume() { return handle_.promise().take(); }

 private:
  void reset() noexcept {
    if (handle_) handle_.destroy();
    handle_ = {};
  }
  Handle handle_;
};

namespace detail {

template <typename T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}

inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

// An eager coroutine that frees itself when it ends; the root of a task tree.
struct DetachedCoroutine {
  struct promise_type {
    DetachedCoroutine get_return_object() const noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
  };
};

}  // namespace detail

// Runs `task` now, on this thread, until its first real suspension; when it
// ends (here or later, on whichever thread resumed it) `done` receives the
// exception it ended with, or nullptr.
template <typename Done>
void start_detached(Task<void> task, Done done) {
  [](Task<void> t, Done d) -> detail::DetachedCoroutine {
    std::exception_ptr failure;
    try {
      co_await std::move(t);
    } catch (...) {
      failure = std::current_exception();
    }
    d(failure);
  }(std::move(task), std::move(done));
}

// Suspends the awaiting coroutine and hands its resume function to `start`,
// which may call it from any thread, exactly once, with the result. The bridge
// between callback-style I/O (timers, replies) and coroutines.
template <typename T, typename Start>
class CallbackAwaiter {
 public:
  explicit CallbackAwaiter(Start start) : start_(std::move(start)) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    // The resume function may run on another thread before `start` returns
    // and free this coroutine frame, so `start` runs from a stack copy.
    Start start = std::move(start_);
    start([this, h](T value) {
      result_.emplace(std::move(value));
      h.resume();
    });
  }
  T await_resume() { return std::move(*result_); }

 private:
  Start start_;
  std::optional<T> result_;
};

template <typename T, typename Start>
CallbackAwaiter<T, Start> resume_with(Start start) {
  return CallbackAwaiter<T, Start>(std::move(start));
}

namespace detail {

template <typename T>
struct WhenAllState {
  std::vector<std::optional<T>> results;
  std::exception_ptr failure;
  std::atomic<bool> failed{false};  // claims `failure` for the first thrower
  std::atomic<size_t> remaining{0};
  std::function<void(bool)> resume;

  void finish_one() {
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) resume(true);
  }
};

template <typename T>
Task<void> when_all_one(Task<T> task, std::shared_ptr<WhenAllState<T>> state, size_t index) {
  try {
    T value = co_await std::move(task);
    state->results[index].emplace(std::move(value));
  } catch (...) {
    if (!state->failed.exchange(true)) state->failure = std::current_exception();
  }
  state->finish_one();
}

}  // namespace detail

// Runs `tasks` concurrently (each proceeds as far as it can, then resumes on
// whichever thread completes what it waits for) and resumes the caller when
// all have finished, with their results in order. If any threw, the first
// exception is rethrown after all have finished.
template <typename T>
Task<std::vector<T>> when_all(std::vector<Task<T>> tasks) {
  auto state = std::make_shared<detail::WhenAllState<T>>();
  state->results.resize(tasks.size());
  // One extra count for the starter, so no task can finish the whole set
  // before every task has been started.
  state->remaining.store(tasks.size() + 1);
  auto all_done = resume_with<bool>([state, &tasks](std::function<void(bool)> resume) {
    state->resume = std::move(resume);
    for (size_t i = 0; i < tasks.size(); ++i) {
      start_detached(detail::when_all_one(std::move(tasks[i]), state, i),
                     [](std::exception_ptr) {});
    }
    state->finish_one();
  });
  co_await all_done;
  if (state->failure) std::rethrow_exception(state->failure);
  std::vector<T> results;
  results.reserve(state->results.size());
  for (auto& r : state->results) results.push_back(std::move(*r));
  co_return results;
}

}  // namespace lotus
