#include "bus/local_bus.h"

#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "lotus/strings.h"

namespace lotus {

struct LocalBus::Pending {
  std::atomic<bool> done{false};
  std::function<void(Result<EventPtr>)> resume;
  std::string correlation;
  std::string channel;
  std::chrono::milliseconds timeout{0};
  std::chrono::steady_clock::time_point deadline;
};

LocalBus::LocalBus(size_t threads)
    : pool_(threads > 0 ? threads : std::max(2u, std::thread::hardware_concurrency())),
      deadline_timer_(pool_.get_executor()) {
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
    deadline_timer_.cancel();
    armed_for_ = std::chrono::steady_clock::time_point::max();
    for (auto& [id, pending] : pending_) {
      if (!pending->done.exchange(true)) {
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
  auto pending = std::make_shared<Pending>();
  pending->correlation = cat(next_request_.fetch_add(1), "-", EventId::generate().to_string());
  pending->channel = event.channel;
  pending->timeout = timeout;
  event.metadata.correlation_id = pending->correlation;
  event.metadata.reply_to = reply_channel_;
  auto awaiter =
      resume_with<Result<EventPtr>>([this, pending, event = std::move(event)](auto resume) mutable {
        pending->resume = resume;
        {
          std::lock_guard lock(pending_mutex_);
          pending->deadline = std::chrono::steady_clock::now() + pending->timeout;
          pending_.emplace(pending->correlation, pending);
          arm_deadline_locked(pending->deadline);
        }
        auto routed = publish(std::move(event));
        if (!routed.ok()) {
          finish(pending, routed.status());
        } else if (*routed == 0) {
          finish(pending, absl::NotFoundError(cat("no module handles \"", pending->channel, "\"")));
        }
      });
  Result<EventPtr> result = co_await awaiter;
  co_return result;
}

void LocalBus::finish(const std::shared_ptr<Pending>& pending, Result<EventPtr> outcome) {
  if (pending->done.exchange(true)) return;
  {
    std::lock_guard lock(pending_mutex_);
    pending_.erase(pending->correlation);
  }
  // Resume on the pool, never inside the publisher's call stack.
  boost::asio::post(pool_, [pending, outcome = std::move(outcome)]() mutable {
    pending->resume(std::move(outcome));
  });
}

void LocalBus::arm_deadline_locked(std::chrono::steady_clock::time_point deadline) {
  if (deadline >= armed_for_) return;  // the timer wakes sooner and re-arms then
  armed_for_ = deadline;
  deadline_timer_.expires_at(deadline);
  deadline_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) on_deadline();
  });
}

void LocalBus::on_deadline() {
  std::vector<std::shared_ptr<Pending>> expired;
  {
    std::lock_guard lock(pending_mutex_);
    const auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second->deadline <= now) {
        expired.push_back(it->second);
        it = pending_.erase(it);
      } else {
        next = std::min(next, it->second->deadline);
        ++it;
      }
    }
    armed_for_ = std::chrono::steady_clock::time_point::max();
    if (next != std::chrono::steady_clock::time_point::max()) arm_deadline_locked(next);
  }
  for (const auto& pending : expired) {
    finish(pending,
           absl::DeadlineExceededError(cat("no reply to \"", pending->channel, "\" within ",
                                           pending->timeout.count(), " ms")));
  }
}

void LocalBus::on_reply(const EventPtr& event) {
  std::shared_ptr<Pending> pending;
  {
    std::lock_guard lock(pending_mutex_);
    auto it = pending_.find(event->metadata.correlation_id);
    if (it == pending_.end()) return;  // late reply after a timeout: nobody waits
    pending = it->second;
  }
  finish(pending, event);
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
