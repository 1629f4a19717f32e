#include "mcp/stdio_transport.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

namespace lotus::mcp {

ReadEnd read_lines(int in_fd, int stop_fd, size_t max_line_bytes, const LineHandlers& handlers) {
  std::string line;
  size_t skipped = 0;  // > 0 while skipping the rest of an oversized line
  char buffer[65536];
  auto deliver = [&] {
    if (skipped > 0) {
      if (handlers.on_oversized) handlers.on_oversized(skipped);
    } else {
      std::string_view text = line;
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      if (!text.empty() && handlers.on_line) handlers.on_line(text);
    }
    line.clear();
    skipped = 0;
  };
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
      if (!line.empty() || skipped > 0) deliver();
      return ReadEnd::kEof;
    }
    std::string_view chunk(buffer, static_cast<size_t>(n));
    while (!chunk.empty()) {
      size_t newline = chunk.find('\n');
      std::string_view piece = chunk.substr(0, newline);
      if (skipped > 0) {
        skipped += piece.size();
      } else if (line.size() + piece.size() > max_line_bytes) {
        skipped = line.size() + piece.size();
        line.clear();
        line.shrink_to_fit();
      } else {
        line.append(piece);
      }
      if (newline == std::string_view::npos) break;
      deliver();
      chunk.remove_prefix(newline + 1);
    }
  }
}

bool LineWriter::write(std::string_view message) {
  std::lock_guard lock(mutex_);
  if (broken_) return false;
  std::string out;
  out.reserve(message.size() + 1);
  out.append(message);
  out.push_back('\n');
  std::string_view rest = out;
  while (!rest.empty()) {
    ssize_t n = ::write(fd_, rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      broken_ = true;
      return false;
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool LineWriter::broken() const {
  std::lock_guard lock(mutex_);
  return broken_;
}

}  // namespace lotus::mcp
