// The MCP stdio transport: newline-delimited JSON-RPC messages on a pair of
// file descriptors. Reading never holds more than the message limit: a line
// that outgrows it is skipped to its end and reported, not buffered.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "lotus/status.h"

namespace lotus::mcp {

struct LineHandlers {
  std::function<void(std::string_view line)> on_line;  // without the newline (or \r\n)
  std::function<void(size_t bytes)> on_oversized;      // at least this many bytes
};

enum class ReadEnd { kEof, kStopped, kError };

// Cuts a byte stream into lines for `handlers`. Empty lines are ignored; a
// line longer than the limit is skipped to its end and reported.
class LineSplitter {
 public:
  LineSplitter(size_t max_line_bytes, const LineHandlers& handlers)
      : max_line_bytes_(max_line_bytes), handlers_(handlers) {}
  void feed(std::string_view chunk);
  // End of input: a last line without a newline is still delivered.
  void finish();
  // While a line is handed over: whether the chunk being fed holds more
  // whole lines after it.
  bool more_lines_follow() const { return more_lines_follow_; }

 private:
  // Hands over a finished line (or reports the skipped one) and starts anew.
  void deliver(std::string_view text);
  size_t max_line_bytes_;
  const LineHandlers& handlers_;
  std::string line_;
  size_t skipped_ = 0;  // > 0 while skipping the rest of an oversized line
  bool more_lines_follow_ = false;
};

// Reads lines from `in_fd` until end of file, an error, or `stop_fd` (if not
// -1) becomes readable, on the calling thread.
ReadEnd read_lines(int in_fd, int stop_fd, size_t max_line_bytes, const LineHandlers& handlers);

// Reads lines from a descriptor on an asio executor's threads (the bus's
// pool), one read at a time: a read's lines are handed over in order before
// the next read starts. Read there, a request's work can run on the thread
// that read it (see bus/continuation.h) rather than crossing from a reader
// thread to the pool and back. The descriptor is duplicated, so `fd` stays
// open, and its blocking mode is restored when reading ends.
class AsyncLineReader : public std::enable_shared_from_this<AsyncLineReader> {
 public:
  static Result<std::shared_ptr<AsyncLineReader>> start(boost::asio::any_io_executor executor,
                                                        int fd, size_t max_line_bytes,
                                                        LineHandlers handlers,
                                                        std::function<void(ReadEnd)> on_end);
  ~AsyncLineReader();
  // Ends reading (on_end hears kStopped) unless it ended already.
  void stop();

 private:
  AsyncLineReader(boost::asio::any_io_executor executor, int fd, int flags, size_t max_line_bytes,
                  LineHandlers handlers, std::function<void(ReadEnd)> on_end);
  void read_more();
  // Reads again once the work the last read started on this thread - the
  // calls it handed over, their replies' writes - has run. That read emptied
  // the pipe, so the next one would most likely find nothing: done first, it
  // would hold up the reply the client waits for by a system call.
  void read_after_continuations(int delays);
  void end(ReadEnd how);
  // Passes a line on, letting what it starts run on this thread when it is
  // the read's last (see bus/continuation.h).
  void hand_over(std::string_view line);

  boost::asio::posix::stream_descriptor descriptor_;
  int original_flags_;
  LineHandlers handlers_;
  LineHandlers scoped_handlers_;  // what splitter_ calls: hand_over, then handlers_
  LineSplitter splitter_;
  std::function<void(ReadEnd)> on_end_;
  std::unique_ptr<char[]> buffer_;
  std::mutex end_mutex_;
  bool ended_ = false;
};

// Writes whole messages, each followed by a newline, to a descriptor; safe
// to call from several threads. While one thread writes, messages from
// others queue and go out with its next write. Once the reader is gone
// (EPIPE) it drops everything quietly: there is no one left to tell.
class LineWriter : public std::enable_shared_from_this<LineWriter> {
 public:
  // Each message is written before write() returns.
  explicit LineWriter(int fd) : fd_(fd) {}
  // Messages are gathered and written on `executor` once the work in hand
  // there is done (asio's defer, counted as the thread's continuation - see
  // bus/continuation.h - so a reader on it reads again only after): replies
  // to calls that finish together leave in one system call. Made with
  // std::make_shared; call flush() before the executor stops.
  LineWriter(int fd, boost::asio::any_io_executor executor)
      : fd_(fd), executor_(std::move(executor)) {}
  bool write(std::string_view message);
  // Writes what is gathered now, on this thread.
  void flush();
  bool broken() const;

 private:
  // Writes pending_ until it is empty; called with `lock` held and
  // writing_ set, returns with it held.
  void drain(std::unique_lock<std::mutex>& lock);

  int fd_;
  std::optional<boost::asio::any_io_executor> executor_;
  mutable std::mutex mutex_;
  std::string pending_;           // messages not written yet
  bool writing_ = false;          // a thread is in write(2)
  bool flush_scheduled_ = false;  // a deferred flush() will write pending_
  bool broken_ = false;
};

}  // namespace lotus::mcp
