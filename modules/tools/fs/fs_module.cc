// FsModule: the built-in `fs` module, the reasoning engine's hands on files:
// tools read, write, list and search, confined to config `roots`.
//
// Every path argument goes through AllowedRoots (.. applied, links resolved,
// then checked), files are opened with O_NOFOLLOW so a link swapped in after
// the check is not followed, and each tool caps what it returns (config).
// Overwrites are atomic (temporary file + rename). A search can read many
// files, so it runs off the bus's threads.
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <boost/regex.hpp>

#include "../common/allowed_roots.h"
#include "../common/offload.h"
#include "../common/tool_args.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "runtime/module_factory.h"

namespace lotus::tools {
namespace {
namespace fs = std::filesystem;

constexpr size_t kBinarySniffBytes = 8192;
constexpr size_t kMaxMatchLineBytes = 300;

struct Settings {
  AllowedRoots roots;
  int64_t max_read_bytes = 262144;
  int64_t max_write_bytes = 10485760;
  int64_t max_list_entries = 1000;
  int64_t max_search_results = 200;
  int64_t max_search_files = 20000;
  int64_t max_search_file_bytes = 2097152;
  std::set<std::string, std::less<>> skip_dirs;
};

std::string errno_text(int error_number) { return std::generic_category().message(error_number); }

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Status io_error(std::string_view what, const fs::path& path, int error_number) {
  std::string text =
      cat("path: cannot ", what, " \"", path.string(), "\": ", errno_text(error_number));
  switch (error_number) {
    case ENOENT:
      return absl::NotFoundError(text);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(text);
    case ELOOP:
      return absl::PermissionDeniedError(
          cat("path: \"", path.string(), "\" became a symbolic link after it was checked"));
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return absl::ResourceExhaustedError(text);
    default:
      return absl::InternalError(text);
  }
}

Result<ssize_t> read_at(int fd, char* buffer, size_t size, off_t offset, const fs::path& path) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, buffer + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("read", path, errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

Status write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("write", path, errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

mode_t current_umask() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("Umask:"))
      return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  }
  return 022;
}

std::string_view type_name(mode_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "dir";
  if (S_ISLNK(mode)) return "symlink";
  return "other";
}

Result<std::string> encoding_arg(const Json& args) {
  auto encoding = string_arg(args, "encoding");
  if (!encoding.ok()) return encoding.status();
  std::string value = encoding->value_or("text");
  if (value != "text" && value != "base64") {
    return absl::InvalidArgumentError(
        cat("encoding: must be \"text\" or \"base64\", got \"", value, "\""));
  }
  return value;
}

// Resolves the optional folder argument `path` (default: the first root).
Result<fs::path> folder_arg(const Settings& settings, const Json& args) {
  Result<fs::path> dir = args.is_object() && args.contains("path") && !args["path"].is_null()
                             ? settings.roots.resolve(args["path"], "path")
                         : settings.roots.roots().empty()
                             ? Result<fs::path>(absl::FailedPreconditionError(
                                   "path: no folder is allowed (config roots names none that "
                                   "exists)"))
                             : Result<fs::path>(settings.roots.roots().front());
  if (!dir.ok()) return dir.status();
  std::error_code ec;
  auto status = fs::status(*dir, ec);
  if (status.type() == fs::file_type::not_found) {
    return absl::NotFoundError(cat("path: \"", dir->string(), "\" does not exist"));
  }
  if (status.type() != fs::file_type::directory) {
    return absl::InvalidArgumentError(cat("path: \"", dir->string(), "\" is not a folder"));
  }
  return dir;
}

// The name to show for an entry: UTF-8 always; `*lossy` says whether bytes
// had to be replaced.
std::string shown_name(const std::string& name, bool* lossy) {
  bool replaced = false;
  std::string out = to_utf8(name, &replaced);
  if (replaced) *lossy = true;
  return out;
}

// Walks `dir` the way list and search do: links are never followed,
// skip_dirs and (unless include_hidden) dot names are not entered or shown.
// `visit` gets each entry and its lstat; returning false stops the walk.
class Walker {
 public:
  Walker(const Settings& settings, bool recursive, int64_t max_depth, bool include_hidden)
      : settings_(settings),
        recursive_(recursive),
        max_depth_(max_depth),
        include_hidden_(include_hidden) {}

