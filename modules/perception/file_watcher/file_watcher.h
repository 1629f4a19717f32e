// FileWatcher: the built-in perception module that turns file system changes
// under watched folders into `perception.file_changed` events.
//
// Linux inotify, read on a thread of its own (poll() on the inotify fd and an
// eventfd that shutdown() signals), so a busy folder never occupies the bus's
// workers. Folders are watched recursively, including ones created or moved in
// later; ignore globs keep noise (.git, build output, editor swap files) from
// being watched or reported; repeated modifications of one path within
// debounce_ms become one event, and a new file's first writes fold into its
// "created". Events keep their order: anything not folded (deleted, moved_*)
// first flushes what is waiting. Limits (watch count, queue overflow) are
// logged, counted and shown in health, never silent.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "lotus/module.h"

struct inotify_event;

namespace lotus::perception {

inline constexpr std::string_view kFileChangedChannel = "perception.file_changed";

// Why inotify_add_watch() failed on `dir`, as a message a user can act on:
// ENOSPC names fs.inotify.max_user_watches and how to raise it.
Status watch_error(int error_number, std::string_view dir);
// Why inotify_init1() failed: EMFILE names fs.inotify.max_user_instances.
Status inotify_init_error(int error_number);

class FileWatcher final : public Module {
 public:
  FileWatcher() = default;
  ~FileWatcher() override;

  Task<void> initialize() override;
  Task<void> shutdown() override;
  Task<Json> health_check() override;

 private:
  using Clock = std::chrono::steady_clock;

  struct Root {
    bool recursive = true;
    bool from_tool = false;  // remembered in state across restarts
    int top_wd = -1;
  };
  // One inotify watch. Several roots may cover the same folder (nested
  // roots); the watch goes when the last of them does.
  struct Dir {
    std::string path;
    std::set<std::string> roots;
  };
  struct Change {
    std::string path;
    std::string change;  // created | modified | deleted | moved_from | moved_to
    bool is_dir = false;
    std::string from;  // moved_to: where it came from, when that was seen
  };
  struct Pending {
    Change change;
    Clock::time_point due;
    uint64_t seq = 0;
  };
  struct Moved {
    std::string path;
    bool is_dir = false;
  };
  using Moves = std::map<uint32_t, Moved>;  // by inotify cookie

  // Tools.
  Task<ToolResult> watch(const Json& arguments);
  Task<ToolResult> unwatch(const Json& arguments);
  Task<ToolResult> list_watched(const Json& arguments);

  void stop();
  bool ignored(std::string_view entry_name, std::string_view path) const;

  // Watch bookkeeping; every *_locked function runs with mutex_ held.
  Result<size_t> add_root_locked(const std::string& path, bool recursive, bool from_tool);
  size_t remove_root_locked(const std::string& path);
  void drop_root_locked(const std::string& path, std::string_view why);
  Result<int> add_tree_locked(const std::string& top, const std::set<std::string>& roots,
                              bool recursive, bool follow_top, std::vector<Change>* found,
                              size_t* added);
  void drop_watch_locked(int wd, bool remove_from_kernel);
  void remove_subtree_locked(const std::string& path);
  void rename_subtree_locked(const std::string& from, const std::string& to,
                             const std::set<std::string>& covering);
  void watch_new_folder_locked(const std::string& path, const std::set<std::string>& covering,
                               std::vector<Change>* found);
  std::set<std::string> recursive_roots_locked(const std::set<std::string>& roots) const;
  size_t directories_of_locked(const std::string& root) const;
  bool is_watched_locked(const std::string& path) const;
  void problem_locked(std::string text);
  Json tool_roots_locked() const;
  void remember_tool_roots(const Json& roots);

  // The watcher thread.
  void run();
  void drain(std::vector<Change>* out);
  void handle_locked(const inotify_event& event, Moves* moves, std::vector<Change>* out);
  void self_gone_locked(int wd, const std::string& dir, bool deleted, std::vector<Change>* out);
  void note(Change change, std::vector<Change>* out);
  void flush_pending(bool only_due, std::vector<Change>* out);
  int poll_timeout_ms() const;
  void emit(std::vector<Change>* out);

  // Settings, fixed after initialize().
  bool recursive_default_ = true;
  std::vector<std::string> ignore_;
  std::chrono::milliseconds debounce_{50};

  int inotify_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;

  mutable std::mutex mutex_;  // guards roots_, dirs_, problems_, config_failures_
  std::map<std::string, Root> roots_;
  std::unordered_map<int, Dir> dirs_;
  std::vector<std::string> problems_;  // the most recent ones
  size_t config_failures_ = 0;

  // Only the watcher thread touches these.
  std::map<std::string, Pending> pending_;
  uint64_t next_seq_ = 0;

  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> coalesced_{0};
  std::atomic<uint64_t> publish_failures_{0};
  std::atomic<uint64_t> overflows_{0};
  std::atomic<uint64_t> limit_hits_{0};
  std::atomic<bool> thread_failed_{false};
};

}  // namespace lotus::perception
