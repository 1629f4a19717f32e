// HttpClient: one blocking HTTP request over libcurl, body streamed to a sink.
//
// Provider adapters need three things plain request/response helpers lack:
// the body as it arrives (SSE, NDJSON), a way to abandon a call from another
// thread, and failures as statuses they can classify for retry. Non-2xx
// bodies are collected (capped) instead of streamed so errors can be read.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lotus/status.h"

namespace lotus::llm {

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds connect_timeout{10'000};
  // Whole exchange, streaming included; 0 = none.
  std::chrono::milliseconds total_timeout{600'000};
  // Longest silence once connected; 0 = none. Checked about once a second.
  std::chrono::milliseconds idle_timeout{0};
  const std::atomic<bool>* cancel = nullptr;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;  // non-2xx bodies (capped); 2xx bodies only when no sink was given
  bool streamed = false;

  std::string header(std::string_view name) const;
};

// Receives the body of a 2xx response piece by piece; returning a non-OK
// status aborts the transfer and becomes perform()'s result.
using BodySink = std::function<Status(std::string_view bytes)>;

class HttpClient {
 public:
  // The status is OK whatever the HTTP status code; non-OK only when no full
  // response arrived: Unavailable (connect, reset, cut), DeadlineExceeded,
  // Cancelled, or the sink's own error.
  Result<HttpResponse> perform(const HttpRequest& request, const BodySink& sink = {});
};

}  // namespace lotus::llm
