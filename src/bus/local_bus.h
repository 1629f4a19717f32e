// LocalBus: the embedded, in-process bus.
//
// Publishing validates the event, finds subscribers through a TopicTrie
// (cost follows channel depth), applies each subscription's filter and
// hands a shared, immutable copy of the event to each mailbox. Handlers run
// on the bus's WorkerThreads. Request/reply uses one reply channel per bus and
// the pending-request table every bus shares (bus/pending_requests.h).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "bus/bus.h"
#include "bus/pending_requests.h"
#include "bus/topic_trie.h"
#include "bus/worker_threads.h"

namespace lotus {

class LocalBus final : public Bus {
 public:
  // threads: 0 = one per hardware thread; idle_spin: how long a thread that
  // ran out of work looks for more before it sleeps (bus/worker_threads.h).
  explicit LocalBus(size_t threads = 0, std::chrono::microseconds idle_spin = kDefaultIdleSpin);
  ~LocalBus() override;

  Result<size_t> publish(Event event) override;
  Result<SubscriptionId> subscribe(std::string_view pattern, SubscriptionFilter filter,
                                   Subscriber subscriber) override;
  bool unsubscribe(SubscriptionId id) override;
  Task<Result<EventPtr>> request(Event event, std::chrono::milliseconds timeout) override;
  Result<size_t> reply(const Event& request, std::string source, Json reply_data) override;
  bool has_audience(std::string_view channel) const override;
  BusStats stats() const override;
  boost::asio::any_io_executor executor() override { return pool_.get_executor(); }

  void stop() override;

 private:
  struct Route {
    SubscriptionFilter filter;
    Subscriber subscriber;
  };
  Result<size_t> route(EventPtr event);
  void on_reply(const EventPtr& event);

  WorkerThreads pool_;
  mutable std::shared_mutex routes_mutex_;
  TopicTrie<std::shared_ptr<const Route>> routes_;  // its handles are our SubscriptionIds

  std::string reply_channel_;
  SubscriptionId reply_subscription_ = 0;
  PendingRequests pending_{pool_.get_executor()};

  BusCounters counters_;
};

}  // namespace lotus
