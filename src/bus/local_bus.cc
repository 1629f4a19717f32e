#include "bus/local_bus.h"

#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "lotus/strings.h"

namespace lotus {

struct LocalBus::Pending {
  explicit Pending(boost::asio::any_io_executor executor) : timer(std::move(executor)) {}
  std::atomic<bool> done{false};
  std::function<void(Result<EventPtr>)> resume;
  boost::asio::steady_timer timer;
};

LocalBus::LocalBus(size_t threads)
    : pool_(threads > 0 ? threads : std::max(2u, std::thread::hardware_concurrency())) {
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
  {
    std::lock_guard lock(pending_mutex_);
    for (auto& [id, pending] : pending_) {
      if (!pending->done.exchange(true)) {
        pending->timer.cancel();
        auto resume = std::move(pending->resume);
        boost::asio::post(pool_,
                          [resume] { resume(absl::CancelledError("the bus is shutting down")); });
      }
    }
    pending_.clear();
  }
  pool_.join();
}

Result<size_t> LocalBus::publish(Event event) {
  if (event.id.is_nil()) event.id = EventId::generate();
  if (event.timestamp == 0.0) event.timestamp = now_seconds();
  if (Status s = validate_event(event); !s.ok()) return s;
  return route(std::make_shared<const Event>(std::move(event)));
}

Result<size_t> LocalBus::route(EventPtr event) {
  published_.fetch_add(1, std::memory_order_relaxed);
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
    unrouted_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  // A tap may publish again on this thread, so deliver from a local copy.
  std::vector<std::shared_ptr<const Route>> targets;
  targets.swap(matched);
  size_t delivered = 0;
  for (const auto& route : targets) {
    if (!route->filter.empty() && !route->filter.matches(event->data)) {
      filtered_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const Subscriber& sub = route->subscriber;
    if (sub.tap) {
      sub.tap(event);
      ++delivered;
    } else if (sub.mailbox->push(Delivery{event, sub.slot})) {
      ++delivered;
    } else {
      refused_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  targets.clear();
  if (matched.capacity() < targets.capacity()) matched.swap(targets);
  delivered_.fetch_add(delivered, std::memory_order_relaxed);
  return delivered;
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
  std::string correlation = cat(next_request_.fetch_add(1), "-", EventId::generate().to_string());
  event.metadata.correlation_id = correlation;
  event.metadata.reply_to = reply_channel_;
  const std::string channel = event.channel;
  auto pending = std::make_shared<Pending>(pool_.get_executor());
  auto awaiter = resume_with<Result<EventPtr>>([this, pending, correlation, channel, timeout,
                                                event = std::move(event)](auto resume) mutable {
    pending->resume = resume;
    {
      std::lock_guard lock(pending_mutex_);
      pending_.emplace(correlation, pending);
    }
    auto finish = [this, pending, correlation](Result<EventPtr> outcome) {
      if (pending->done.exchange(true)) return;
      {
        std::lock_guard lock(pending_mutex_);
        pending_.erase(correlation);
      }
      pending->timer.cancel();
      // Resume on the pool, never inside the publisher's call stack.
      boost::asio::post(pool_, [pending, outcome = std::move(outcome)]() mutable {
        pending->resume(std::move(outcome));
      });
    };
    pending->timer.expires_after(timeout);
    pending->timer.async_wait([finish, channel, timeout](boost::system::error_code ec) {
      if (ec) return;
      finish(absl::DeadlineExceededError(
          cat("no reply to \"", channel, "\" within ", timeout.count(), " ms")));
    });
    auto routed = publish(std::move(event));
    if (!routed.ok()) {
      finish(routed.status());
    } else if (*routed == 0) {
      finish(absl::NotFoundError(cat("no module handles \"", channel, "\"")));
    }
  });
  Result<EventPtr> result = co_await awaiter;
  co_return result;
}

void LocalBus::on_reply(const EventPtr& event) {
  std::shared_ptr<Pending> pending;
  {
    std::lock_guard lock(pending_mutex_);
    auto it = pending_.find(event->metadata.correlation_id);
    if (it == pending_.end()) return;  // late reply after a timeout: nobody waits
    pending = it->second;
    pending_.erase(it);
  }
  if (pending->done.exchange(true)) return;
  pending->timer.cancel();
  boost::asio::post(pool_, [pending, event] { pending->resume(event); });
}

Result<size_t> LocalBus::reply(const Event& request, std::string source, Json reply_data) {
  if (request.metadata.reply_to.empty()) {
    return absl::FailedPreconditionError(
        cat("event ", request.id.to_string(), " on \"", request.channel, "\" asked for no reply"));
  }
  Event response = Event::make(request.metadata.reply_to, std::move(source), std::move(reply_data));
  response.metadata.correlation_id = request.metadata.correlation_id;
  response.metadata.trace_id = request.metadata.trace_id;
  response.metadata.user_id = request.metadata.user_id;
  return publish(std::move(response));
}

BusStats LocalBus::stats() const {
  BusStats s;
  s.published = published_.load(std::memory_order_relaxed);
  s.delivered = delivered_.load(std::memory_order_relaxed);
  s.unrouted = unrouted_.load(std::memory_order_relaxed);
  s.filtered = filtered_.load(std::memory_order_relaxed);
  s.refused = refused_.load(std::memory_order_relaxed);
  {
    std::shared_lock lock(routes_mutex_);
    s.subscriptions = routes_.size();
  }
  {
    std::lock_guard lock(pending_mutex_);
    s.pending_requests = pending_.size();
  }
  return s;
}

}  // namespace lotus
