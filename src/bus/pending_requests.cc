#include "bus/pending_requests.h"

#include <algorithm>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bus/continuation.h"
#include "lotus/strings.h"

namespace lotus {

struct PendingRequests::Entry {
  std::string correlation;
  std::string channel;
  std::vector<std::string> nodes;
  std::chrono::milliseconds timeout{0};
  std::chrono::steady_clock::time_point deadline;
  std::function<void(Result<EventPtr>)> resume;
  std::atomic<bool> done{false};
};

PendingRequests::PendingRequests(boost::asio::any_io_executor executor)
    : executor_(executor), timer_(executor), instance_(EventId::generate().to_string()) {}

std::string PendingRequests::next_correlation() {
  return cat(next_.fetch_add(1, std::memory_order_relaxed), "-", instance_);
}

PendingRequests::Request PendingRequests::begin(Event& event, const std::string& reply_to,
                                                std::chrono::milliseconds timeout,
                                                std::string_view nobody) {
  Request request;
  request.correlation = next_correlation();
  request.channel = event.channel;
  request.timeout = timeout;
  request.nobody = nobody;
  event.metadata.correlation_id = request.correlation;
  event.metadata.reply_to = reply_to;
  return request;
}

void PendingRequests::complete(const std::shared_ptr<Entry>& entry, Result<EventPtr> outcome) {
  if (entry->done.exchange(true)) return;
  {
    std::lock_guard lock(mutex_);
    waiting_.erase(entry->correlation);
  }
  wake(entry, std::move(outcome));
}

void PendingRequests::wake(const std::shared_ptr<Entry>& entry, Result<EventPtr> outcome) {
  // On the thread of the handler that answered, once it returns, when that
  // thread is to be free then (see continuation.h).
  post_or_continue(executor_, [entry, outcome = std::move(outcome)]() mutable {
    entry->resume(std::move(outcome));
  });
}

Task<Result<EventPtr>> PendingRequests::wait(Request request) {
  auto entry = std::make_shared<Entry>();
  entry->correlation = std::move(request.correlation);
  entry->channel = std::move(request.channel);
  entry->nodes = std::move(request.nodes);
  entry->timeout = request.timeout;
  auto awaiter = resume_with<Result<EventPtr>>([this, entry, &request](auto resume) {
    entry->resume = resume;
    entry->deadline = std::chrono::steady_clock::now() + entry->timeout;
    {
      std::lock_guard lock(mutex_);
      waiting_.emplace(entry->correlation, entry);
      arm_locked(entry->deadline);
    }
    Result<size_t> sent = request.send();
    if (!sent.ok()) {
      complete(entry, sent.status());
    } else if (*sent == 0) {
      complete(entry, absl::NotFoundError(cat(request.nobody, " \"", entry->channel, "\"")));
    }
  });
  Result<EventPtr> result = co_await awaiter;
  co_return result;
}

void PendingRequests::arm_locked(std::chrono::steady_clock::time_point deadline) {
  if (deadline >= armed_for_) return;  // the timer wakes sooner and re-arms then
  armed_for_ = deadline;
  timer_.expires_at(deadline);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) on_deadline();
  });
}

void PendingRequests::on_deadline() {
  std::vector<std::shared_ptr<Entry>> expired;
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    for (const auto& [correlation, entry] : waiting_) {
      if (entry->deadline <= now) {
        expired.push_back(entry);
      } else {
        next = std::min(next, entry->deadline);
      }
    }
    armed_for_ = std::chrono::steady_clock::time_point::max();
    if (next != std::chrono::steady_clock::time_point::max()) arm_locked(next);
  }
  for (const auto& entry : expired) {
    complete(entry, absl::DeadlineExceededError(cat("no reply to \"", entry->channel, "\" within ",
                                                    entry->timeout.count(), " ms")));
  }
}

bool PendingRequests::answer(const EventPtr& reply) {
  // Found and taken off the list under one lock: the thread that sent the
  // request takes the same lock for the next one.
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard lock(mutex_);
    auto it = waiting_.find(reply->metadata.correlation_id);
    if (it == waiting_.end()) return false;
    entry = std::move(it->second);
    waiting_.erase(it);
  }
  if (!entry->done.exchange(true)) wake(entry, reply);
  return true;
}

void PendingRequests::fail_routed_to(const std::string& node,
                                     const std::function<Status(const std::string& channel)>& why) {
  std::vector<std::shared_ptr<Entry>> lost;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [correlation, entry] : waiting_) {
      if (std::find(entry->nodes.begin(), entry->nodes.end(), node) != entry->nodes.end()) {
        lost.push_back(entry);
      }
    }
  }
  for (const auto& entry : lost) complete(entry, why(entry->channel));
}

void PendingRequests::cancel_all(const Status& why) {
  std::vector<std::shared_ptr<Entry>> all;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [correlation, entry] : waiting_) all.push_back(entry);
    timer_.cancel();
    armed_for_ = std::chrono::steady_clock::time_point::max();
  }
  for (const auto& entry : all) complete(entry, why);
}

size_t PendingRequests::size() const {
  std::lock_guard lock(mutex_);
  return waiting_.size();
}

Result<Event> make_reply(const Event& request, std::string source, Json data) {
  if (request.metadata.reply_to.empty()) {
    return absl::FailedPreconditionError(
        cat("event ", request.id.to_string(), " on \"", request.channel, "\" asked for no reply"));
  }
  Event response = Event::make(request.metadata.reply_to, std::move(source), std::move(data));
  response.metadata.correlation_id = request.metadata.correlation_id;
  response.metadata.trace_id = request.metadata.trace_id;
  response.metadata.user_id = request.metadata.user_id;
  return response;
}

}  // namespace lotus
