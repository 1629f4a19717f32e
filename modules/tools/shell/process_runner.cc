#include "process_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>

#include "lotus/strings.h"

namespace lotus::tools {
namespace {

using Clock = std::chrono::steady_clock;

// After the child exits (or is killed), how long output still in the pipes
// is read before giving up on writers that escaped the process group.
constexpr std::chrono::milliseconds kDrainAfterExit{500};

std::string errno_text(int error_number) { return std::generic_category().message(error_number); }

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

struct Stream {
  Fd fd;
  std::string* kept = nullptr;
  uint64_t* total = nullptr;
  bool open() const { return fd.get() >= 0; }
};

// Reads what is available; closes the stream at end of file.
void drain(Stream& stream, size_t cap) {
  char buffer[16384];
  for (;;) {
    ssize_t n = ::read(stream.fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      stream.fd.reset();
      return;
    }
    *stream.total += static_cast<uint64_t>(n);
    if (stream.kept->size() < cap) {
      stream.kept->append(buffer, std::min(static_cast<size_t>(n), cap - stream.kept->size()));
    }
  }
}

struct SpawnGuard {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnGuard() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnGuard() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

bool ProcessGroups::add(pid_t group) {
  std::lock_guard lock(mutex_);
  if (closed_) return false;
  groups_.insert(group);
  return true;
}

void ProcessGroups::remove(pid_t group) {
  std::lock_guard lock(mutex_);
  groups_.erase(group);
}

size_t ProcessGroups::kill_all() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (pid_t group : groups_) ::kill(-group, SIGKILL);
  return groups_.size();
}

std::string signal_name(int signal) {
  const char* abbrev = ::sigabbrev_np(signal);
  if (abbrev == nullptr) return cat("signal ", signal);
  return cat("SIG", abbrev);
}

Result<ProcessOutcome> run_process(const ProcessSpec& spec, ProcessGroups& groups) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError("argv: the program to run is empty");
  }
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(cat("cannot create a pipe: ", errno_text(errno)));
  }
  Stream out{Fd(out_pipe[0])};
  Fd out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return absl::ResourceExhaustedError(cat("cannot create a pipe: ", errno_text(errno)));
  }
  Stream err{Fd(err_pipe[0])};
  Fd err_write(err_pipe[1]);

  SpawnGuard spawn;
  posix_spawn_file_actions_addopen(&spawn.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&spawn.actions, out_write.get(), 1);
  posix_spawn_file_actions_adddup2(&spawn.actions, err_write.get(), 2);
  posix_spawn_file_actions_addclosefrom_np(&spawn.actions, 3);
  if (!spec.cwd.empty()) posix_spawn_file_actions_addchdir_np(&spawn.actions, spec.cwd.c_str());
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setflags(&spawn.attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&spawn.attr, 0);
  posix_spawnattr_setsigmask(&spawn.attr, &none);
  posix_spawnattr_setsigdefault(&spawn.attr, &all);

  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  const auto start = Clock::now();
  pid_t pid = -1;
  int spawned =
      ::posix_spawnp(&pid, argv[0], &spawn.actions, &spawn.attr, argv.data(), envp.data());
  if (spawned != 0) {
    if (spawned == ENOENT || spawned == EACCES || spawned == ENOEXEC) {
      return absl::NotFoundError(cat("argv[0]: cannot run \"", spec.argv[0],
                                     "\": ", errno_text(spawned),
                                     spawned == ENOENT ? " (not found on PATH, or the working "
                                                         "folder is gone)"
                                                       : ""));
    }
    return absl::ResourceExhaustedError(
        cat("cannot start \"", spec.argv[0], "\": ", errno_text(spawned)));
  }
  out_write.reset();
  err_write.reset();
  const bool tracked = groups.add(pid);
  if (!tracked) ::kill(-pid, SIGKILL);  // shutting down: it must not outlive the module
  // Nonblocking reads: a grandchild may keep a pipe open after the child ends.
  ::fcntl(out.fd.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(err.fd.get(), F_SETFL, O_NONBLOCK);
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  ProcessOutcome outcome;
  out.kept = &outcome.out;
  out.total = &outcome.out_bytes;
  err.kept = &outcome.err;
  err.total = &outcome.err_bytes;
  const auto deadline = start + spec.timeout;
  std::optional<Clock::time_point> exited_at;
  auto child_exited = [&] {
    if (pidfd.get() >= 0) {
      pollfd p{pidfd.get(), POLLIN, 0};
      return ::poll(&p, 1, 0) > 0;
    }
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == pid;
  };
  auto end_group = [&] {
    // The child is a zombie until reaped below, so its group id cannot have
    // been reused: killing the group reaches only what it started.
    ::kill(-pid, SIGKILL);
  };

  for (;;) {
    const auto now = Clock::now();
    if (!exited_at && child_exited()) {
      exited_at = now;
      end_group();
    }
    if (!exited_at && now >= deadline && !outcome.timed_out) {
      outcome.timed_out = true;
      end_group();
    }
    if (exited_at && (!out.open() && !err.open())) break;
    if (exited_at && now - *exited_at >= kDrainAfterExit) break;

    std::array<pollfd, 3> fds{};
    nfds_t count = 0;
    if (out.open()) fds[count++] = pollfd{out.fd.get(), POLLIN, 0};
    if (err.open()) fds[count++] = pollfd{err.fd.get(), POLLIN, 0};
    const bool watch_exit = !exited_at && pidfd.get() >= 0;
    if (watch_exit) fds[count++] = pollfd{pidfd.get(), POLLIN, 0};
    Clock::time_point wake = exited_at ? *exited_at + kDrainAfterExit : deadline;
    if (outcome.timed_out && !exited_at) wake = now + std::chrono::milliseconds(50);
    if (!watch_exit && !exited_at) wake = std::min(wake, now + std::chrono::milliseconds(20));
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(wake - now);
    const int timeout_ms = static_cast<int>(std::clamp<int64_t>(wait.count(), 0, 60000));
    int ready = ::poll(fds.data(), count, timeout_ms);
    if (ready < 0 && errno != EINTR) break;
    if (out.open()) drain(out, spec.max_output_bytes);
    if (err.open()) drain(err, spec.max_output_bytes);
  }

  groups.remove(pid);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  outcome.duration = Clock::now() - start;
  if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
  return outcome;
}

}  // namespace lotus::tools
