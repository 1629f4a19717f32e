#include "bus/local_bus.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "lotus/strings.h"

namespace lotus {

LocalBus::LocalBus(size_t threads, std::chrono::microseconds idle_spin)
    : pool_(threads, idle_spin) {
  // One reply channel per bus instance; the random part keeps two buses (or,
  // later, two nodes) from reading each other's replies.
  reply_channel_ = cat("reply.", EventId::generate().to_string());
  Subscriber tap;
  tap.tap = [this](const EventPtr& event) { on_reply(event); };
  auto id = subscribe(reply_channel_, SubscriptionFilter(), std::move(tap));
  reply_subscription_ = id.ok() ? *id : 0;
}

LocalBus::~LocalBus() { stop(); }

void LocalBus::stop() {
  pending_.cancel_all(absl::CancelledError("the bus is shutting down"));
  pool_.join();
}

Result<size_t> LocalBus::publish(Event event) {
  if (event.id.is_nil()) event.id = EventId::generate();
  if (event.timestamp == 0.0) event.timestamp = now_seconds();
  if (Status s = validate_event(event); !s.ok()) return s;
  return route(std::make_shared<const Event>(std::move(event)));
}

Result<size_t> LocalBus::route(EventPtr event) {
  counters_.published.fetch_add(1, std::memory_order_relaxed);
  // Collected under the read lock, delivered after it: a waiting mailbox
  // must never hold up subscribe/unsubscribe.
  thread_local std::vector<std::shared_ptr<const Route>> matched;
  matched.clear();
  {
    std::shared_lock lock(routes_mutex_);
    routes_.match(event->channel,
                  [&](const std::shared_ptr<const Route>& route) { matched.push_back(route); });
  }
  if (matched.empty()) {
    counters_.unrouted.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  // A tap may publish again on this thread, so deliver from a local copy.
  std::vector<std::shared_ptr<const Route>> targets;
  targets.swap(matched);
  size_t delivered = 0;
  for (const auto& route : targets) {
    if (!route->filter.empty() && !route->filter.matches(event->data)) {
      counters_.filtered.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const Subscriber& sub = route->subscriber;
    if (sub.tap) {
      sub.tap(event);
      ++delivered;
    } else if (sub.mailbox->push(Delivery{event, sub.slot})) {
      ++delivered;
    } else {
      counters_.refused.fetch_add(1, std::memory_order_relaxed);
    }
  }
  targets.clear();
  if (matched.capacity() < targets.capacity()) matched.swap(targets);
  counters_.delivered.fetch_add(delivered, std::memory_order_relaxed);
  return delivered;
}

bool LocalBus::has_audience(std::string_view channel) const {
  bool found = false;
  std::shared_lock lock(routes_mutex_);
  routes_.match(channel, [&found](const std::shared_ptr<const Route>&) { found = true; });
  return found;
}

Result<SubscriptionId> LocalBus::subscribe(std::string_view pattern, SubscriptionFilter filter,
                                           Subscriber subscriber) {
  if (Status s = validate_pattern(pattern); !s.ok()) return s;
  if (!subscriber.tap && !subscriber.mailbox) {
    return absl::InvalidArgumentError(
        cat("subscription to \"", pattern, "\" has neither a mailbox nor a tap"));
  }
  auto route = std::make_shared<const Route>(Route{std::move(filter), std::move(subscriber)});
  std::unique_lock lock(routes_mutex_);
  return routes_.insert(pattern, std::move(route));
}

bool LocalBus::unsubscribe(SubscriptionId id) {
  std::unique_lock lock(routes_mutex_);
  return routes_.remove(id);
}

Task<Result<EventPtr>> LocalBus::request(Event event, std::chrono::milliseconds timeout) {
  PendingRequests::Request request =
      pending_.begin(event, reply_channel_, timeout, "no module handles");
  request.send = [this, event = std::move(event)]() mutable { return publish(std::move(event)); };
  auto waiting = pending_.wait(std::move(request));
  Result<EventPtr> result = co_await std::move(waiting);
  co_return result;
}

void LocalBus::on_reply(const EventPtr& event) {
  pending_.answer(event);  // false: a late reply after a timeout, nobody waits
}

Result<size_t> LocalBus::reply(const Event& request, std::string source, Json reply_data) {
  auto response = make_reply(request, std::move(source), std::move(reply_data));
  if (!response.ok()) return response.status();
  return publish(*std::move(response));
}

BusStats LocalBus::stats() const {
  BusStats s;
  counters_.copy_to(s);
  {
    std::shared_lock lock(routes_mutex_);
    s.subscriptions = routes_.size();
  }
  s.pending_requests = pending_.size();
  return s;
}

}  // namespace lotus
