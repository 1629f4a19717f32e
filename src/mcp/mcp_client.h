// McpClient: the client side of one MCP session, independent of transport.
//
// call() sends a request and awaits its response, with a timeout after
// which the call fails and the server is told (notifications/cancelled);
// handle() takes each message the server sends. Requests the server makes
// are answered (ping) or refused (method not found); notifications go to a
// callback. Thread-safe: replies may arrive on a reader thread while calls
// start on others; waiting coroutines resume on the given executor.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

#include "lotus/event.h"
#include "lotus/status.h"
#include "lotus/task.h"

namespace lotus::mcp {

class McpClient : public std::enable_shared_from_this<McpClient> {
 public:
  // Sends one serialized message; false when the connection is gone.
  using Send = std::function<bool(std::string message)>;
  using OnNotification = std::function<void(const std::string& method, const Json& params)>;

  static std::shared_ptr<McpClient> create(boost::asio::any_io_executor executor, Send send,
                                           OnNotification on_notification = {});

  // The result of a request, or an error: the server's JSON-RPC error
  // (message and code), DeadlineExceeded after `timeout`, Unavailable when
  // the connection is lost first.
  Task<Result<Json>> call(std::string method, Json params, std::chrono::milliseconds timeout);
  // The same from a plain thread (not one of the executor's), blocking.
  Result<Json> call_sync(std::string method, Json params, std::chrono::milliseconds timeout);
  bool notify(std::string_view method, Json params);

  // One message from the server.
  void handle(std::string_view text);
  // The connection is gone: every pending call fails with `status`, and so
  // does every later one.
  void close(Status status);
  size_t pending() const;

 private:
  McpClient(boost::asio::any_io_executor executor, Send send, OnNotification on_notification);
  struct Pending;
  void finish(int64_t id, Result<Json> result);

  boost::asio::any_io_executor executor_;
  Send send_;
  OnNotification on_notification_;
  std::atomic<int64_t> next_id_{1};
  mutable std::mutex mutex_;
  std::map<int64_t, std::shared_ptr<Pending>> pending_;
  Status closed_;
};

}  // namespace lotus::mcp
