// The MCP stdio transport: newline-delimited JSON-RPC messages on a pair of
// file descriptors. Reading never holds more than the message limit: a line
// that outgrows it is skipped to its end and reported, not buffered.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "lotus/status.h"

namespace lotus::mcp {

struct LineHandlers {
  std::function<void(std::string_view line)> on_line;  // without the newline (or \r\n)
  std::function<void(size_t bytes)> on_oversized;      // at least this many bytes
};

enum class ReadEnd { kEof, kStopped, kError };

// Reads lines from `in_fd` until end of file, an error, or `stop_fd` (if not
// -1) becomes readable. Empty lines are ignored; a last line without a
// newline is still delivered at end of file.
ReadEnd read_lines(int in_fd, int stop_fd, size_t max_line_bytes, const LineHandlers& handlers);

// Writes whole messages, each followed by a newline, to a descriptor; safe
// to call from several threads. Once the reader is gone (EPIPE) it drops
// everything quietly: there is no one left to tell.
class LineWriter {
 public:
  explicit LineWriter(int fd) : fd_(fd) {}
  bool write(std::string_view message);
  bool broken() const;

 private:
  int fd_;
  mutable std::mutex mutex_;
  bool broken_ = false;
};

}  // namespace lotus::mcp
