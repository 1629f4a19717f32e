#include "file_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "lotus/channel.h"
#include "lotus/strings.h"
#include "runtime/module_factory.h"

namespace lotus::perception {
namespace {

constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM |
                                IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                                IN_EXCL_UNLINK;
constexpr size_t kMaxProblems = 10;

std::string error_text(int error_number) { return std::generic_category().message(error_number); }

std::string read_first_line(const char* file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line.empty() ? "unknown" : line;
}

std::string join(const std::string& dir, std::string_view entry_name) {
  std::string out = dir;
  if (out.empty() || out.back() != '/') out.push_back('/');
  out.append(entry_name);
  return out;
}

// `path` is `dir` or below it.
bool is_within(const std::string& path, const std::string& dir) {
  if (path.size() < dir.size() || path.compare(0, dir.size(), dir) != 0) return false;
  return path.size() == dir.size() || dir.back() == '/' || path[dir.size()] == '/';
}

std::string parent_of(const std::string& path) {
  std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "/" : parent;
}

// An absolute, normalized folder path from config or a tool argument; "~"
// and "~/..." expand to $HOME. Relative paths are refused: a module has no
// meaningful working directory.
Result<std::string> resolve_folder(const Json& value, std::string_view what) {
  if (!value.is_string() || value.get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(
        cat(what, " must be the path of a folder (a non-empty string), got ", value.dump()));
  }
  std::string text = value.get<std::string>();
  if (text == "~" || text.starts_with("~/")) {
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
      return absl::FailedPreconditionError(
          cat(what, " \"", text, "\" starts with ~ but HOME is not set"));
    }
    text = std::string(home) + text.substr(1);
  }
  std::filesystem::path path(text);
  if (!path.is_absolute()) {
    return absl::InvalidArgumentError(
        cat(what, " \"", text, "\" must be an absolute path (or start with ~/)"));
  }
  std::string normal = path.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

Status check_folder(const std::string& path, std::string_view what) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    return absl::NotFoundError(cat(what, " \"", path, "\" does not exist"));
  }
  if (ec) return absl::PermissionDeniedError(cat(what, " \"", path, "\": ", ec.message()));
  if (status.type() != std::filesystem::file_type::directory) {
    return absl::InvalidArgumentError(cat(what, " \"", path,
                                          "\" is not a directory; watch the folder that holds it "
                                          "(a subscription filter can pick the file)"));
  }
  return absl::OkStatus();
}

