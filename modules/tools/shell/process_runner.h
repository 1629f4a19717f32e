// run_process(): runs one child process to completion, blocking the calling
// thread, with a deadline and capped output; the shell module calls it on a
// thread of its own (see offload.h).
//
// The child gets a process group of its own (posix_spawn, no fork of this
// big multi-threaded process), stdin from /dev/null and no inherited file
// descriptors beyond 0-2. Its exit is seen through a pidfd, so waiting costs
// no polling. On timeout the whole group is killed (SIGKILL); when the child
// exits, whatever it left in its group is killed too, so a background
// process cannot hold the output pipes open. ProcessGroups lets shutdown
// kill every group still running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lotus/status.h"

namespace lotus::tools {

// The process groups of the commands running now, shared by the module and
// the threads running them.
class ProcessGroups {
 public:
  // False once kill_all() was called: no new command may start.
  bool add(pid_t group);
  void remove(pid_t group);
  // Kills every running group and refuses new ones; returns how many.
  size_t kill_all();

 private:
  std::mutex mutex_;
  std::set<pid_t> groups_;
  bool closed_ = false;
};

struct ProcessSpec {
  std::vector<std::string> argv;  // argv[0] is looked up on PATH when it has no '/'
  std::vector<std::string> env;   // "NAME=value", the whole environment
  std::string cwd;
  std::chrono::milliseconds timeout{30000};
  size_t max_output_bytes = 65536;  // per stream
};

struct ProcessOutcome {
  std::optional<int> exit_code;  // set when it exited
  std::optional<int> signal;     // set when a signal ended it
  bool timed_out = false;
  std::string out;  // the first max_output_bytes of stdout
  std::string err;
  uint64_t out_bytes = 0;  // all that was written, kept or not
  uint64_t err_bytes = 0;
  std::chrono::nanoseconds duration{0};
};

// NotFound when argv[0] cannot be found or run, ResourceExhausted when the
// system refuses a process or pipe; everything the command itself does
// (a non-zero exit, a crash, a timeout) is a successful outcome.
Result<ProcessOutcome> run_process(const ProcessSpec& spec, ProcessGroups& groups);

// "SIGKILL" for SIGKILL; "signal 42" when it has no name.
std::string signal_name(int signal);

}  // namespace lotus::tools
