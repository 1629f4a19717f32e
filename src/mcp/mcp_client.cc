#include "mcp/mcp_client.h"

#include <future>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "lotus/strings.h"
#include "mcp/json_rpc.h"

namespace lotus::mcp {

namespace {

Task<void> call_into(std::shared_ptr<McpClient> client, std::string method, Json params,
                     std::chrono::milliseconds timeout, std::promise<Result<Json>>* out) {
  auto calling = client->call(std::move(method), std::move(params), timeout);
  Result<Json> result = co_await std::move(calling);
  out->set_value(std::move(result));
}

}  // namespace

struct McpClient::Pending {
  explicit Pending(boost::asio::any_io_executor executor) : timer(std::move(executor)) {}
  std::function<void(Result<Json>)> resume;
  boost::asio::steady_timer timer;
  std::atomic<bool> done{false};
};

std::shared_ptr<McpClient> McpClient::create(boost::asio::any_io_executor executor, Send send,
                                             OnNotification on_notification) {
  return std::shared_ptr<McpClient>(
      new McpClient(std::move(executor), std::move(send), std::move(on_notification)));
}

McpClient::McpClient(boost::asio::any_io_executor executor, Send send,
                     OnNotification on_notification)
    : executor_(std::move(executor)),
      send_(std::move(send)),
      on_notification_(std::move(on_notification)) {}

Task<Result<Json>> McpClient::call(std::string method, Json params,
                                   std::chrono::milliseconds timeout) {
  const int64_t id = next_id_.fetch_add(1);
  auto pending = std::make_shared<Pending>(executor_);
  std::weak_ptr<McpClient> weak = weak_from_this();
  auto waiting = resume_with<Result<Json>>([this, id, pending, weak, timeout, &method,
                                            &params](std::function<void(Result<Json>)> resume) {
    pending->resume = std::move(resume);
    {
      std::lock_guard lock(mutex_);
      if (!closed_.ok()) {
        pending->done.store(true);
        Status why = closed_;
        boost::asio::post(executor_, [pending, why] { pending->resume(why); });
        return;
      }
      pending_.emplace(id, pending);
    }
    pending->timer.expires_after(timeout);
    pending->timer.async_wait([weak, id, timeout, method](boost::system::error_code ec) {
      if (ec) return;
      auto self = weak.lock();
      if (!self) return;
      self->notify(
          "notifications/cancelled",
          {{"requestId", id}, {"reason", cat("no answer within ", timeout.count(), " ms")}});
      self->finish(id, absl::DeadlineExceededError(
                           cat(method, " got no answer within ", timeout.count(), " ms")));
    });
    if (!send_(make_request(id, method, std::move(params)))) {
      finish(id, absl::UnavailableError(cat("cannot send ", method, ": the connection is gone")));
    }
  });
  Result<Json> result = co_await waiting;
  co_return result;
}

Result<Json> McpClient::call_sync(std::string method, Json params,
                                  std::chrono::milliseconds timeout) {
  std::promise<Result<Json>> done;
  auto future = done.get_future();
  auto task = std::make_shared<Task<void>>(
      call_into(shared_from_this(), std::move(method), std::move(params), timeout, &done));
  boost::asio::post(executor_,
                    [task] { start_detached(std::move(*task), [](std::exception_ptr) {}); });
  return future.get();
}

bool McpClient::notify(std::string_view method, Json params) {
  return send_(make_notification(method, std::move(params)));
}

void McpClient::finish(int64_t id, Result<Json> result) {
  std::shared_ptr<Pending> pending;
  {
    std::lock_guard lock(mutex_);
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    pending = it->second;
    pending_.erase(it);
  }
  if (pending->done.exchange(true)) return;
  pending->timer.cancel();
  boost::asio::post(executor_, [pending, result = std::move(result)]() mutable {
    pending->resume(std::move(result));
  });
}

void McpClient::handle(std::string_view text) {
  RpcMessage message = parse_message(text);
  switch (message.kind) {
    case RpcMessage::Kind::kResponse: {
      if (!message.id.is_number_integer()) return;  // not one of ours
      int64_t id = message.id.get<int64_t>();
      if (!message.error.is_null()) {
        const Json& error = message.error;
        std::string what =
            error.is_object() ? error.value("message", std::string("no message")) : error.dump();
        int code = error.is_object() ? error.value("code", 0) : 0;
        finish(id, code == kMethodNotFound
                       ? Status(absl::UnimplementedError(cat(what, " (", code, ")")))
                   : code == kInvalidParams
                       ? Status(absl::InvalidArgumentError(cat(what, " (", code, ")")))
                       : Status(absl::UnknownError(cat(what, " (", code, ")"))));
      } else {
        finish(id, std::move(message.result));
      }
      return;
    }
    case RpcMessage::Kind::kRequest:
      if (message.method == "ping") {
        send_(make_result(message.id, Json::object()));
      } else {
        send_(make_error(message.id, RpcError{kMethodNotFound,
                                              cat("method not found: ", message.method), Json()}));
      }
      return;
    case RpcMessage::Kind::kNotification:
      if (on_notification_) on_notification_(message.method, message.params);
      return;
    case RpcMessage::Kind::kInvalid:
      return;  // a server's garbage gets no answer from a client
  }
}

void McpClient::close(Status status) {
  std::map<int64_t, std::shared_ptr<Pending>> pending;
  Status why;
  {
    std::lock_guard lock(mutex_);
    if (closed_.ok()) closed_ = status.ok() ? absl::UnavailableError("closed") : status;
    why = closed_;
    pending.swap(pending_);
  }
  for (auto& [id, call] : pending) {
    if (call->done.exchange(true)) continue;
    call->timer.cancel();
    boost::asio::post(executor_, [call, why] { call->resume(why); });
  }
}

size_t McpClient::pending() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

}  // namespace lotus::mcp