// Well-formed UTF-8 (RFC 3629: no overlong forms, surrogates or values past
// U+10FFFF), which is what JSON text must be.
bool is_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    size_t length = 0;
    unsigned char low = 0x80;  // allowed range of the second byte
    unsigned char high = 0xBF;
    if (lead < 0x80) {
      length = 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      const auto byte = static_cast<unsigned char>(text[i + k]);
      if (k == 1 ? (byte < low || byte > high) : (byte & 0xC0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

// File names are bytes, JSON text is UTF-8 (nlohmann refuses to serialize
// anything else), so a name that is not UTF-8 is published with U+FFFD in
// place of the bad bytes.
std::string as_utf8(const std::string& text) {
  return Json::parse(Json(text).dump(-1, ' ', false, Json::error_handler_t::replace))
      .get<std::string>();
}

std::vector<std::string> string_list(const Json& value, std::string_view key) {
  if (!value.is_array()) {
    throw std::invalid_argument(
        cat("file_watcher config: ", key, " must be a list of strings, got ", value.dump()));
  }
  std::vector<std::string> out;
  for (const Json& item : value) {
    if (!item.is_string()) {
      throw std::invalid_argument(
          cat("file_watcher config: ", key, " must hold only strings, got ", item.dump()));
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

Status watch_error(int error_number, std::string_view dir) {
  switch (error_number) {
    case ENOSPC:
      return absl::ResourceExhaustedError(
          cat("cannot watch \"", dir,
              "\": the inotify watch limit is reached (fs.inotify.max_user_watches = ",
              read_first_line("/proc/sys/fs/inotify/max_user_watches"),
              "); raise it as root with `sysctl fs.inotify.max_user_watches=524288` (add the "
              "setting to /etc/sysctl.d/ to keep it), or watch fewer folders or ignore more"));
    case ENOENT:
      return absl::NotFoundError(cat("cannot watch \"", dir, "\": it does not exist"));
    case ENOTDIR:
      return absl::InvalidArgumentError(cat("cannot watch \"", dir, "\": not a directory"));
    case EACCES:
      return absl::PermissionDeniedError(
          cat("cannot watch \"", dir, "\": permission denied (lotus needs read access to it)"));
    case ENOMEM:
      return absl::ResourceExhaustedError(
          cat("cannot watch \"", dir, "\": the kernel is out of memory for inotify watches"));
    default:
      return absl::InternalError(
          cat("cannot watch \"", dir, "\": inotify_add_watch failed: ", error_text(error_number)));
  }
}

Status inotify_init_error(int error_number) {
  if (error_number == EMFILE) {
    return absl::ResourceExhaustedError(
        cat("cannot start inotify: the per-user instance limit is reached "
            "(fs.inotify.max_user_instances = ",
            read_first_line("/proc/sys/fs/inotify/max_user_instances"),
            "); raise it as root with `sysctl fs.inotify.max_user_instances=1024`"));
  }
  return absl::InternalError(cat("cannot start inotify: ", error_text(error_number)));
}

FileWatcher::~FileWatcher() { stop(); }

Task<void> FileWatcher::initialize() {
  const Json& settings = config();
  std::vector<std::string> paths = string_list(settings.value("paths", Json::array()), "paths");
  ignore_ = string_list(settings.value("ignore", Json::array()), "ignore");
  Json recursive = settings.value("recursive", Json(true));
  if (!recursive.is_boolean()) {
    throw std::invalid_argument(
        cat("file_watcher config: recursive must be true or false, got ", recursive.dump()));
  }
  recursive_default_ = recursive.get<bool>();
  Json debounce = settings.value("debounce_ms", Json(50));
  if (!debounce.is_number_integer() || debounce.get<int64_t>() < 0) {
    throw std::invalid_argument(
        cat("file_watcher config: debounce_ms must be a whole number of milliseconds >= 0, got ",
            debounce.dump()));
  }
  debounce_ = std::chrono::milliseconds(debounce.get<int64_t>());

  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) throw std::runtime_error(std::string(message_of(inotify_init_error(errno))));
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    throw std::runtime_error(
        cat("cannot create the watcher's wake-up eventfd: ", error_text(errno)));
  }

  tool("watch", &FileWatcher::watch);
  tool("unwatch", &FileWatcher::unwatch);
  tool("list_watched", &FileWatcher::list_watched);

  // Folders the watch tool added before a restart or reload.
  std::vector<std::pair<Json, bool>> remembered;
  if (auto stored = get_state("tool_watches"); stored.ok() && stored->is_array()) {
    for (const Json& item : *stored) {
      if (!item.is_object()) continue;
      Json flag = item.value("recursive", Json(recursive_default_));
      remembered.emplace_back(item.value("path", Json()),
                              flag.is_boolean() ? flag.get<bool>() : recursive_default_);
    }
  }

  size_t directories = 0;
  size_t watched = 0;
  {
    std::lock_guard lock(mutex_);
    auto add = [&](const Json& value, bool recursive_root, bool from_tool) {
      Result<std::string> path = resolve_folder(value, "watched folder");
      Status status = path.ok() ? check_folder(*path, "watched folder") : path.status();
      if (status.ok() && roots_.count(*path) > 0) return;
      Result<size_t> added =
          status.ok() ? add_root_locked(*path, recursive_root, from_tool) : Result<size_t>(status);
      if (added.ok()) {
        directories += *added;
        return;
      }
      ++config_failures_;
      std::string text = cat(from_tool ? "folder remembered from the watch tool" : "config paths",
                             ": ", message_of(added.status()));
      log(LogLevel::kWarn, text);
      problem_locked(std::move(text));
    };
    for (const std::string& path : paths) add(Json(path), recursive_default_, false);
    for (const auto& [path, recursive_root] : remembered) add(path, recursive_root, true);
    watched = roots_.size();
  }
  thread_ = std::thread([this] { run(); });
  log(LogLevel::kInfo, cat("watching ", watched, " folder(s), ", directories,
                           " directories in all; debounce ", debounce_.count(), " ms"));
  co_return;
}

Task<void> FileWatcher::shutdown() {
  stop();
  co_return;
}

void FileWatcher::stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) != static_cast<ssize_t>(sizeof one)) {
      // Only a full eventfd counter fails, and that already wakes the thread.
      log(LogLevel::kDebug, cat("waking the watcher thread: ", error_text(errno)));
    }
    thread_.join();  // it publishes what is still waiting before it ends
  }
  std::lock_guard lock(mutex_);
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  inotify_fd_ = -1;
  wake_fd_ = -1;
  dirs_.clear();
  roots_.clear();
}

