// Helpers the integration tests share: a temporary folder, module folders
// assembled from the built test plugins, and child processes of `lotus`.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "testing/files.h"
#include "testing/temp_dir.h"

namespace lotus::testing {

// Copies a built test module (manifest + library) or a fixture folder.
inline void copy_folder(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::create_directories(to);
  std::filesystem::copy(
      from, to,
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
}

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int term_signal = 0;
  std::string output;  // stdout and stderr together
  std::chrono::milliseconds elapsed{0};
};

// A child process with stdin piped and stdout+stderr captured to a file.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
        const std::filesystem::path& output_file)
      : output_file_(output_file) {
    int in[2];
    if (pipe(in) != 0) return;
    begin_ = std::chrono::steady_clock::now();
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], STDIN_FILENO);
      close(in[1]);
      int out = open(output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      for (const auto& [key, value] : env) setenv(key.c_str(), value.c_str(), 1);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(in[0]);
    stdin_ = in[1];
  }
  ~Child() {
    if (pid_ > 0 && !waited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stdin_ >= 0) close(stdin_);
  }

  void write_input(const std::string& text) {
    [[maybe_unused]] auto n = ::write(stdin_, text.data(), text.size());
  }
  void close_input() {
    if (stdin_ >= 0) close(stdin_);
    stdin_ = -1;
  }
  void signal(int sig) { kill(pid_, sig); }
  std::string output() const {
    std::ifstream in(output_file_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) const {
    auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (output().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  // Waits for exit; kills the child when `timeout` passes first.
  ProcessResult wait(std::chrono::milliseconds timeout) {
    ProcessResult result;
    auto end = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    for (;;) {
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) break;
      if (std::chrono::steady_clock::now() > end) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        result.output = "(killed after timeout)\n";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    waited_ = true;
    result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - begin_);
    if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
    result.output += output();
    return result;
  }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  bool waited_ = false;
  std::filesystem::path output_file_;
  std::chrono::steady_clock::time_point begin_;
};

// Runs a command to completion with a shell, for builds.
inline int run_shell(const std::string& command) { return std::system(command.c_str()); }

}  // namespace lotus::testing