  template <typename Visit>
  size_t walk(const fs::path& dir, Visit visit) {
    size_t unreadable = 0;
    std::error_code ec;
    auto options = fs::directory_options::skip_permission_denied;
    fs::recursive_directory_iterator it(dir, options, ec), end;
    if (ec) return 1;
    for (; it != end; it.increment(ec)) {
      if (ec) {
        ++unreadable;
        ec.clear();
        continue;
      }
      const fs::path& path = it->path();
      const std::string name = path.filename().string();
      struct stat info {};
      if (::lstat(path.c_str(), &info) != 0) {
        ++unreadable;
        it.disable_recursion_pending();
        continue;
      }
      if (settings_.roots.denied(path) != nullptr) {
        it.disable_recursion_pending();  // config deny: not shown, not entered
        continue;
      }
      const bool hidden = !include_hidden_ && name.starts_with(".");
      const bool is_dir = S_ISDIR(info.st_mode);
      if (is_dir && (!recursive_ || hidden || settings_.skip_dirs.contains(name) ||
                     (max_depth_ > 0 && it.depth() + 1 >= max_depth_))) {
        it.disable_recursion_pending();
      }
      if (hidden) continue;
      if (!visit(path, info)) break;
    }
    return unreadable;
  }

 private:
  const Settings& settings_;
  bool recursive_;
  int64_t max_depth_;
  bool include_hidden_;
};

std::string lower_ascii(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// The search itself: runs on a thread of its own with copies of everything.
struct Search {
  Settings settings;
  fs::path dir;
  std::optional<std::string> name;
  std::optional<std::string> content;
  bool regex = false;
  bool case_sensitive = true;
  int64_t max_results = 200;

  ToolResult run() const {
    std::optional<boost::regex> pattern;
    if (content && regex) {
      try {
        boost::regex::flag_type flags = boost::regex::ECMAScript;
        if (!case_sensitive) flags |= boost::regex::icase;
        pattern.emplace(*content, flags);
      } catch (const boost::regex_error& e) {
        return absl::InvalidArgumentError(
            cat("content: not a valid regular expression: ", e.what()));
      }
    }
    const std::string needle =
        content && !case_sensitive ? lower_ascii(*content) : content.value_or("");
    Json matches = Json::array();
    size_t files_scanned = 0;
    size_t binary = 0;
    size_t too_large = 0;
    size_t unreadable = 0;
    std::string truncated;
    bool lossy = false;
    Walker walker(settings, /*recursive=*/true, /*max_depth=*/0, /*include_hidden=*/true);
    unreadable += walker.walk(dir, [&](const fs::path& path, const struct stat& info) {
      if (!S_ISREG(info.st_mode)) return true;
      const std::string file_name = path.filename().string();
      if (name &&
          ::fnmatch(name->c_str(), file_name.c_str(), case_sensitive ? 0 : FNM_CASEFOLD) != 0) {
        return true;
      }
      if (static_cast<int64_t>(files_scanned) >= settings.max_search_files) {
        truncated = cat("stopped after config max_search_files (", settings.max_search_files,
                        ") files; search a smaller folder or add a name glob");
        return false;
      }
      ++files_scanned;
      if (!content) {
        matches.push_back(Json{{"path", shown_name(path.string(), &lossy)},
                               {"size", static_cast<int64_t>(info.st_size)}});
        if (static_cast<int64_t>(matches.size()) >= max_results) {
          truncated = cat("stopped at max_results (", max_results, ")");
          return false;
        }
        return true;
      }
      if (info.st_size > settings.max_search_file_bytes) {
        ++too_large;
        return true;
      }
      std::string text;
      {
        Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
        if (fd.get() < 0) {
          ++unreadable;
          return true;
        }
        text.resize(static_cast<size_t>(info.st_size));
        auto n = read_at(fd.get(), text.data(), text.size(), 0, path);
        if (!n.ok()) {
          ++unreadable;
          return true;
        }
        text.resize(static_cast<size_t>(*n));
      }
      if (std::string_view(text).substr(0, kBinarySniffBytes).find('\0') !=
          std::string_view::npos) {
        ++binary;
        return true;
      }
      const std::string haystack_lower =
          pattern || case_sensitive ? std::string() : lower_ascii(text);
      const std::string& haystack = pattern || case_sensitive ? text : haystack_lower;
      size_t line_number = 0;
      for (size_t start = 0; start < text.size() || (start == 0 && text.empty());) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        ++line_number;
        std::string_view line(haystack.data() + start, end - start);
        bool hit = false;
        if (pattern) {
          try {
            hit = boost::regex_search(line.begin(), line.end(), *pattern);
          } catch (const std::runtime_error&) {
            ++unreadable;  // the expression is too complex for this line
            return true;
          }
        } else {
          hit = line.find(needle) != std::string_view::npos;
        }
        if (hit) {
          std::string_view original(text.data() + start, end - start);
          bool cut = original.size() > kMaxMatchLineBytes;
          std::string shown = to_utf8(original.substr(0, utf8_cut(original, kMaxMatchLineBytes)));
          if (cut) shown += " [...]";
          matches.push_back(Json{{"path", shown_name(path.string(), &lossy)},
                                 {"line", line_number},
                                 {"text", std::move(shown)}});
          if (static_cast<int64_t>(matches.size()) >= max_results) {
            truncated = cat("stopped at max_results (", max_results, ")");
            return false;
          }
        }
        if (end >= text.size()) break;
        start = end + 1;
      }
      return true;
    });
    Json out{{"path", dir.string()},
             {"matches", std::move(matches)},
             {"files_scanned", files_scanned},
             {"truncated", !truncated.empty()}};
    if (!truncated.empty()) out["truncated_reason"] = truncated;
    if (binary + too_large + unreadable > 0) {
      out["skipped"] =
          Json{{"binary", binary}, {"too_large", too_large}, {"unreadable", unreadable}};
    }
    if (lossy) out["names_lossy"] = true;
    return out;
  }
};

class FsModule final : public Module {
 public:
  Task<void> initialize() override {
    const Json& c = config();
    std::vector<std::string> problems;
    auto roots = AllowedRoots::from_config(c.value("roots", Json::array({"."})),
                                           c.value("deny", Json::array()), &problems);
    if (!roots.ok()) throw PermanentError(std::string(message_of(roots.status())));
    settings_.roots = std::move(*roots);
    problems_ = std::move(problems);
    for (const std::string& problem : problems_) log(LogLevel::kWarn, problem);
    if (settings_.roots.roots().empty()) {
      log(LogLevel::kWarn, "no usable folder in config roots: every fs tool call will be refused");
    }
    settings_.max_read_bytes = setting(c, "max_read_bytes", settings_.max_read_bytes);
    settings_.max_write_bytes = setting(c, "max_write_bytes", settings_.max_write_bytes);
    settings_.max_list_entries = setting(c, "max_list_entries", settings_.max_list_entries);
    settings_.max_search_results = setting(c, "max_search_results", settings_.max_search_results);
    settings_.max_search_files = setting(c, "max_search_files", settings_.max_search_files);
    settings_.max_search_file_bytes =
        setting(c, "max_search_file_bytes", settings_.max_search_file_bytes);
    auto skip = string_list(c.value("skip_dirs", Json::array()), "skip_dirs");
    if (!skip.ok()) throw PermanentError(std::string(message_of(skip.status())));
    settings_.skip_dirs = {skip->begin(), skip->end()};

    tool("read", &FsModule::read);
    tool("write", &FsModule::write);
    tool("list", &FsModule::list);
    tool("search", &FsModule::search);
    co_return;
  }