Task<Json> FileWatcher::health_check() {
  std::lock_guard lock(mutex_);
  std::string reason;
  if (thread_failed_.load()) {
    reason = "the watcher thread stopped; no changes are reported";
  } else if (limit_hits_.load() > 0) {
    reason = "the inotify watch limit was reached; some folders are not watched";
  } else if (overflows_.load() > 0) {
    reason = "the inotify queue overflowed; some changes were lost";
  } else if (config_failures_ > 0) {
    reason = "some configured folders could not be watched";
  }
  Json health{{"status", reason.empty() ? "healthy" : "degraded"},
              {"watched", roots_.size()},
              {"watched_directories", dirs_.size()},
              {"events_published", published_.load()},
              {"events_coalesced", coalesced_.load()},
              {"publish_failures", publish_failures_.load()},
              {"queue_overflows", overflows_.load()},
              {"watch_limit_hits", limit_hits_.load()},
              {"recent_problems", problems_}};
  if (!reason.empty()) health["reason"] = reason;
  co_return health;
}

// --- tools -------------------------------------------------------------------

Task<ToolResult> FileWatcher::watch(const Json& arguments) {
  if (!arguments.contains("path")) {
    co_return absl::InvalidArgumentError(
        "watch: \"path\" is required: the absolute path of a folder to watch");
  }
  Result<std::string> path = resolve_folder(arguments["path"], "watch: path");
  if (!path.ok()) co_return path.status();
  bool recursive = recursive_default_;
  if (auto it = arguments.find("recursive"); it != arguments.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      co_return absl::InvalidArgumentError(
          cat("watch: \"recursive\" must be true or false, got ", it->dump()));
    }
    recursive = it->get<bool>();
  }
  if (Status status = check_folder(*path, "watch: path"); !status.ok()) co_return status;

  Json result;
  Json remembered;
  {
    std::lock_guard lock(mutex_);
    if (inotify_fd_ < 0) co_return absl::FailedPreconditionError("watch: the watcher is stopped");
    auto existing = roots_.find(*path);
    if (existing != roots_.end() && existing->second.recursive == recursive) {
      existing->second.from_tool = true;
      result = Json{{"path", *path},
                    {"recursive", recursive},
                    {"directories", directories_of_locked(*path)},
                    {"already_watched", true}};
    } else {
      std::optional<Root> previous;
      if (existing != roots_.end()) {
        previous = existing->second;
        remove_root_locked(*path);
      }
      Result<size_t> added = add_root_locked(*path, recursive, true);
      if (!added.ok() && previous) {
        // Keep watching it as before rather than not at all.
        add_root_locked(*path, previous->recursive, previous->from_tool).IgnoreError();
      }
      if (!added.ok()) {
        std::string text = cat("watch: ", message_of(added.status()));
        log(LogLevel::kWarn, text);
        problem_locked(text);
        co_return Status(added.status().code(), text);
      }
      result = Json{{"path", *path}, {"recursive", recursive}, {"directories", *added}};
    }
    remembered = tool_roots_locked();
  }
  remember_tool_roots(remembered);
  co_return result;
}

