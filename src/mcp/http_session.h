// HttpSession: the client side of MCP's Streamable HTTP transport. Every
// message is POSTed to the server's URL (on a thread of its own, so a slow
// call never holds up another); the answer — one JSON message, or an SSE
// stream of them — goes to `on_message`. The Mcp-Session-Id the server hands
// out and the negotiated MCP-Protocol-Version go with every later request.
// A lost session (404) or an unreachable server breaks the session: requests
// waiting get an error answer and `on_broken` is told.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace lotus::mcp {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  using OnMessage = std::function<void(std::string_view message)>;
  using OnBroken = std::function<void(const std::string& why)>;

  static std::shared_ptr<HttpSession> create(std::string url,
                                             std::map<std::string, std::string> headers,
                                             OnMessage on_message, OnBroken on_broken);

  // Sends one message; false once the session is broken or closed.
  bool send(std::string message);
  // Ends the session (DELETE when the server gave one) and waits for the
  // requests in flight to end.
  void close();
  std::string error() const;

 private:
  HttpSession(std::string url, std::map<std::string, std::string> headers, OnMessage on_message,
              OnBroken on_broken);
  void post(const std::string& message);
  void answer_error(const std::string& message, const std::string& why);
  void broke(const std::string& why);

  const std::string url_;
  const std::map<std::string, std::string> headers_;
  OnMessage on_message_;
  OnBroken on_broken_;
  std::atomic<bool> cancel_{false};

  mutable std::mutex mutex_;
  std::condition_variable idle_;
  int active_ = 0;
  bool broken_ = false;
  std::string error_;
  std::string session_id_;
  std::string protocol_version_;
};

}  // namespace lotus::mcp
