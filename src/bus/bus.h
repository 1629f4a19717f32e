// Bus: the one interface between modules. The in-process LocalBus is the
// embedded default; a Redis-backed bus implements the same contract.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "bus/mailbox.h"
#include "lotus/channel.h"
#include "lotus/event.h"
#include "lotus/status.h"
#include "lotus/task.h"

namespace lotus {

using SubscriptionId = uint64_t;

// Where matching events go: a module's mailbox (with the handler slot), or a
// tap called inline on the publishing thread (must be quick and must not block;
// used for request/reply routing and live event tails).
struct Subscriber {
  std::shared_ptr<Mailbox> mailbox;
  uint32_t slot = 0;
  std::function<void(const EventPtr&)> tap;
};

struct BusStats {
  uint64_t published = 0;
  uint64_t delivered = 0;
  uint64_t unrouted = 0;  // published with no matching subscriber
  uint64_t filtered = 0;  // matched a pattern but not its filter
  uint64_t refused = 0;   // a mailbox refused the delivery (see its counters)
  uint64_t subscriptions = 0;
  uint64_t pending_requests = 0;
};

// The routing counters of BusStats, as a bus keeps them while it routes
// (from any thread: relaxed, each a count of its own).
struct BusCounters {
  std::atomic<uint64_t> published{0};
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> unrouted{0};
  std::atomic<uint64_t> filtered{0};
  std::atomic<uint64_t> refused{0};

  // The counts now, in `stats`; the bus fills in the rest.
  void copy_to(BusStats& stats) const {
    stats.published = published.load(std::memory_order_relaxed);
    stats.delivered = delivered.load(std::memory_order_relaxed);
    stats.unrouted = unrouted.load(std::memory_order_relaxed);
    stats.filtered = filtered.load(std::memory_order_relaxed);
    stats.refused = refused.load(std::memory_order_relaxed);
  }
};

class Bus {
 public:
  virtual ~Bus() = default;

  // Validates and routes `event`; returns how many subscribers received it.
  virtual Result<size_t> publish(Event event) = 0;
  virtual Result<SubscriptionId> subscribe(std::string_view pattern, SubscriptionFilter filter,
                                           Subscriber subscriber) = 0;
  virtual bool unsubscribe(SubscriptionId id) = 0;

  // Publishes `event` with reply_to/correlation_id set and waits for the
  // reply. Errors: NotFound when nobody subscribes to the channel,
  // DeadlineExceeded when no reply came within `timeout`.
  virtual Task<Result<EventPtr>> request(Event event, std::chrono::milliseconds timeout) = 0;

  // Publishes `reply_data` as the reply to `request` (to its reply_to, same
  // correlation_id). A request without reply_to is an error.
  virtual Result<size_t> reply(const Event& request, std::string source, Json reply_data) = 0;

  // Whether an event on `channel` would reach anyone now. False only when
  // the bus is this process's alone and nothing subscribes to the channel:
  // a service may then skip making a record nobody would read (the tool
  // broker's audit events). A shared bus always says true, since other
  // processes, and its streams, may want it.
  virtual bool has_audience(std::string_view channel) const {
    (void)channel;
    return true;
  }

  virtual BusStats stats() const = 0;
  // Backend-specific figures for health (connection state, buffers, peers).
  virtual Json backend_health() const { return Json::object(); }
  virtual boost::asio::any_io_executor executor() = 0;
  // This process's name among the nodes sharing the bus; empty when the bus
  // is this process's alone.
  virtual const std::string& node_id() const {
    static const std::string kNone;
    return kNone;
  }
  // Whether a request's reply_to leads back to this process: on a shared bus
  // every node sees a request, and services that answer for their own node
  // (the tool broker) answer only these.
  virtual bool replies_here(std::string_view reply_to) const {
    (void)reply_to;
    return true;
  }
  // Stops the handler threads after running what is queued; called at shutdown.
  virtual void stop() = 0;
};

}  // namespace lotus
