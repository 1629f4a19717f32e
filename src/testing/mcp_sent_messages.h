// SentMessages: what an McpServer under test sent. Its sink records each
// message, parsed, with the route the server gave it; tests wait for the
// message they expect and inspect the rest.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mcp/mcp_server.h"

namespace lotus::testing {

class SentMessages {
 public:
  struct Sent {
    Json message;
    Json related;  // McpServer::Route::request
    bool answers = false;
  };

  // The sink to create the server with; this object outlives the server.
  mcp::McpServer::RoutedSink sink() {
    return [this](std::string message, const mcp::McpServer::Route& route) {
      std::lock_guard lock(mutex_);
      sent_.push_back({Json::parse(message), route.request, route.answers});
      changed_.notify_all();
    };
  }

  // The first message that `matches`, waiting up to `timeout`; null if none.
  Json wait_for(const std::function<bool(const Json&)>& matches,
                std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex_);
    Json found;
    changed_.wait_for(lock, timeout, [&] {
      for (const Sent& sent : sent_) {
        if (matches(sent.message)) {
          found = sent.message;
          return true;
        }
      }
      return false;
    });
    return found;
  }

  // Hands `server` request `id` and waits for the message answering it.
  Json request(mcp::McpServer& server, const Json& id, const std::string& method,
               const Json& params = Json::object()) {
    server.handle(
        Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump());
    return wait_for([&](const Json& m) { return m.contains("id") && m["id"] == id; });
  }

  std::vector<Sent> all() const {
    std::lock_guard lock(mutex_);
    return sent_;
  }
  std::vector<Json> messages() const {
    std::vector<Json> out;
    for (Sent& sent : all()) out.push_back(std::move(sent.message));
    return out;
  }
  // The messages with `method`, each with the request it was related to.
  std::vector<std::pair<Json, Json>> with_method(std::string_view method) const {
    std::vector<std::pair<Json, Json>> out;
    for (Sent& sent : all()) {
      if (sent.message.value("method", "") == method) {
        out.emplace_back(std::move(sent.message), std::move(sent.related));
      }
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Sent> sent_;
};

}  // namespace lotus::testing
