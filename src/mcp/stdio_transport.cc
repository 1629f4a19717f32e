#include "mcp/stdio_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <boost/asio/defer.hpp>
#include <boost/asio/post.hpp>

#include "bus/continuation.h"
#include "lotus/strings.h"

namespace lotus::mcp {

void LineSplitter::deliver(std::string_view text) {
  if (skipped_ > 0) {
    if (handlers_.on_oversized) handlers_.on_oversized(skipped_);
  } else {
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (!text.empty() && handlers_.on_line) handlers_.on_line(text);
  }
  line_.clear();
  skipped_ = 0;
}

void LineSplitter::feed(std::string_view chunk) {
  while (!chunk.empty()) {
    size_t newline = chunk.find('\n');
    std::string_view piece = chunk.substr(0, newline);
    more_lines_follow_ = newline != std::string_view::npos &&
                         chunk.find('\n', newline + 1) != std::string_view::npos;
    if (skipped_ > 0) {
      skipped_ += piece.size();
    } else if (line_.empty() && newline != std::string_view::npos &&
               piece.size() <= max_line_bytes_) {
      deliver(piece);  // a whole line in the chunk: handed over without a copy
      chunk.remove_prefix(newline + 1);
      continue;
    } else if (line_.size() + piece.size() > max_line_bytes_) {
      skipped_ = line_.size() + piece.size();
      line_.clear();
      line_.shrink_to_fit();
    } else {
      line_.append(piece);
    }
    if (newline == std::string_view::npos) break;
    deliver(line_);
    chunk.remove_prefix(newline + 1);
  }
}

void LineSplitter::finish() {
  more_lines_follow_ = false;
  if (!line_.empty() || skipped_ > 0) deliver(line_);
}

ReadEnd read_lines(int in_fd, int stop_fd, size_t max_line_bytes, const LineHandlers& handlers) {
  LineSplitter splitter(max_line_bytes, handlers);
  char buffer[65536];
  for (;;) {
    pollfd fds[2] = {{in_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int ready = poll(fds, stop_fd >= 0 ? 2 : 1, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ReadEnd::kError;
    }
    if (stop_fd >= 0 && (fds[1].revents & POLLIN) != 0) return ReadEnd::kStopped;
    if (fds[0].revents == 0) continue;
    ssize_t n = read(in_fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ReadEnd::kError;
    }
    if (n == 0) {
      splitter.finish();
      return ReadEnd::kEof;
    }
    splitter.feed(std::string_view(buffer, static_cast<size_t>(n)));
  }
}

namespace {
constexpr size_t kReadChunk = 65536;
// How many times a read waits for this thread's continuations before it
// goes ahead anyway: a busy thread must not keep stdin unread.
constexpr int kMaxReadDelays = 16;
}  // namespace

Result<std::shared_ptr<AsyncLineReader>> AsyncLineReader::start(
    boost::asio::any_io_executor executor, int fd, size_t max_line_bytes, LineHandlers handlers,
    std::function<void(ReadEnd)> on_end) {
  int flags = fcntl(fd, F_GETFL);
  int own = flags < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return absl::InternalError(cat("cannot use descriptor ", fd, ": ", strerror(errno)));
  std::shared_ptr<AsyncLineReader> reader;
  try {
    reader.reset(new AsyncLineReader(std::move(executor), own, flags, max_line_bytes,
                                     std::move(handlers), std::move(on_end)));
  } catch (const boost::system::system_error& e) {
    close(own);
    return absl::InternalError(cat("cannot read descriptor ", fd, ": ", e.what()));
  }
  boost::asio::post(reader->descriptor_.get_executor(), [reader] { reader->read_more(); });
  return reader;
}

AsyncLineReader::AsyncLineReader(boost::asio::any_io_executor executor, int fd, int flags,
                                 size_t max_line_bytes, LineHandlers handlers,
                                 std::function<void(ReadEnd)> on_end)
    : descriptor_(std::move(executor), fd),
      original_flags_(flags),
      handlers_(std::move(handlers)),
      scoped_handlers_{[this](std::string_view line) { hand_over(line); }, handlers_.on_oversized},
      splitter_(max_line_bytes, scoped_handlers_),
      on_end_(std::move(on_end)),
      buffer_(new char[kReadChunk]) {}

AsyncLineReader::~AsyncLineReader() {
  if (descriptor_.is_open()) {
    // Non-blocking mode belongs to the open file, which the process that
    // started us (a shell, an IDE) shares: give it back as it was.
    fcntl(descriptor_.native_handle(), F_SETFL, original_flags_);
    boost::system::error_code ignored;
    descriptor_.close(ignored);
  }
}

void AsyncLineReader::read_more() {
  {
    std::lock_guard lock(end_mutex_);
    if (ended_) return;
  }
  descriptor_.async_read_some(boost::asio::buffer(buffer_.get(), kReadChunk),
                              [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                                if (ec == boost::asio::error::eof) {
                                  self->splitter_.finish();
                                  return self->end(ReadEnd::kEof);
                                }
                                if (ec == boost::asio::error::operation_aborted)
                                  return self->end(ReadEnd::kStopped);
                                if (ec) return self->end(ReadEnd::kError);
                                self->splitter_.feed(std::string_view(self->buffer_.get(), n));
                                if (n < kReadChunk) return self->read_after_continuations(0);
                                self->read_more();
                              });
}

void AsyncLineReader::read_after_continuations(int delays) {
  if (delays < kMaxReadDelays && continuations_waiting()) {
    boost::asio::defer(descriptor_.get_executor(), [self = shared_from_this(), delays] {
      self->read_after_continuations(delays + 1);
    });
    return;
  }
  read_more();
}

void AsyncLineReader::hand_over(std::string_view line) {
  if (splitter_.more_lines_follow()) {
    // More requests wait in this read: what this one starts goes to another
    // thread, which works on it while this one reads on.
    handlers_.on_line(line);
    return;
  }
  // The read's last line: this thread only reads again once it is handed
  // over, so what it starts may run here next.
  ContinuationScope continuation;
  handlers_.on_line(line);
}

void AsyncLineReader::stop() {
  boost::asio::post(descriptor_.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ignored;
    self->descriptor_.cancel(ignored);
    self->end(ReadEnd::kStopped);
  });
}

void AsyncLineReader::end(ReadEnd how) {
  {
    std::lock_guard lock(end_mutex_);
    if (ended_) return;
    ended_ = true;
  }
  fcntl(descriptor_.native_handle(), F_SETFL, original_flags_);
  if (on_end_) on_end_(how);
}

bool LineWriter::write(std::string_view message) {
  std::unique_lock lock(mutex_);
  if (broken_) return false;
  pending_.append(message);
  pending_.push_back('\n');
  if (writing_ || flush_scheduled_) return true;  // goes out with that write
  if (executor_) {
    flush_scheduled_ = true;
    lock.unlock();
    continue_after_handler(*executor_, [self = shared_from_this()] { self->flush(); });
    return true;
  }
  drain(lock);
  return !broken_;
}

void LineWriter::flush() {
  std::unique_lock lock(mutex_);
  flush_scheduled_ = false;
  if (writing_) return;  // the thread writing takes pending_ along
  drain(lock);
}

void LineWriter::drain(std::unique_lock<std::mutex>& lock) {
  // This thread writes what is pending, and whatever others add meanwhile,
  // in as few system calls as it can: under load replies leave in batches.
  writing_ = true;
  while (!pending_.empty() && !broken_) {
    std::string out;
    out.swap(pending_);
    lock.unlock();
    std::string_view rest = out;
    bool failed = false;
    while (!rest.empty()) {
      ssize_t n = ::write(fd_, rest.data(), rest.size());
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        failed = true;
        break;
      }
      rest.remove_prefix(static_cast<size_t>(n));
    }
    lock.lock();
    if (failed) broken_ = true;
    if (pending_.empty()) {
      out.clear();
      pending_.swap(out);  // keeps the buffer's capacity for the next batch
    }
  }
  writing_ = false;
  if (broken_) pending_.clear();
}

bool LineWriter::broken() const {
  std::lock_guard lock(mutex_);
  return broken_;
}

}  // namespace lotus::mcp
