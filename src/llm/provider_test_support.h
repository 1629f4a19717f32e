// Helpers the provider adapter tests share: fast retry settings that record
// the delays they would have slept, a fake environment, and SSE framing.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "llm/provider_http.h"
#include "testing/http_replay_server.h"

namespace lotus::llm::test {

// Records every requested delay instead of sleeping.
struct SleepLog {
  std::mutex mutex;
  std::vector<std::chrono::milliseconds> delays;

  Sleeper sleeper() {
    return [this](std::chrono::milliseconds d, const std::atomic<bool>*) {
      std::lock_guard lock(mutex);
      delays.push_back(d);
    };
  }
  std::vector<std::chrono::milliseconds> taken() {
    std::lock_guard lock(mutex);
    return delays;
  }
};

inline EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

// Points `options` at `server` with short timeouts and recorded sleeps.
inline void use_server(HttpProviderOptions& options, const testing::HttpReplayServer& server,
                       SleepLog& sleeps, std::map<std::string, std::string> env) {
  options.base_url = server.base_url();
  options.connect_timeout = std::chrono::milliseconds(2000);
  options.request_timeout = std::chrono::milliseconds(5000);
  options.idle_timeout = std::chrono::milliseconds(0);
  options.retry.max_attempts = 3;
  options.retry.initial_backoff = std::chrono::milliseconds(100);
  options.sleep = sleeps.sleeper();
  options.env = fake_env(std::move(env));
}

inline std::string sse(const std::string& event, const std::string& data) {
  return "event: " + event + "\ndata: " + data + "\n\n";
}

inline std::string sse_data(const std::string& data) { return "data: " + data + "\n\n"; }

// Re-splits a whole stream into pieces of `size` bytes, so events, lines and
// JSON texts are cut at arbitrary places.
inline std::vector<std::string> split_every(const std::vector<std::string>& parts, size_t size) {
  std::string all;
  for (const auto& p : parts) all += p;
  std::vector<std::string> out;
  for (size_t i = 0; i < all.size(); i += size) out.push_back(all.substr(i, size));
  return out;
}

}  // namespace lotus::llm::test