Task<ToolResult> FileWatcher::unwatch(const Json& arguments) {
  if (!arguments.contains("path")) {
    co_return absl::InvalidArgumentError(
        "unwatch: \"path\" is required: the folder to stop watching");
  }
  Result<std::string> path = resolve_folder(arguments["path"], "unwatch: path");
  if (!path.ok()) co_return path.status();
  Json result;
  Json remembered;
  {
    std::lock_guard lock(mutex_);
    if (roots_.count(*path) == 0) {
      std::string watched;
      for (const auto& [root, info] : roots_) watched += cat(watched.empty() ? "" : ", ", root);
      co_return absl::NotFoundError(cat("unwatch: \"", *path, "\" is not watched (watched: ",
                                        watched.empty() ? "nothing" : watched, ")"));
    }
    size_t released = remove_root_locked(*path);
    result = Json{{"path", *path}, {"unwatched", true}, {"directories_released", released}};
    remembered = tool_roots_locked();
  }
  remember_tool_roots(remembered);
  co_return result;
}

Task<ToolResult> FileWatcher::list_watched(const Json&) {
  std::lock_guard lock(mutex_);
  Json watched = Json::array();
  for (const auto& [path, root] : roots_) {
    watched.push_back(Json{{"path", path},
                           {"recursive", root.recursive},
                           {"directories", directories_of_locked(path)},
                           {"source", root.from_tool ? "tool" : "config"}});
  }
  co_return Json{{"watched", std::move(watched)},
                 {"directories", dirs_.size()},
                 {"ignore", ignore_},
                 {"debounce_ms", debounce_.count()}};
}

Json FileWatcher::tool_roots_locked() const {
  Json out = Json::array();
  for (const auto& [path, root] : roots_) {
    if (root.from_tool) out.push_back(Json{{"path", path}, {"recursive", root.recursive}});
  }
  return out;
}

void FileWatcher::remember_tool_roots(const Json& roots) {
  if (Status status = set_state("tool_watches", roots); !status.ok()) {
    log(LogLevel::kWarn,
        cat("cannot remember the watched folders for the next start: ", message_of(status)));
  }
}

// --- bookkeeping ---------------------------------------------------------------

bool FileWatcher::ignored(std::string_view entry_name, std::string_view path) const {
  for (const std::string& glob : ignore_) {
    bool whole_path = glob.find('/') != std::string::npos;
    if (glob_matches(glob, whole_path ? path : entry_name)) return true;
  }
  return false;
}

void FileWatcher::problem_locked(std::string text) {
  problems_.push_back(std::move(text));
  if (problems_.size() > kMaxProblems) problems_.erase(problems_.begin());
}

Result<size_t> FileWatcher::add_root_locked(const std::string& path, bool recursive,
                                            bool from_tool) {
  roots_[path] = Root{recursive, from_tool, -1};
  size_t added = 0;
  Result<int> top = add_tree_locked(path, {path}, recursive, /*follow_top=*/true, nullptr, &added);
  if (!top.ok()) {
    remove_root_locked(path);
    if (top.status().code() == absl::StatusCode::kResourceExhausted) limit_hits_.fetch_add(1);
    return top.status();
  }
  roots_[path].top_wd = *top;
  return added;
}

size_t FileWatcher::remove_root_locked(const std::string& path) {
  if (roots_.erase(path) == 0) return 0;
  size_t released = 0;
  for (auto it = dirs_.begin(); it != dirs_.end();) {
    if (it->second.roots.erase(path) > 0 && it->second.roots.empty()) {
      inotify_rm_watch(inotify_fd_, it->first);
      it = dirs_.erase(it);
      ++released;
    } else {
      ++it;
    }
  }
  return released;
}

void FileWatcher::drop_root_locked(const std::string& path, std::string_view why) {
  remove_root_locked(path);
  std::string text = cat("stopped watching \"", path, "\": ", why);
  log(LogLevel::kWarn, text);
  problem_locked(std::move(text));
}

