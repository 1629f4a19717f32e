// StdioChild: an MCP server run as a child process, talked to over its
// stdin and stdout (the stdio transport); its stderr goes to a file.
// The child gets its own process group, so stopping it stops whatever it
// started too (npx starts node, which may start more).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lotus/status.h"
#include "mcp/stdio_transport.h"

namespace lotus::mcp {

class StdioChild {
 public:
  // Starts `command` (looked up on PATH) with `args`; `env` is added to (and
  // overrides) the inherited environment.
  static Result<std::unique_ptr<StdioChild>> spawn(const std::string& command,
                                                   const std::vector<std::string>& args,
                                                   const std::map<std::string, std::string>& env,
                                                   const std::filesystem::path& stderr_file);
  ~StdioChild();
  StdioChild(const StdioChild&) = delete;
  StdioChild& operator=(const StdioChild&) = delete;

  bool write(std::string_view message) { return writer_->write(message); }
  // Reads stdout line by line until the child closes it (it exited) or
  // stop() is called; blocking, for the connection's reader thread.
  ReadEnd read(size_t max_line_bytes, const LineHandlers& handlers);
  // Closes stdin, gives the child `grace` to exit, then kills its group;
  // reaps it. Safe to call twice. Returns a description of how it ended.
  std::string stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));
  pid_t pid() const { return pid_; }

 private:
  StdioChild() = default;

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int wake_[2] = {-1, -1};  // written by stop() to end read()
  std::unique_ptr<LineWriter> writer_;
  bool reaped_ = false;
  std::string ended_;
};

}  // namespace lotus::mcp