  Task<Json> health_check() override {
    Json roots = Json::array();
    for (const fs::path& root : settings_.roots.roots()) roots.push_back(root.string());
    Json out{{"status", problems_.empty() ? "healthy" : "degraded"}, {"roots", std::move(roots)}};
    if (!problems_.empty()) out["problems"] = problems_;
    co_return out;
  }

 private:
  static int64_t setting(const Json& c, std::string_view key, int64_t fallback) {
    auto value = config_int(c, key, fallback, 1);
    if (!value.ok()) throw PermanentError(std::string(message_of(value.status())));
    return *value;
  }

  Task<ToolResult> read(const Json& args) { co_return read_file(args); }
  Task<ToolResult> write(const Json& args) { co_return write_file(args); }
  Task<ToolResult> list(const Json& args) { co_return list_folder(args); }

  Task<ToolResult> search(const Json& args) {
    auto search = prepare_search(args);
    if (!search.ok()) co_return search.status();
    auto job = std::make_shared<const Search>(std::move(*search));
    auto task = offload(&context(), [job] { return job->run(); });
    co_return co_await std::move(task);
  }

  ToolResult read_file(const Json& args) const {
    if (Status s = check_object(args); !s.ok()) return s;
    auto path = settings_.roots.resolve(args.value("path", Json()), "path");
    if (!path.ok()) return path.status();
    auto offset = int_arg(args, "offset", 0, INT64_MAX);
    auto max_bytes = int_arg(args, "max_bytes", 1, INT64_MAX);
    auto start_line = int_arg(args, "start_line", 1, INT64_MAX);
    auto end_line = int_arg(args, "end_line", 1, INT64_MAX);
    auto encoding = encoding_arg(args);
    for (const Status& s : {offset.status(), max_bytes.status(), start_line.status(),
                            end_line.status(), encoding.status()}) {
      if (!s.ok()) return s;
    }
    if (*end_line && *start_line && **end_line < **start_line) {
      return absl::InvalidArgumentError(
          cat("end_line: ", **end_line, " is before start_line ", **start_line));
    }
    const size_t cap = static_cast<size_t>(
        std::min(max_bytes->value_or(settings_.max_read_bytes), settings_.max_read_bytes));

    Fd fd(::open(path->c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) return io_error("open", *path, errno);
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0) return io_error("stat", *path, errno);
    if (S_ISDIR(info.st_mode)) {
      return absl::InvalidArgumentError(
          cat("path: \"", path->string(), "\" is a folder; use the list tool for folders"));
    }
    if (!S_ISREG(info.st_mode)) {
      return absl::InvalidArgumentError(
          cat("path: \"", path->string(), "\" is not a regular file (a device, pipe or socket)"));
    }
    const auto size = static_cast<int64_t>(info.st_size);
    std::string sniff(std::min<size_t>(kBinarySniffBytes, static_cast<size_t>(size)), '\0');
    auto sniffed = read_at(fd.get(), sniff.data(), sniff.size(), 0, *path);
    if (!sniffed.ok()) return sniffed.status();
    sniff.resize(static_cast<size_t>(*sniffed));
    const bool binary = sniff.find('\0') != std::string::npos;

    Json out{{"path", path->string()}, {"size", size}, {"encoding", *encoding}};
    if (binary) out["binary"] = true;
    if (binary && *encoding == "text") {
      out["content"] = "";
      out["note"] = "binary file (it contains NUL bytes): read it with encoding \"base64\"";
      return out;
    }

    std::string data;
    bool truncated = false;
    if (*start_line) {
      auto lines = read_lines(fd.get(), *path, **start_line, *end_line, cap, &out);
      if (!lines.ok()) return lines.status();
      data = std::move(*lines);
      truncated = out.value("truncated", false);
    } else {
      const int64_t from = offset->value_or(0);
      const size_t want =
          from >= size ? 0 : std::min<size_t>(cap, static_cast<size_t>(size - from));
      data.resize(want);
      auto n = read_at(fd.get(), data.data(), want, static_cast<off_t>(from), *path);
      if (!n.ok()) return n.status();
      data.resize(static_cast<size_t>(*n));
      truncated = from + static_cast<int64_t>(data.size()) < size;
      if (truncated && *encoding == "text") data.resize(std::max<size_t>(1, utf8_whole(data)));
      out["offset"] = from;
      out["truncated"] = truncated;
      if (truncated) out["next_offset"] = from + static_cast<int64_t>(data.size());
    }
    out["bytes"] = data.size();
    if (*encoding == "base64") {
      out["content"] = base64_encode(data);
    } else {
      bool lossy = false;
      out["content"] = to_utf8(data, &lossy);
      if (lossy) out["lossy"] = true;  // not UTF-8: bad bytes became U+FFFD
    }
    return out;
  }