Result<int> FileWatcher::add_tree_locked(const std::string& top, const std::set<std::string>& roots,
                                         bool recursive, bool follow_top,
                                         std::vector<Change>* found, size_t* added) {
  int top_wd = -1;
  std::vector<std::string> stack{top};
  while (!stack.empty()) {
    std::string dir = std::move(stack.back());
    stack.pop_back();
    const bool is_top = top_wd < 0;
    uint32_t mask = kWatchMask | (is_top && follow_top ? 0 : IN_DONT_FOLLOW);
    int wd = inotify_add_watch(inotify_fd_, dir.c_str(), mask);
    if (wd < 0) {
      int error_number = errno;
      Status status = watch_error(error_number, dir);
      if (is_top || error_number == ENOSPC) return status;
      // A subfolder that vanished meanwhile is no news; one we may not read is.
      if (error_number != ENOENT && error_number != ENOTDIR) {
        std::string text = cat("not watching a subfolder: ", message_of(status));
        log(LogLevel::kWarn, text);
        problem_locked(std::move(text));
      }
      continue;
    }
    if (is_top) top_wd = wd;
    Dir& entry = dirs_[wd];
    if (entry.path.empty()) {
      entry.path = dir;
      ++*added;
    }
    entry.roots.insert(roots.begin(), roots.end());
    if (!recursive) break;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string entry_name = it->path().filename().string();
      std::string path = join(dir, entry_name);
      if (ignored(entry_name, path)) continue;
      std::error_code type_ec;
      bool is_dir = it->symlink_status(type_ec).type() == std::filesystem::file_type::directory;
      if (found != nullptr) found->push_back(Change{path, "created", is_dir, {}});
      if (is_dir) stack.push_back(std::move(path));
    }
  }
  return top_wd;
}

void FileWatcher::drop_watch_locked(int wd, bool remove_from_kernel) {
  auto it = dirs_.find(wd);
  if (it == dirs_.end()) return;
  if (remove_from_kernel) inotify_rm_watch(inotify_fd_, wd);
  dirs_.erase(it);
  std::vector<std::string> gone;
  for (const auto& [root, info] : roots_) {
    if (info.top_wd == wd) gone.push_back(root);
  }
  for (const std::string& root : gone) {
    drop_root_locked(root, "the folder was deleted, moved away or unmounted");
  }
}

void FileWatcher::remove_subtree_locked(const std::string& path) {
  std::vector<int> below;
  for (const auto& [wd, dir] : dirs_) {
    if (is_within(dir.path, path)) below.push_back(wd);
  }
  for (int wd : below) drop_watch_locked(wd, true);
}

void FileWatcher::rename_subtree_locked(const std::string& from, const std::string& to,
                                        const std::set<std::string>& covering) {
  // Roots whose own folder was inside the moved one have moved: they end,
  // as a root that is moved itself does.
  std::vector<std::string> inner;
  for (const auto& [root, info] : roots_) {
    auto top = dirs_.find(info.top_wd);
    if (top != dirs_.end() && is_within(top->second.path, from)) inner.push_back(root);
  }
  for (const std::string& root : inner) {
    drop_root_locked(root, cat("it was moved to \"", to, "\""));
  }
  std::vector<int> orphaned;
  for (auto& [wd, dir] : dirs_) {
    if (!is_within(dir.path, from)) continue;
    dir.path = to + dir.path.substr(from.size());
    dir.roots = covering;
    if (dir.roots.empty()) orphaned.push_back(wd);
  }
  for (int wd : orphaned) drop_watch_locked(wd, true);
}

void FileWatcher::watch_new_folder_locked(const std::string& path,
                                          const std::set<std::string>& covering,
                                          std::vector<Change>* found) {
  size_t added = 0;
  Result<int> top = add_tree_locked(path, covering, true, /*follow_top=*/false, found, &added);
  if (top.ok()) return;
  switch (top.status().code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
      return;  // gone again, or replaced by a file, before we got to it
    case absl::StatusCode::kResourceExhausted:
      limit_hits_.fetch_add(1);
      [[fallthrough]];
    default: {
      std::string text = cat("new folder not watched: ", message_of(top.status()));
      log(LogLevel::kWarn, text);
      problem_locked(std::move(text));
    }
  }
}

std::set<std::string> FileWatcher::recursive_roots_locked(
    const std::set<std::string>& roots) const {
  std::set<std::string> out;
  for (const std::string& root : roots) {
    auto it = roots_.find(root);
    if (it != roots_.end() && it->second.recursive) out.insert(root);
  }
  return out;
}

