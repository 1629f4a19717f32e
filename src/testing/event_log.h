// EventLog: records what crosses the bus, for tests to wait on and inspect.
//
// Subscribes a tap to `pattern` (every event by default) for its lifetime;
// wait_for() blocks until an event satisfying a predicate has arrived.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "bus/bus.h"

namespace lotus::testing {

class EventLog {
 public:
  using Predicate = std::function<bool(const Event&)>;

  explicit EventLog(Bus& bus, std::string_view pattern = "**") : bus_(bus) {
    Subscriber tap;
    tap.tap = [this](const EventPtr& event) {
      std::lock_guard lock(mutex_);
      events_.push_back(event);
      changed_.notify_all();
    };
    id_ = *bus.subscribe(pattern, SubscriptionFilter(), std::move(tap));
  }
  ~EventLog() { bus_.unsubscribe(id_); }
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // The first matching event, waiting up to `timeout` for it; null if none came.
  EventPtr wait_for(const Predicate& matches,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    EventPtr found;
    changed_.wait_for(lock, timeout, [&] {
      for (const EventPtr& e : events_) {
        if (matches(*e)) {
          found = e;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  EventPtr wait_for(std::string_view channel,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return wait_for([channel](const Event& e) { return e.channel == channel; }, timeout);
  }

  std::vector<EventPtr> all(const Predicate& matches = {}) const {
    std::lock_guard lock(mutex_);
    std::vector<EventPtr> out;
    for (const EventPtr& e : events_) {
      if (!matches || matches(*e)) out.push_back(e);
    }
    return out;
  }
  std::vector<EventPtr> on(std::string_view channel) const {
    return all([channel](const Event& e) { return e.channel == channel; });
  }

 private:
  Bus& bus_;
  SubscriptionId id_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<EventPtr> events_;
};

}  // namespace lotus::testing
