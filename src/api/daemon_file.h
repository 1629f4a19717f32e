// The daemon file: <data_dir>/daemon.json says where a running `lotus serve`
// listens, so `lotus health`, `modules`, `events` and `ask` talk to it
// instead of booting a nucleus of their own.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include "lotus/status.h"

namespace lotus::api {

struct DaemonInfo {
  std::string url;  // http://127.0.0.1:7777
  pid_t pid = 0;
  std::filesystem::path token_file;
};

std::filesystem::path daemon_file(const std::filesystem::path& data_dir);
// Written 0600, replaced atomically.
Status write_daemon_file(const std::filesystem::path& data_dir, const DaemonInfo& info);
// Removes the file if it still names this process.
void remove_daemon_file(const std::filesystem::path& data_dir);
// The daemon the file names when its process is alive; a stale file (the
// process is gone) is ignored.
std::optional<DaemonInfo> find_daemon(const std::filesystem::path& data_dir);

}  // namespace lotus::api