  // Lines first..last (1-based, inclusive) read in chunks, at most `cap`
  // bytes; fills start_line, end_line, truncated and next_line/next_offset.
  static Result<std::string> read_lines(int fd, const fs::path& path, int64_t first,
                                        std::optional<int64_t> last, size_t cap, Json* out) {
    constexpr size_t kChunk = 65536;
    std::string chunk(kChunk, '\0');
    std::string data;
    int64_t line = 1;
    off_t position = 0;
    off_t data_start = -1;  // file offset of data[0]
    bool reached_end = false;
    bool over_cap = false;
    while (!over_cap) {
      auto n = read_at(fd, chunk.data(), kChunk, position, path);
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      std::string_view piece(chunk.data(), static_cast<size_t>(*n));
      for (size_t i = 0; i < piece.size(); ++i) {
        const bool wanted = line >= first && (!last || line <= *last);
        if (wanted) {
          if (data_start < 0) data_start = position + static_cast<off_t>(i);
          if (data.size() >= cap) {
            over_cap = true;
            break;
          }
          data.push_back(piece[i]);
        }
        if (piece[i] == '\n') {
          ++line;
          if (last && line > *last) {
            reached_end = true;
            break;
          }
        }
      }
      if (reached_end) break;
      position += *n;
    }
    (*out)["start_line"] = first;
    if (over_cap) {
      // Cut at the last whole line when there is one, so the next read can
      // start at a line; a single line longer than the cap continues by offset.
      size_t newline = data.rfind('\n');
      (*out)["truncated"] = true;
      if (newline != std::string::npos) {
        data.resize(newline + 1);
        const auto whole = static_cast<int64_t>(std::count(data.begin(), data.end(), '\n'));
        (*out)["end_line"] = first + whole - 1;
        (*out)["next_line"] = first + whole;
      } else {
        data.resize(std::max<size_t>(1, utf8_whole(data)));
        (*out)["end_line"] = first;
        (*out)["next_offset"] =
            static_cast<int64_t>(data_start) + static_cast<int64_t>(data.size());
      }
    } else {
      (*out)["truncated"] = false;
      int64_t newlines = static_cast<int64_t>(std::count(data.begin(), data.end(), '\n'));
      bool partial_last = !data.empty() && data.back() != '\n';
      (*out)["end_line"] = data.empty() ? first - 1 : first + newlines - (partial_last ? 0 : 1);
      if (data.empty()) (*out)["note"] = cat("the file has fewer than ", first, " lines");
    }
    return data;
  }

