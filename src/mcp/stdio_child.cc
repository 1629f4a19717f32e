#include "mcp/stdio_child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "lotus/strings.h"

namespace lotus::mcp {

Result<std::unique_ptr<StdioChild>> StdioChild::spawn(const std::string& command,
                                                      const std::vector<std::string>& args,
                                                      const std::map<std::string, std::string>& env,
                                                      const std::filesystem::path& stderr_file) {
  if (command.empty()) return absl::InvalidArgumentError("no command given");
  int in[2], out[2], exec_error[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(exec_error, O_CLOEXEC) != 0) {
    return absl::InternalError(cat("cannot make pipes: ", strerror(errno)));
  }
  int err = open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  std::vector<std::string> argv_text = {command};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (env.count(entry.substr(0, entry.find('='))) == 0) env_text.push_back(std::move(entry));
  }
  for (const auto& [key, value] : env) env_text.push_back(cat(key, "=", value));
  std::vector<char*> envp;
  for (std::string& e : env_text) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(cat("cannot fork: ", strerror(errno)));
  if (pid == 0) {
    setpgid(0, 0);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);  // LOTUS blocks signals in its threads
    signal(SIGPIPE, SIG_DFL);
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err >= 0 ? err : open("/dev/null", O_WRONLY), STDERR_FILENO);
    execvpe(argv[0], argv.data(), envp.data());
    int code = errno;
    [[maybe_unused]] auto n = ::write(exec_error[1], &code, sizeof code);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(exec_error[1]);
  if (err >= 0) close(err);
  int code = 0;
  ssize_t n = ::read(exec_error[0], &code, sizeof code);  // EOF: exec worked
  close(exec_error[0]);
  if (n == sizeof code) {
    waitpid(pid, nullptr, 0);
    close(in[1]);
    close(out[0]);
    return absl::NotFoundError(cat("cannot run \"", command, "\": ", strerror(code)));
  }
  auto child = std::unique_ptr<StdioChild>(new StdioChild());
  child->pid_ = pid;
  child->stdin_fd_ = in[1];
  child->stdout_fd_ = out[0];
  if (pipe2(child->wake_, O_CLOEXEC) != 0) {
    child->stop(std::chrono::milliseconds(0));
    return absl::InternalError(cat("cannot make a pipe: ", strerror(errno)));
  }
  child->writer_ = std::make_unique<LineWriter>(child->stdin_fd_);
  return child;
}

StdioChild::~StdioChild() {
  stop(std::chrono::milliseconds(0));
  for (int fd : {stdout_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) close(fd);
  }
}

ReadEnd StdioChild::read(size_t max_line_bytes, const LineHandlers& handlers) {
  return read_lines(stdout_fd_, wake_[0], max_line_bytes, handlers);
}

std::string StdioChild::stop(std::chrono::milliseconds grace) {
  if (wake_[1] >= 0) {
    [[maybe_unused]] auto n = ::write(wake_[1], "x", 1);
  }
  if (stdin_fd_ >= 0) {
    close(stdin_fd_);  // the polite way to ask an MCP stdio server to leave
    stdin_fd_ = -1;
  }
  if (pid_ <= 0 || reaped_) return ended_;
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + grace;
  bool exited = false;
  while (!(exited = waitpid(pid_, &status, WNOHANG) == pid_) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!exited) {
    kill(-pid_, SIGTERM);
    auto term_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    while (!(exited = waitpid(pid_, &status, WNOHANG) == pid_) &&
           std::chrono::steady_clock::now() < term_deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (!exited) {
    kill(-pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  kill(-pid_, SIGKILL);  // whatever it left running in its group
  reaped_ = true;
  ended_ = WIFEXITED(status)     ? cat("exited with code ", WEXITSTATUS(status))
           : WIFSIGNALED(status) ? cat("killed by signal ", WTERMSIG(status))
                                 : std::string("ended");
  return ended_;
}

}  // namespace lotus::mcp
