// DaemonLink: a running `lotus serve` that `lotus health`, `modules`,
// `events` and `ask` use instead of booting a nucleus of their own, so they
// see the daemon's modules, its live bus and its conversations.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "api/api_client.h"
#include "core/config.h"
#include "lotus/event.h"

namespace lotus::cli {

struct DaemonLink {
  std::string url;
  std::string host;
  uint16_t port = 0;
  std::string token;

  api::ApiClient client() const;
  // GET `target` as JSON; the error names the daemon and what went wrong.
  Result<Json> get_json(const std::string& target) const;
  // POST `body` to `target`, the answer as JSON; errors as for get_json.
  Result<Json> post_json(const std::string& target, const Json& body) const;
};

// The daemon named by <data_dir>/daemon.json when it answers /health within
// a second and its token can be read; nullopt otherwise, and always when
// LOTUS_STANDALONE is set (--standalone).
std::optional<DaemonLink> find_running_daemon(const Config& config);

// Reads the daemon's event stream on a thread of its own and hands each
// event to `on_event`; stop() (or the destructor) ends it.
class DaemonEventReader {
 public:
  DaemonEventReader(const DaemonLink& link, const std::string& pattern,
                    std::function<void(EventPtr)> on_event);
  ~DaemonEventReader();
  bool open() const { return stream_->open(); }
  const std::string& error() const { return stream_->error(); }
  // True once the stream ended on the daemon's side (it stopped, or dropped us).
  bool ended() const { return ended_.load(); }
  std::string end_reason() const;
  void stop();

 private:
  std::unique_ptr<api::EventStreamClient> stream_;
  std::function<void(EventPtr)> on_event_;
  std::atomic<bool> ended_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace lotus::cli