  ToolResult write_file(const Json& args) const {
    if (Status s = check_object(args); !s.ok()) return s;
    auto path = settings_.roots.resolve(args.value("path", Json()), "path");
    if (!path.ok()) return path.status();
    auto content = string_arg(args, "content");
    auto mode_arg = string_arg(args, "mode");
    auto create_dirs = bool_arg(args, "create_dirs");
    auto encoding = encoding_arg(args);
    for (const Status& s :
         {content.status(), mode_arg.status(), create_dirs.status(), encoding.status()}) {
      if (!s.ok()) return s;
    }
    if (!*content) return absl::InvalidArgumentError("content: required, the text to write");
    const std::string mode = mode_arg->value_or("overwrite");
    if (mode != "overwrite" && mode != "append" && mode != "create") {
      return absl::InvalidArgumentError(
          cat("mode: must be \"overwrite\", \"append\" or \"create\", got \"", mode, "\""));
    }
    std::string data = std::move(**content);
    if (*encoding == "base64") {
      auto decoded = base64_decode(data);
      if (!decoded) return absl::InvalidArgumentError("content: not valid base64");
      data = std::move(*decoded);
    }
    if (static_cast<int64_t>(data.size()) > settings_.max_write_bytes) {
      return absl::InvalidArgumentError(cat("content: ", data.size(),
                                            " bytes is more than config max_write_bytes (",
                                            settings_.max_write_bytes, ")"));
    }
    if (settings_.roots.contains(*path) &&
        std::find(settings_.roots.roots().begin(), settings_.roots.roots().end(), *path) !=
            settings_.roots.roots().end()) {
      return absl::InvalidArgumentError(
          cat("path: \"", path->string(), "\" is an allowed folder itself, not a file"));
    }

    const fs::path parent = path->parent_path();
    std::error_code ec;
    if (!fs::is_directory(parent, ec)) {
      if (fs::exists(parent, ec)) {
        return absl::InvalidArgumentError(
            cat("path: \"", parent.string(), "\" is a file, not a folder"));
      }
      if (!create_dirs->value_or(false)) {
        return absl::NotFoundError(cat("path: the folder \"", parent.string(),
                                       "\" does not exist; pass create_dirs: true to create it"));
      }
      fs::create_directories(parent, ec);
      if (ec) {
        return absl::PermissionDeniedError(
            cat("path: cannot create the folder \"", parent.string(), "\": ", ec.message()));
      }
    }

    struct stat existing {};
    const bool exists = ::lstat(path->c_str(), &existing) == 0;
    if (exists && S_ISDIR(existing.st_mode)) {
      return absl::InvalidArgumentError(cat("path: \"", path->string(), "\" is a folder"));
    }
    if (exists && !S_ISREG(existing.st_mode)) {
      return absl::InvalidArgumentError(
          cat("path: \"", path->string(), "\" is not a regular file"));
    }
    if (mode == "create" && exists) {
      return absl::AlreadyExistsError(cat("path: \"", path->string(),
                                          "\" already exists (mode \"create\" never replaces a "
                                          "file; use \"overwrite\" or \"append\")"));
    }

    if (mode == "overwrite") {
      if (Status s = replace_atomically(*path, data, exists ? &existing : nullptr); !s.ok())
        return s;
    } else {
      int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
      flags |= mode == "append" ? O_APPEND : O_EXCL;
      Fd fd(::open(path->c_str(), flags, 0666));
      if (fd.get() < 0) {
        if (errno == EEXIST) {
          return absl::AlreadyExistsError(cat("path: \"", path->string(), "\" already exists"));
        }
        return io_error("open", *path, errno);
      }
      if (Status s = write_all(fd.get(), data, *path); !s.ok()) return s;
      if (::fsync(fd.get()) != 0) return io_error("sync", *path, errno);
    }
    struct stat after {};
    int64_t size = ::stat(path->c_str(), &after) == 0 ? static_cast<int64_t>(after.st_size) : -1;
    return Json{{"path", path->string()},
                {"mode", mode},
                {"bytes_written", data.size()},
                {"created", !exists},
                {"size", size}};
  }

