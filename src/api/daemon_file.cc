#include "api/daemon_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "lotus/event.h"
#include "lotus/strings.h"

namespace lotus::api {
namespace fs = std::filesystem;

fs::path daemon_file(const fs::path& data_dir) { return data_dir / "daemon.json"; }

Status write_daemon_file(const fs::path& data_dir, const DaemonInfo& info) {
  std::error_code ec;
  fs::create_directories(data_dir, ec);
  const fs::path file = daemon_file(data_dir);
  const fs::path temporary = cat(file.string(), ".", ::getpid());
  const std::string text =
      Json{{"url", info.url}, {"pid", info.pid}, {"token_file", info.token_file.string()}}.dump() +
      "\n";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::PermissionDeniedError(
        cat("cannot write ", temporary.string(), ": ", std::strerror(errno)));
  }
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), file.c_str()) != 0) {
    ::unlink(temporary.c_str());
    return absl::InternalError(cat("cannot write ", file.string()));
  }
  return absl::OkStatus();
}

namespace {

std::optional<DaemonInfo> read_daemon_file(const fs::path& data_dir) {
  std::ifstream in(daemon_file(data_dir));
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  Json json = Json::parse(text.str(), nullptr, false);
  if (!json.is_object() || !json.contains("url") || !json["url"].is_string() ||
      !json.contains("pid") || !json["pid"].is_number_integer()) {
    return std::nullopt;
  }
  DaemonInfo info;
  info.url = json["url"].get<std::string>();
  info.pid = json["pid"].get<pid_t>();
  info.token_file = json.value("token_file", "");
  return info;
}

}  // namespace

void remove_daemon_file(const fs::path& data_dir) {
  auto info = read_daemon_file(data_dir);
  if (info && info->pid == ::getpid()) {
    std::error_code ec;
    fs::remove(daemon_file(data_dir), ec);
  }
}

std::optional<DaemonInfo> find_daemon(const fs::path& data_dir) {
  auto info = read_daemon_file(data_dir);
  if (!info || info->pid <= 0) return std::nullopt;
  if (::kill(info->pid, 0) != 0 && errno == ESRCH) return std::nullopt;
  return info;
}

}  // namespace lotus::api