size_t FileWatcher::directories_of_locked(const std::string& root) const {
  return std::count_if(dirs_.begin(), dirs_.end(),
                       [&](const auto& entry) { return entry.second.roots.count(root) > 0; });
}

bool FileWatcher::is_watched_locked(const std::string& path) const {
  return std::any_of(dirs_.begin(), dirs_.end(),
                     [&](const auto& entry) { return entry.second.path == path; });
}

// --- the watcher thread ----------------------------------------------------------

void FileWatcher::run() {
  std::vector<Change> out;
  for (;;) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int ready = ::poll(fds, 2, poll_timeout_ms());
    if (ready < 0 && errno != EINTR) {
      thread_failed_.store(true);
      std::string text = cat("watcher thread stopped: poll failed: ", error_text(errno));
      log(LogLevel::kError, text);
      std::lock_guard lock(mutex_);
      problem_locked(std::move(text));
      break;
    }
    const bool stopping = ready > 0 && (fds[1].revents & POLLIN) != 0;
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) drain(&out);
    // At shutdown everything still waiting goes out: nothing is lost.
    flush_pending(/*only_due=*/!stopping, &out);
    emit(&out);
    if (stopping) break;
  }
}

void FileWatcher::drain(std::vector<Change>* out) {
  alignas(inotify_event) char buffer[64 * 1024];
  Moves moves;
  for (;;) {
    ssize_t length = ::read(inotify_fd_, buffer, sizeof buffer);
    if (length < 0 && errno == EINTR) continue;
    if (length <= 0) break;  // EAGAIN: read everything there was
    std::lock_guard lock(mutex_);
    for (ssize_t offset = 0; offset < length;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
      handle_locked(*event, &moves, out);
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  // A folder moved out of the watched trees (no matching moved_to): its
  // watches would report under a path that is no longer true.
  std::lock_guard lock(mutex_);
  for (const auto& [cookie, moved] : moves) {
    if (moved.is_dir) remove_subtree_locked(moved.path);
  }
}

void FileWatcher::handle_locked(const inotify_event& event, Moves* moves,
                                std::vector<Change>* out) {
  if ((event.mask & IN_Q_OVERFLOW) != 0) {
    overflows_.fetch_add(1);
    std::string text =
        cat("the inotify event queue overflowed, so some changes were not reported "
            "(fs.inotify.max_queued_events = ",
            read_first_line("/proc/sys/fs/inotify/max_queued_events"),
            "; raise it as root with `sysctl fs.inotify.max_queued_events=65536`)");
    log(LogLevel::kWarn, text);
    problem_locked(std::move(text));
    return;
  }
  if ((event.mask & IN_IGNORED) != 0) {
    drop_watch_locked(event.wd, /*remove_from_kernel=*/false);
    return;
  }
  auto it = dirs_.find(event.wd);
  if (it == dirs_.end()) return;  // a watch we have just removed
  const std::string dir = it->second.path;
  const std::set<std::string> covering = recursive_roots_locked(it->second.roots);
  const bool is_dir = (event.mask & IN_ISDIR) != 0;

  if (event.len == 0 || event.name[0] == '\0') {
    if ((event.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
      self_gone_locked(event.wd, dir, (event.mask & IN_DELETE_SELF) != 0, out);
    }
    return;
  }
  std::string entry_name(event.name);  // NUL-padded to event.len
  std::string path = join(dir, entry_name);
  if (ignored(entry_name, path)) return;

  if ((event.mask & IN_CREATE) != 0) {
    note(Change{path, "created", is_dir, {}}, out);
    if (is_dir && !covering.empty()) {
      // Whatever was made inside before the watch existed is reported too.
      std::vector<Change> found;
      watch_new_folder_locked(path, covering, &found);
      for (Change& change : found) note(std::move(change), out);
    }
  }
  if ((event.mask & (IN_MODIFY | IN_ATTRIB)) != 0) note(Change{path, "modified", is_dir, {}}, out);
  if ((event.mask & IN_DELETE) != 0) note(Change{path, "deleted", is_dir, {}}, out);
  if ((event.mask & IN_MOVED_FROM) != 0) {
    note(Change{path, "moved_from", is_dir, {}}, out);
    (*moves)[event.cookie] = Moved{path, is_dir};
  }
  if ((event.mask & IN_MOVED_TO) != 0) {
    std::string from;
    if (auto moved = moves->find(event.cookie); moved != moves->end()) {
      from = moved->second.path;
      moves->erase(moved);
    }
    if (is_dir) {
      if (!from.empty()) rename_subtree_locked(from, path, covering);
      if (!covering.empty() && !is_watched_locked(path)) {
        watch_new_folder_locked(path, covering, nullptr);
      }
    }
    note(Change{path, "moved_to", is_dir, from}, out);
  }
}

void FileWatcher::self_gone_locked(int wd, const std::string& dir, bool deleted,
                                   std::vector<Change>* out) {
  std::vector<std::string> gone;
  for (const auto& [root, info] : roots_) {
    if (info.top_wd == wd) gone.push_back(root);
  }
  if (gone.empty()) return;  // a subfolder: its parent's watch reported it
  if (!is_watched_locked(parent_of(dir))) {
    note(Change{dir, deleted ? "deleted" : "moved_from", true, {}}, out);
  }
  for (const std::string& root : gone) {
    drop_root_locked(root, deleted ? "the folder was deleted" : "the folder was moved or renamed");
  }
}

void FileWatcher::note(Change change, std::vector<Change>* out) {
  const bool foldable = change.change == "created" || change.change == "modified";
  if (!foldable || debounce_.count() == 0) {
    // Whatever is waiting happened first, so it goes first.
    flush_pending(/*only_due=*/false, out);
    out->push_back(std::move(change));
    return;
  }
  if (auto it = pending_.find(change.path); it != pending_.end()) {
    coalesced_.fetch_add(1, std::memory_order_relaxed);
    return;  // a waiting "created" or "modified" already covers this one
  }
  std::string path = change.path;
  pending_.emplace(std::move(path),
                   Pending{std::move(change), Clock::now() + debounce_, next_seq_++});
}

void FileWatcher::flush_pending(bool only_due, std::vector<Change>* out) {
  if (pending_.empty()) return;
  const auto now = Clock::now();
  std::vector<Pending> ready;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (!only_due || it->second.due <= now) {
      ready.push_back(std::move(it->second));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  std::sort(ready.begin(), ready.end(),
            [](const Pending& a, const Pending& b) { return a.seq < b.seq; });
  for (Pending& p : ready) out->push_back(std::move(p.change));
}

int FileWatcher::poll_timeout_ms() const {
  if (pending_.empty()) return -1;
  auto first = std::min_element(pending_.begin(), pending_.end(), [](const auto& a, const auto& b) {
                 return a.second.due < b.second.due;
               })->second.due;
  auto wait = std::chrono::ceil<std::chrono::milliseconds>(first - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, wait.count()));
}

void FileWatcher::emit(std::vector<Change>* out) {
  for (Change& change : *out) {
    Json data{{"change", std::move(change.change)}, {"is_dir", change.is_dir}};
    if (is_utf8(change.path) && is_utf8(change.from)) {
      data["path"] = std::move(change.path);
      if (!change.from.empty()) data["from"] = std::move(change.from);
    } else {
      data["path"] = as_utf8(change.path);
      if (!change.from.empty()) data["from"] = as_utf8(change.from);
      data["path_lossy"] = true;  // the name on disk is not UTF-8; bad bytes became U+FFFD
    }
    // A change on disk starts a trace of its own, whatever the module was
    // handling when it was seen.
    EventMetadata metadata;
    metadata.trace_id = EventId::generate().to_string();
    Status status = publish(kFileChangedChannel, std::move(data), std::move(metadata));
    if (status.ok()) {
      published_.fetch_add(1, std::memory_order_relaxed);
    } else if (publish_failures_.fetch_add(1) % 1000 == 0) {
      log(LogLevel::kWarn, cat("cannot publish ", kFileChangedChannel, ": ", message_of(status)));
    }
  }
  out->clear();
}

static lotus::RegisterBuiltinModule<FileWatcher> registered("file_watcher");

}  // namespace lotus::perception