  // Writes `data` to a temporary file beside `path`, syncs it and renames it
  // over `path`: readers see the old file or the new one, never a mix. The
  // old file's permission bits are kept.
  static Status replace_atomically(const fs::path& path, std::string_view data,
                                   const struct stat* existing) {
    std::string temp =
        (path.parent_path() / cat(".", path.filename().string(), ".lotus-XXXXXX")).string();
    Fd fd(::mkostemp(temp.data(), O_CLOEXEC));
    if (fd.get() < 0) return io_error("create a temporary file beside", path, errno);
    auto fail = [&](Status status) {
      ::unlink(temp.c_str());
      return status;
    };
    const mode_t mode =
        existing != nullptr ? (existing->st_mode & 07777) : (0666 & ~current_umask());
    if (::fchmod(fd.get(), mode) != 0) return fail(io_error("set permissions of", temp, errno));
    if (Status s = write_all(fd.get(), data, temp); !s.ok()) return fail(s);
    if (::fsync(fd.get()) != 0) return fail(io_error("sync", temp, errno));
    if (::close(fd.release()) != 0) return fail(io_error("close", temp, errno));
    if (::rename(temp.c_str(), path.c_str()) != 0) return fail(io_error("replace", path, errno));
    Fd dir(::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() >= 0) ::fsync(dir.get());  // makes the rename itself durable
    return absl::OkStatus();
  }

