// PendingRequests: the request/reply bookkeeping every bus shares. Requests
// wait here by correlation id, each with its deadline, until their reply
// arrives, the deadline passes, the bus fails them (a node gone) or stops;
// the waiting coroutine always resumes on the bus's pool, never inside the
// stack of a publisher, a timer or the delivery thread. One timer serves
// every request, armed at the soonest deadline: a timer per request cost two
// reactor wake-ups per call (arm and cancel).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "lotus/event.h"
#include "lotus/status.h"
#include "lotus/task.h"

namespace lotus {

class PendingRequests {
 public:
  // `executor`: where waiting requests resume (the bus's pool).
  explicit PendingRequests(boost::asio::any_io_executor executor);
  PendingRequests(const PendingRequests&) = delete;
  PendingRequests& operator=(const PendingRequests&) = delete;

  // A correlation id no other request of this process uses.
  std::string next_correlation();

  struct Request {
    std::string correlation;
    std::string channel;
    std::chrono::milliseconds timeout{0};
    std::vector<std::string> nodes;  // other nodes it was routed to, if any
    // Publishes the request once it is waiting; returns how many receivers
    // it reached. 0 fails it with NotFound: `nobody` followed by the
    // channel in quotes ("no module handles \"tool.a.b\""), made only then.
    std::function<Result<size_t>()> send;
    std::string_view nobody = "nobody handles";  // text with static storage
  };
  // A request for `event` waiting `timeout` for its reply on `reply_to`: a
  // fresh correlation id, set on the event with reply_to. `nobody` (static
  // text) is what the NotFound says of the channel when the request reaches
  // no receiver. The caller sets `send`.
  Request begin(Event& event, const std::string& reply_to, std::chrono::milliseconds timeout,
                std::string_view nobody);
  // Registers `request`, sends it and waits for the outcome.
  Task<Result<EventPtr>> wait(Request request);

  // Resumes the request `reply` answers; false when none waits for it (a
  // late reply after a timeout).
  bool answer(const EventPtr& reply);
  // Fails the requests routed to `node` with what `why` says for each channel.
  void fail_routed_to(const std::string& node,
                      const std::function<Status(const std::string& channel)>& why);
  // Fails every waiting request (the bus is stopping).
  void cancel_all(const Status& why);
  size_t size() const;

 private:
  struct Entry;
  // Takes `entry` off the list and resumes it, unless it is done already.
  void complete(const std::shared_ptr<Entry>& entry, Result<EventPtr> outcome);
  // Resumes the request of `entry` (done, off the list) with `outcome`.
  void wake(const std::shared_ptr<Entry>& entry, Result<EventPtr> outcome);
  // Arms the timer for `deadline` if it is sooner than the one it waits
  // for; with mutex_ held.
  void arm_locked(std::chrono::steady_clock::time_point deadline);
  // Fails the requests whose deadline passed and waits for the next one.
  void on_deadline();

  boost::asio::any_io_executor executor_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> waiting_;
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point armed_for_ = std::chrono::steady_clock::time_point::max();
  std::atomic<uint64_t> next_{1};
  // Made once: with the counter, an id no other process's request has either.
  const std::string instance_;
};

// The reply to `request`: to its reply_to, with its correlation, trace and
// user ids; an error when the request asked for no reply.
Result<Event> make_reply(const Event& request, std::string source, Json data);

}  // namespace lotus
