// ApiOptions: the `api:` config section of the HTTP/WebSocket daemon
// (`lotus serve`), checked once so the server itself never meets a bad value.
//
//   api:
//     host: 127.0.0.1          # loopback by default; anything else is exposed
//     port: 7777               # 0 = any free port (printed at start)
//     max_body_bytes: 1048576  # bigger request bodies get 413
//     socket_queue: 4096       # events buffered per WebSocket client before it is dropped
//     request_timeout_ms: 60000  # to send a request, and idle between requests, before the close
//     allowed_origins: []      # extra browser origins allowed to call the API
//     allowed_hosts: []        # extra Host header values (names the daemon is reached by)
//     token_file: ""           # default <config folder>/api-token
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "core/config.h"
#include "lotus/status.h"

namespace lotus::api {

struct ApiOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7777;
  size_t max_body_bytes = 1 << 20;
  size_t socket_queue = 4096;
  std::chrono::milliseconds request_timeout{60'000};
  std::vector<std::string> allowed_origins;
  std::vector<std::string> allowed_hosts;
  std::filesystem::path token_file;

  // Reads config.api; errors name the key and the value that was wrong.
  static Result<ApiOptions> from_config(const Config& config);
};

}  // namespace lotus::api