  ToolResult list_folder(const Json& args) const {
    if (Status s = check_object(args); !s.ok()) return s;
    auto dir = folder_arg(settings_, args);
    if (!dir.ok()) return dir.status();
    auto recursive = bool_arg(args, "recursive");
    auto max_depth = int_arg(args, "max_depth", 1, 1000);
    auto include_hidden = bool_arg(args, "include_hidden");
    auto max_entries = int_arg(args, "max_entries", 1, INT64_MAX);
    for (const Status& s :
         {recursive.status(), max_depth.status(), include_hidden.status(), max_entries.status()}) {
      if (!s.ok()) return s;
    }
    const auto cap = static_cast<size_t>(
        std::min(max_entries->value_or(settings_.max_list_entries), settings_.max_list_entries));
    struct Entry {
      std::string path;
      Json json;
    };
    std::vector<Entry> entries;
    bool truncated = false;
    bool lossy = false;
    Walker walker(settings_, recursive->value_or(false), max_depth->value_or(0),
                  include_hidden->value_or(true));
    size_t unreadable = walker.walk(*dir, [&](const fs::path& path, const struct stat& info) {
      if (entries.size() >= cap) {
        truncated = true;
        return false;
      }
      std::string relative = shown_name(path.lexically_relative(*dir).string(), &lossy);
      Json entry{{"path", relative},
                 {"type", type_name(info.st_mode)},
                 {"mtime", iso8601_utc(info.st_mtim.tv_sec)}};
      if (S_ISREG(info.st_mode)) entry["size"] = static_cast<int64_t>(info.st_size);
      if (S_ISLNK(info.st_mode)) {
        std::error_code ec;
        fs::path target = fs::read_symlink(path, ec);
        if (!ec) entry["target"] = shown_name(target.string(), &lossy);
      }
      entries.push_back(Entry{std::move(relative), std::move(entry)});
      return true;
    });
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.path < b.path; });
    Json list = Json::array();
    for (Entry& e : entries) list.push_back(std::move(e.json));
    Json out{{"path", dir->string()}, {"entries", std::move(list)}, {"truncated", truncated}};
    if (truncated) {
      out["truncated_reason"] =
          cat("stopped at ", cap, " entries (max_entries / config max_list_entries)");
    }
    if (unreadable > 0) out["unreadable"] = unreadable;
    if (lossy) out["names_lossy"] = true;
    return out;
  }

  Result<Search> prepare_search(const Json& args) const {
    if (Status s = check_object(args); !s.ok()) return s;
    auto dir = folder_arg(settings_, args);
    if (!dir.ok()) return dir.status();
    auto name = string_arg(args, "name");
    auto content = string_arg(args, "content");
    auto regex = bool_arg(args, "regex");
    auto case_sensitive = bool_arg(args, "case_sensitive");
    auto max_results = int_arg(args, "max_results", 1, INT64_MAX);
    for (const Status& s : {name.status(), content.status(), regex.status(),
                            case_sensitive.status(), max_results.status()}) {
      if (!s.ok()) return s;
    }
    if ((!*name || (*name)->empty()) && (!*content || (*content)->empty())) {
      return absl::InvalidArgumentError(
          "name, content: give a file name glob (name), text to find (content), or both");
    }
    Search search;
    search.settings = settings_;
    search.dir = std::move(*dir);
    if (*name && !(*name)->empty()) search.name = std::move(**name);
    if (*content && !(*content)->empty()) search.content = std::move(**content);
    search.regex = regex->value_or(false);
    search.case_sensitive = case_sensitive->value_or(true);
    search.max_results =
        std::min(max_results->value_or(settings_.max_search_results), settings_.max_search_results);
    return search;
  }

  Settings settings_;
  std::vector<std::string> problems_;
};

static RegisterBuiltinModule<FsModule> registered("fs");

}  // namespace
}  // namespace lotus::tools
