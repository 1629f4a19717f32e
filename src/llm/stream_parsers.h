// Incremental parsers for streamed model replies: SSE and NDJSON.
//
// Bytes arrive in whatever pieces the network makes, so a line, an event or a
// CRLF pair may be split anywhere; both parsers buffer only the unfinished
// tail and hand out each complete event or line exactly once.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "lotus/status.h"

namespace lotus::llm {

struct SseEvent {
  std::string event;  // "message" when the server named none
  std::string data;   // data lines joined with '\n'
  std::string id;
};

// Server-sent events as the WHATWG HTML standard defines the stream format.
class SseParser {
 public:
  // A non-OK status from the handler stops parsing and is returned by feed().
  using Handler = std::function<Status(const SseEvent&)>;
  explicit SseParser(Handler handler) : handler_(std::move(handler)) {}

  Status feed(std::string_view bytes);
  // End of stream: true when an event was started but never terminated by a
  // blank line (the stream was cut inside it).
  bool has_partial_event() const;

 private:
  Status line(std::string_view text);

  Handler handler_;
  std::string pending_;   // an unfinished line
  bool skip_lf_ = false;  // the last byte seen was CR: a following LF is part of it
  bool bom_checked_ = false;
  std::string event_, data_, id_;
  bool has_data_ = false;
  bool started_ = false;
};

// Newline-delimited JSON (Ollama): one JSON text per line; blank lines skipped.
class NdjsonParser {
 public:
  using Handler = std::function<Status(std::string_view line)>;
  explicit NdjsonParser(Handler handler) : handler_(std::move(handler)) {}

  Status feed(std::string_view bytes);
  // End of stream: delivers a last line that lacked its newline. Servers end
  // with a newline, so `trailing` tells the caller one was missing.
  Status finish(bool* trailing = nullptr);

 private:
  Handler handler_;
  std::string pending_;
};

}  // namespace lotus::llm
