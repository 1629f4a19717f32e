#include "core/config.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <thread>
#include <utility>

#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

#include "core/spelling.h"

namespace lotus {
namespace {

namespace fs = std::filesystem;

// Limits that catch typos rather than restrict real deployments.
constexpr int64_t kMaxThreads = 1024;
constexpr int64_t kMaxIdleSpinMicros = 10'000;  // spinning longer only burns CPU
constexpr int64_t kMaxRestarts = 1'000'000;
constexpr int64_t kMaxMillis = 24LL * 3600 * 1000;  // a day
constexpr int64_t kMaxSeconds = 24LL * 3600;

constexpr std::string_view kLogLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
const std::vector<std::string> kTopLevelKeys = {
    "api",         "bus",     "data_dir",    "disabled", "idle_spin_us", "llm",
    "log_level",   "mcp",     "module_dirs", "modules",  "redis",        "shutdown_deadline_ms",
    "supervision", "threads", "tools",
};
const std::vector<std::string> kToolsKeys = {"approval_timeout_ms", "max_result_bytes", "policy",
                                             "risk", "timeout_ms"};
constexpr std::string_view kDecisions[] = {"allow", "ask", "deny"};
constexpr std::string_view kRiskLevels[] = {"low", "medium", "high"};
const std::vector<std::string> kSupervisionKeys = {"backoff_initial_ms", "backoff_max_ms",
                                                   "max_restarts", "window_seconds"};

std::string str(std::string_view text) { return std::string(text); }

std::optional<std::string> lookup(const ConfigSources::EnvLookup& env, const char* name) {
  if (!env) return std::nullopt;
  std::optional<std::string> value = env(name);
  if (value && value->empty()) return std::nullopt;  // empty counts as unset
  return value;
}

std::optional<fs::path> home_dir(const ConfigSources::EnvLookup& env) {
  if (auto home = lookup(env, "HOME")) return fs::path(*home);
  // No HOME (a bare service environment): ask the password database.
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buffer(size > 0 ? static_cast<size_t>(size) : 16384);
  passwd entry{};
  passwd* result = nullptr;
  if (getpwuid_r(getuid(), &entry, buffer.data(), buffer.size(), &result) == 0 &&
      result != nullptr && result->pw_dir != nullptr && result->pw_dir[0] != '\0') {
    return fs::path(result->pw_dir);
  }
  return std::nullopt;
}

// An XDG base directory: the variable if it holds an absolute path (the spec
// says to ignore relative ones), else the fallback under the home directory.
std::optional<fs::path> xdg_dir(const ConfigSources::EnvLookup& env, const char* variable,
                                const std::optional<fs::path>& home, const char* fallback) {
  if (auto value = lookup(env, variable); value && fs::path(*value).is_absolute()) {
    return fs::path(*value);
  }
  if (home) return *home / fallback;
  return std::nullopt;
}

// The path as a person would type it: the home directory shown as "~".
std::string shown_path(const fs::path& path, const std::optional<fs::path>& home) {
  std::string text = path.string();
  if (home && !home->empty()) {
    std::string prefix = home->string();
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    if (text == prefix) return "~";
    if (text.size() > prefix.size() && text.compare(0, prefix.size(), prefix) == 0 &&
        text[prefix.size()] == '/') {
      return "~" + text.substr(prefix.size());
    }
  }
  return text;
}

// Expands "~" and "~/..." and anchors relative paths at `base`. Returns the
// reason as text, for the caller to place.
Result<fs::path> expand_path(std::string_view text, const fs::path& base,
                             const std::optional<fs::path>& home) {
  if (text.empty()) return absl::InvalidArgumentError("expected a path, got an empty string");
  fs::path path;
  if (text[0] == '~') {
    if (text.size() > 1 && text[1] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("only ~ and ~/ are expanded, not ~user; write the full path instead of '",
                       str(text), "'"));
    }
    if (!home) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot expand '", str(text), "': the home directory is unknown (set HOME)"));
    }
    path = *home / fs::path(text.size() > 2 ? text.substr(2) : std::string_view());
  } else {
    path = fs::path(text);
    if (path.is_relative() && !base.empty()) path = base / path;
  }
  return path.lexically_normal();
}

std::string unknown_key_message(std::string_view key, const std::vector<std::string>& known) {
  std::string message = absl::StrCat("unknown key '", str(key), "'");
  if (std::string_view near = nearest_word(key, known); !near.empty()) {
    absl::StrAppend(&message, " (did you mean '", str(near), "'?)");
  }
  absl::StrAppend(&message, "; known keys: ", absl::StrJoin(known, ", "));
  return message;
}

std::string describe_node(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return absl::StrCat("'", node.Scalar(), "'");
    default:
      return "nothing";
  }
}

bool parse_int64(std::string_view text, int64_t& value) {
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  return ec == std::errc() && ptr == end && !text.empty();
}

// Reads one config file into a Config, remembering where values came from so
// errors can point at them.
class FileReader {
 public:
  FileReader(Config& config, fs::path file, const std::optional<fs::path>& home)
      : config_(config), file_(std::move(file)), home_(home), shown_(shown_path(file_, home)) {}

  Status read(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          shown_, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg));
    }
    if (root.IsNull()) return absl::OkStatus();  // empty, or only comments
    if (!root.IsMap()) {
      return error(root, "", "expected a mapping of settings (key: value lines) at the top level");
    }
    return for_each_entry(
        root, "", kTopLevelKeys,
        [&](const std::string& key, const YAML::Node&, const YAML::Node& value) -> Status {
          if (value.IsNull()) return absl::OkStatus();  // `key:` with no value keeps the default
          if (key == "module_dirs") return read_module_dirs(value);
          if (key == "data_dir") return read_path(value, key, config_.data_dir);
          if (key == "bus") return read_bus(value);
          if (key == "threads") {
            int64_t threads = 0;
            if (Status s = read_int(value, key, 0, kMaxThreads, threads); !s.ok()) return s;
            config_.threads = static_cast<size_t>(threads);
            return absl::OkStatus();
          }
          if (key == "idle_spin_us") {
            int64_t micros = 0;
            if (Status s = read_int(value, key, 0, kMaxIdleSpinMicros, micros); !s.ok()) return s;
            config_.idle_spin = std::chrono::microseconds(micros);
            return absl::OkStatus();
          }
          if (key == "log_level") return read_log_level(value);
          if (key == "shutdown_deadline_ms") {
            int64_t ms = 0;
            if (Status s = read_int(value, key, 0, kMaxMillis, ms); !s.ok()) return s;
            config_.shutdown_deadline = std::chrono::milliseconds(ms);
            return absl::OkStatus();
          }
          if (key == "supervision") return read_supervision(value);
          if (key == "modules") return read_modules(value);
          if (key == "llm") return read_llm(value);
          if (key == "mcp") return read_mcp(value);
          if (key == "tools") return read_tools(value);
          if (key == "redis") return read_redis(value);
          if (key == "api") return read_section(value, "api", config_.api);
          return read_disabled(value);
        });
  }

 private:
  using EntryFn = std::function<Status(const std::string&, const YAML::Node&, const YAML::Node&)>;

  Status error(const YAML::Node& node, std::string_view key_path, absl::string_view reason) const {
    const YAML::Mark mark = node.Mark();
    std::string where = shown_;
    if (!mark.is_null()) absl::StrAppend(&where, ":", mark.line + 1, ":", mark.column + 1);
    if (key_path.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", reason));
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", str(key_path), ": ", reason));
  }

  // Visits each key of a mapping, refusing non-text keys, duplicates and (when
  // `known` is given) keys not in it.
  Status for_each_entry(const YAML::Node& map, std::string_view prefix,
                        const std::vector<std::string>& known, const EntryFn& visit) {
    std::set<std::string> seen;
    for (const auto& entry : map) {
      const YAML::Node& key_node = entry.first;
      if (!key_node.IsScalar()) {
        return error(key_node, prefix, "keys must be plain text, not a list or mapping");
      }
      const std::string& key = key_node.Scalar();
      const std::string path = prefix.empty() ? key : absl::StrCat(str(prefix), ".", key);
      if (!known.empty() && std::find(known.begin(), known.end(), key) == known.end()) {
        std::string where = prefix.empty() ? "" : str(prefix);
        return error(key_node, where, unknown_key_message(key, known));
      }
      if (!seen.insert(key).second) {
        return error(key_node, path, "duplicate key; each setting may appear once");
      }
      if (Status status = visit(key, key_node, entry.second); !status.ok()) return status;
    }
    return absl::OkStatus();
  }

  Status read_int(const YAML::Node& node, std::string_view path, int64_t min, int64_t max,
                  int64_t& out) const {
    int64_t value = 0;
    if (!node.IsScalar() || !parse_int64(node.Scalar(), value)) {
      return error(node, path, absl::StrCat("expected an integer, got ", describe_node(node)));
    }
    if (value < min || value > max) {
      return error(node, path,
                   absl::StrCat("must be between ", min, " and ", max, ", got ", value));
    }
    out = value;
    return absl::OkStatus();
  }

  Status read_text(const YAML::Node& node, std::string_view path, std::string_view what,
                   std::string& out) const {
    if (!node.IsScalar()) {
      return error(node, path, absl::StrCat("expected ", str(what), ", got ", describe_node(node)));
    }
    out = node.Scalar();
    return absl::OkStatus();
  }

  Status read_path(const YAML::Node& node, std::string_view path, fs::path& out) const {
    std::string text;
    if (Status s = read_text(node, path, "a path", text); !s.ok()) return s;
    Result<fs::path> expanded = expand_path(text, file_.parent_path(), home_);
    if (!expanded.ok()) return error(node, path, expanded.status().message());
    out = *std::move(expanded);
    return absl::OkStatus();
  }

  Status read_module_dirs(const YAML::Node& node) {
    if (!node.IsSequence()) {
      return error(node, "module_dirs",
                   absl::StrCat("expected a list of directories, got ", describe_node(node)));
    }
    std::vector<fs::path> dirs;
    for (size_t i = 0; i < node.size(); ++i) {
      fs::path dir;
      const std::string path = absl::StrCat("module_dirs[", i, "]");
      if (Status s = read_path(node[i], path, dir); !s.ok()) return s;
      dirs.push_back(std::move(dir));
    }
    config_.module_dirs = std::move(dirs);
    return absl::OkStatus();
  }

  Status read_bus(const YAML::Node& node) {
    std::string bus;
    if (Status s = read_text(node, "bus", "'local' or a redis:// URL", bus); !s.ok()) return s;
    if (Status s = validate_bus(bus); !s.ok()) return error(node, "bus", s.message());
    config_.bus = std::move(bus);
    return absl::OkStatus();
  }

  Status read_log_level(const YAML::Node& node) {
    std::string level;
    if (Status s = read_text(node, "log_level", "a log level", level); !s.ok()) return s;
    if (Status s = validate_log_level(level); !s.ok()) return error(node, "log_level", s.message());
    config_.log_level = std::move(level);
    return absl::OkStatus();
  }

  Status read_supervision(const YAML::Node& node) {
    if (!node.IsMap()) {
      return error(node, "supervision",
                   absl::StrCat("expected a mapping with ", absl::StrJoin(kSupervisionKeys, ", "),
                                "; got ", describe_node(node)));
    }
    Config::Supervision& sup = config_.supervision;
    return for_each_entry(
        node, "supervision", kSupervisionKeys,
        [&](const std::string& key, const YAML::Node&, const YAML::Node& value) -> Status {
          if (value.IsNull()) return absl::OkStatus();
          const std::string path = "supervision." + key;
          int64_t number = 0;
          if (key == "max_restarts") {
            if (Status s = read_int(value, path, 0, kMaxRestarts, number); !s.ok()) return s;
            sup.max_restarts = static_cast<int>(number);
          } else if (key == "window_seconds") {
            if (Status s = read_int(value, path, 1, kMaxSeconds, number); !s.ok()) return s;
            sup.window = std::chrono::seconds(number);
          } else if (key == "backoff_initial_ms") {
            if (Status s = read_int(value, path, 1, kMaxMillis, number); !s.ok()) return s;
            sup.backoff_initial = std::chrono::milliseconds(number);
          } else {
            if (Status s = read_int(value, path, 1, kMaxMillis, number); !s.ok()) return s;
            sup.backoff_max = std::chrono::milliseconds(number);
          }
          return absl::OkStatus();
        });
  }

  // `mcp:` is the mcp module's config (the MCP servers LOTUS mounts), kept
  // at the top level because that is where users look for it.
  Status read_mcp(const YAML::Node& node) {
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) {
      return error(node, "mcp",
                   absl::StrCat("expected a mapping (servers: {NAME: {command, args, env} | "
                                "{url}}), got ",
                                describe_node(node)));
    }
    Result<Json> json = to_json(node, "mcp");
    if (!json.ok()) return json.status();
    Json& config = config_.module_config["mcp"];
    if (!config.is_object()) config = Json::object();
    config.merge_patch(*json);
    return absl::OkStatus();
  }

  Status read_modules(const YAML::Node& node) {
    if (!node.IsMap()) {
      return error(node, "modules",
                   absl::StrCat("expected a mapping of module name to config overrides, got ",
                                describe_node(node)));
    }
    return for_each_entry(
        node, "modules", {},
        [&](const std::string& name, const YAML::Node& key_node,
            const YAML::Node& value) -> Status {
          const std::string path = "modules." + name;
          if (name.empty()) return error(key_node, "modules", "module name is empty");
          if (value.IsNull()) {
            config_.module_config[name] = Json::object();
            return absl::OkStatus();
          }
          if (!value.IsMap()) {
            return error(
                value, path,
                absl::StrCat("expected a mapping of config overrides, got ", describe_node(value)));
          }
          Result<Json> json = to_json(value, path);
          if (!json.ok()) return json.status();
          config_.module_config[name] = *std::move(json);
          return absl::OkStatus();
        });
  }

  Status read_decision(const YAML::Node& node, const std::string& path, std::string& out) {
    if (node.IsScalar()) {
      for (std::string_view d : kDecisions) {
        if (node.Scalar() == d) {
          out = std::string(d);
          return absl::OkStatus();
        }
      }
    }
    return error(node, path,
                 absl::StrCat("expected allow, ask or deny, got ", describe_node(node)));
  }

  Status read_tools(const YAML::Node& node) {
    if (!node.IsMap()) {
      return error(node, "tools",
                   absl::StrCat("expected a mapping with ", absl::StrJoin(kToolsKeys, ", "),
                                "; got ", describe_node(node)));
    }
    Config::Tools& tools = config_.tools;
    return for_each_entry(
        node, "tools", kToolsKeys,
        [&](const std::string& key, const YAML::Node&, const YAML::Node& value) -> Status {
          if (value.IsNull()) return absl::OkStatus();
          const std::string path = "tools." + key;
          int64_t number = 0;
          if (key == "policy" || key == "risk") {
            if (!value.IsMap()) {
              return error(value, path,
                           absl::StrCat(key == "policy"
                                            ? "expected a mapping of tool pattern (module.tool, "
                                              "globs allowed) to allow, ask or deny"
                                            : "expected a mapping of low, medium, high to allow, "
                                              "ask or deny",
                                        "; got ", describe_node(value)));
            }
            std::vector<std::string> known;
            if (key == "risk") known.assign(std::begin(kRiskLevels), std::end(kRiskLevels));
            return for_each_entry(
                value, path, known,
                [&](const std::string& name, const YAML::Node& name_node,
                    const YAML::Node& decision_node) -> Status {
                  if (key == "policy" && name.empty()) {
                    return error(name_node, path, "a tool pattern must not be empty");
                  }
                  std::string decision;
                  if (Status s = read_decision(decision_node, path + "." + name, decision);
                      !s.ok()) {
                    return s;
                  }
                  if (key == "risk") {
                    tools.risk[name] = decision;
                  } else {
                    tools.policy.emplace_back(name, decision);
                  }
                  return absl::OkStatus();
                });
          }
          if (key == "max_result_bytes") {
            if (Status s = read_int(value, path, 256, 64LL << 20, number); !s.ok()) return s;
            tools.max_result_bytes = static_cast<size_t>(number);
            return absl::OkStatus();
          }
          if (Status s = read_int(value, path, 1, kMaxMillis, number); !s.ok()) return s;
          if (key == "timeout_ms") {
            tools.timeout = std::chrono::milliseconds(number);
          } else {
            tools.approval_timeout = std::chrono::milliseconds(number);
          }
          return absl::OkStatus();
        });
  }

  // Kept as JSON here; the provider router checks it and names bad keys.
  Status read_llm(const YAML::Node& node) {
    if (!node.IsMap()) {
      return error(node, "llm",
                   absl::StrCat("expected a mapping (providers, aliases, fallback), got ",
                                describe_node(node)));
    }
    Result<Json> json = to_json(node, "llm");
    if (!json.ok()) return json.status();
    config_.llm = *std::move(json);
    return absl::OkStatus();
  }

  // A mapping kept as JSON; the part of LOTUS that uses it checks its keys.
  Status read_section(const YAML::Node& node, const char* key, Json& out) {
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) {
      return error(node, key, absl::StrCat("expected a mapping, got ", describe_node(node)));
    }
    Result<Json> json = to_json(node, key);
    if (!json.ok()) return json.status();
    out = *std::move(json);
    return absl::OkStatus();
  }

  Status read_redis(const YAML::Node& node) {
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) {
      return error(node, "redis", absl::StrCat("expected a mapping, got ", describe_node(node)));
    }
    Result<Json> json = to_json(node, "redis");
    if (!json.ok()) return json.status();
    config_.redis = *std::move(json);
    return absl::OkStatus();
  }

  Status read_disabled(const YAML::Node& node) {
    if (!node.IsSequence()) {
      return error(node, "disabled",
                   absl::StrCat("expected a list of module names, got ", describe_node(node)));
    }
    std::set<std::string> disabled;
    for (size_t i = 0; i < node.size(); ++i) {
      std::string name;
      const std::string path = absl::StrCat("disabled[", i, "]");
      if (Status s = read_text(node[i], path, "a module name", name); !s.ok()) return s;
      if (name.empty()) return error(node[i], path, "module name is empty");
      disabled.insert(std::move(name));
    }
    config_.disabled_modules = std::move(disabled);
    return absl::OkStatus();
  }

  // YAML 1.2 core schema for plain scalars; quoted and tagged scalars stay text.
  static Json scalar_to_json(const YAML::Node& node) {
    const std::string& text = node.Scalar();
    if (node.Tag() != "?") return text;
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    if (text == "null" || text == "Null" || text == "NULL" || text == "~") return nullptr;
    int64_t integer = 0;
    if (parse_int64(text, integer)) return integer;
    std::string_view digits = text;
    if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
    const bool numeric_start =
        !digits.empty() && (std::isdigit(static_cast<unsigned char>(digits[0])) ||
                            (digits[0] == '.' && digits.size() > 1 &&
                             std::isdigit(static_cast<unsigned char>(digits[1]))));
    if (numeric_start && digits.find_first_not_of("0123456789.eE+-") == std::string_view::npos) {
      // Only decimal forms reach strtod, so "0x1p3", "inf" and "nan" stay text.
      errno = 0;
      char* end = nullptr;
      double number = std::strtod(text.c_str(), &end);
      if (end == text.c_str() + text.size() && errno == 0) return number;
    }
    return text;
  }

  Result<Json> to_json(const YAML::Node& node, const std::string& path) {
    switch (node.Type()) {
      case YAML::NodeType::Scalar:
        return scalar_to_json(node);
      case YAML::NodeType::Sequence: {
        Json array = Json::array();
        for (size_t i = 0; i < node.size(); ++i) {
          Result<Json> item = to_json(node[i], absl::StrCat(path, "[", i, "]"));
          if (!item.ok()) return item.status();
          array.push_back(*std::move(item));
        }
        return array;
      }
      case YAML::NodeType::Map: {
        Json object = Json::object();
        Status status = for_each_entry(
            node, path, {},
            [&](const std::string& key, const YAML::Node&, const YAML::Node& value) -> Status {
              Result<Json> item = to_json(value, path + "." + key);
              if (!item.ok()) return item.status();
              object[key] = *std::move(item);
              return absl::OkStatus();
            });
        if (!status.ok()) return status;
        return object;
      }
      default:
        return Json(nullptr);
    }
  }

  Config& config_;
  const fs::path file_;
  const std::optional<fs::path>& home_;
  const std::string shown_;
};

Status read_file(const fs::path& file, const std::string& shown, std::string& text) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read config file ", shown, ": ", std::strerror(errno)));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read config file ", shown, ": ", std::strerror(errno)));
  }
  text = buffer.str();
  return absl::OkStatus();
}

// Finds, reads and applies the config file, if there is one to read.
Status apply_file(const ConfigSources& sources, const std::optional<fs::path>& home,
                  Config& config) {
  fs::path file;
  std::error_code ec;
  if (sources.config_file) {
    Result<fs::path> expanded = expand_path(sources.config_file->string(), {}, home);
    if (!expanded.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("config file: ", expanded.status().message()));
    }
    file = fs::absolute(*expanded, ec);
    if (ec) file = *expanded;
    const std::string shown = shown_path(file, home);
    if (!fs::exists(file, ec)) {
      return absl::NotFoundError(absl::StrCat("config file ", shown, " does not exist"));
    }
  } else {
    std::optional<fs::path> config_home = xdg_dir(sources.env, "XDG_CONFIG_HOME", home, ".config");
    if (!config_home) return absl::OkStatus();  // nowhere to look
    file = *config_home / "lotus" / "config.yaml";
    if (!fs::exists(file, ec)) return absl::OkStatus();
  }

  const std::string shown = shown_path(file, home);
  if (fs::is_directory(file, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", shown, " is a directory, expected a YAML file"));
  }
  std::string text;
  if (Status status = read_file(file, shown, text); !status.ok()) return status;
  FileReader reader(config, file, home);
  if (Status status = reader.read(text); !status.ok()) return status;
  config.config_file = file;
  return absl::OkStatus();
}

Status apply_env(const ConfigSources& sources, const std::optional<fs::path>& home,
                 Config& config) {
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  auto env_path = [&](const char* name, std::string_view text) -> Result<fs::path> {
    Result<fs::path> path = expand_path(text, cwd, home);
    if (!path.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": ", path.status().message()));
    }
    return path;
  };
  // A whole number from 0 to `max`; the error says what is expected
  // ("an integer", "microseconds") and what 0 means.
  auto env_count = [](const char* name, const std::string& text, const char* expected, int64_t max,
                      const char* zero_means) -> Result<int64_t> {
    int64_t number = 0;
    if (!parse_int64(text, number) || number < 0 || number > max) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": expected ", expected,
                                                     " between 0 and ", max, " (0 = ", zero_means,
                                                     "), got '", text, "'"));
    }
    return number;
  };

  if (auto value = lookup(sources.env, "LOTUS_MODULE_PATH")) {
    std::vector<fs::path> dirs;
    for (absl::string_view part : absl::StrSplit(*value, ':', absl::SkipEmpty())) {
      Result<fs::path> dir =
          env_path("LOTUS_MODULE_PATH", std::string_view(part.data(), part.size()));
      if (!dir.ok()) return dir.status();
      dirs.push_back(*std::move(dir));
    }
    if (dirs.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("LOTUS_MODULE_PATH: no directories in '",
                                                     *value, "'; expected dir1:dir2:..."));
    }
    config.module_dirs = std::move(dirs);
  }
  if (auto value = lookup(sources.env, "LOTUS_DATA_DIR")) {
    Result<fs::path> dir = env_path("LOTUS_DATA_DIR", *value);
    if (!dir.ok()) return dir.status();
    config.data_dir = *std::move(dir);
  }
  if (auto value = lookup(sources.env, "LOTUS_BUS")) {
    if (Status s = validate_bus(*value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("LOTUS_BUS: ", s.message()));
    }
    config.bus = *value;
  }
  if (auto value = lookup(sources.env, "LOTUS_THREADS")) {
    Result<int64_t> threads =
        env_count("LOTUS_THREADS", *value, "an integer", kMaxThreads, "one per hardware thread");
    if (!threads.ok()) return threads.status();
    config.threads = static_cast<size_t>(*threads);
  }
  if (auto value = lookup(sources.env, "LOTUS_IDLE_SPIN_US")) {
    Result<int64_t> micros = env_count("LOTUS_IDLE_SPIN_US", *value, "microseconds",
                                       kMaxIdleSpinMicros, "sleep at once");
    if (!micros.ok()) return micros.status();
    config.idle_spin = std::chrono::microseconds(*micros);
  }
  if (auto value = lookup(sources.env, "LOTUS_LOG_LEVEL")) {
    if (Status s = validate_log_level(*value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("LOTUS_LOG_LEVEL: ", s.message()));
    }
    config.log_level = *value;
  }
  return absl::OkStatus();
}

bool valid_host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

std::string mask_password(const std::string& bus) {
  constexpr std::string_view kScheme = "redis://";
  if (bus.rfind(kScheme, 0) != 0) return bus;
  const size_t authority_end = bus.find('/', kScheme.size());
  const size_t at = bus.rfind('@', authority_end);
  if (at == std::string::npos || at < kScheme.size()) return bus;
  const size_t colon = bus.find(':', kScheme.size());
  if (colon == std::string::npos || colon > at) return bus;
  return bus.substr(0, colon + 1) + "****" + bus.substr(at);
}

std::string format_duration(std::chrono::milliseconds ms) {
  if (ms.count() != 0 && ms.count() % 1000 == 0) return absl::StrCat(ms.count() / 1000, " s");
  return absl::StrCat(ms.count(), " ms");
}

}  // namespace

std::optional<std::string> ConfigSources::process_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

size_t Config::effective_threads() const {
  if (threads != 0) return threads;
  return std::max<size_t>(1, std::thread::hardware_concurrency());
}

Status validate_log_level(std::string_view level) {
  for (std::string_view known : kLogLevels) {
    if (level == known) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown log level '", str(level),
                                                 "'; expected one of trace, debug, info, warn, "
                                                 "error, off"));
}

Status validate_bus(std::string_view bus) {
  if (bus == "local") return absl::OkStatus();
  constexpr std::string_view kScheme = "redis://";
  auto bad = [&](std::string_view reason) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad bus '", mask_password(str(bus)), "': ", str(reason),
                     "; expected 'local' or redis://[user[:password]@]host[:port][/db]"));
  };
  if (bus.substr(0, kScheme.size()) != kScheme) return bad("unknown bus");
  std::string_view rest = bus.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return bad("query parameters and fragments are not supported");
  }
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  const std::string_view db = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after an IPv6 address");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("expected ':port' after ']'");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != host.npos) {
      return bad("malformed IPv6 address");
    }
  } else {
    if (const size_t colon = authority.find(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.find(':') != std::string_view::npos) return bad("put IPv6 addresses in [brackets]");
      if (port.empty()) return bad("empty port");
    }
    if (host.empty()) return bad("missing host");
    if (!std::all_of(host.begin(), host.end(), valid_host_char)) {
      return bad(absl::StrCat("invalid character in host '", str(host), "'"));
    }
  }
  if (!port.empty()) {
    int64_t number = 0;
    if (!parse_int64(port, number) || port[0] == '+' || number < 1 || number > 65535) {
      return bad(absl::StrCat("port must be a number from 1 to 65535, got '", str(port), "'"));
    }
  }
  if (!db.empty()) {
    int64_t number = 0;
    if (!parse_int64(db, number) || db[0] == '+' || number < 0 ||
        number > std::numeric_limits<int>::max()) {
      return bad(absl::StrCat("database must be a number, got '", str(db), "'"));
    }
  }
  return absl::OkStatus();
}

Status validate(const Config& config) {
  auto bad = [](std::string_view what) { return absl::InvalidArgumentError(str(what)); };
  if (config.data_dir.empty()) {
    return bad(
        "data_dir: no data directory (HOME is not set); set LOTUS_DATA_DIR, XDG_DATA_HOME or "
        "data_dir in the config file");
  }
  if (Status s = validate_bus(config.bus); !s.ok()) return bad(absl::StrCat("bus: ", s.message()));
  if (Status s = validate_log_level(config.log_level); !s.ok()) {
    return bad(absl::StrCat("log_level: ", s.message()));
  }
  if (config.threads > static_cast<size_t>(kMaxThreads)) {
    return bad(
        absl::StrCat("threads: must be between 0 and ", kMaxThreads, ", got ", config.threads));
  }
  if (config.idle_spin.count() < 0 || config.idle_spin.count() > kMaxIdleSpinMicros) {
    return bad(absl::StrCat("idle_spin_us: must be between 0 and ", kMaxIdleSpinMicros, ", got ",
                            config.idle_spin.count()));
  }
  if (config.shutdown_deadline.count() < 0) {
    return bad("shutdown_deadline_ms: must not be negative");
  }
  const Config::Supervision& sup = config.supervision;
  if (sup.max_restarts < 0) return bad("supervision.max_restarts: must not be negative");
  if (sup.window.count() < 1) return bad("supervision.window_seconds: must be at least 1");
  if (sup.backoff_initial.count() < 1) {
    return bad("supervision.backoff_initial_ms: must be at least 1");
  }
  if (sup.backoff_max < sup.backoff_initial) {
    return bad(absl::StrCat("supervision.backoff_max_ms (", sup.backoff_max.count(),
                            ") must not be less than supervision.backoff_initial_ms (",
                            sup.backoff_initial.count(), ")"));
  }
  for (const auto& [name, overrides] : config.module_config) {
    if (!overrides.is_object()) {
      return bad(absl::StrCat("modules.", name, ": expected an object of config overrides"));
    }
  }
  return absl::OkStatus();
}

Result<Config> load_config(const ConfigSources& sources) {
  const std::optional<fs::path> home = home_dir(sources.env);
  const std::optional<fs::path> data_home =
      xdg_dir(sources.env, "XDG_DATA_HOME", home, ".local/share");

  Config config;
  if (!sources.builtin_modules_dir.empty()) {
    config.module_dirs.push_back(sources.builtin_modules_dir);
  }
  if (data_home) {
    config.module_dirs.push_back(*data_home / "lotus" / "modules");
    config.data_dir = *data_home / "lotus";
  }
  if (std::optional<fs::path> config_home =
          xdg_dir(sources.env, "XDG_CONFIG_HOME", home, ".config")) {
    config.config_dir = *config_home / "lotus";
  }

  if (Status status = apply_file(sources, home, config); !status.ok()) return status;
  if (Status status = apply_env(sources, home, config); !status.ok()) return status;
  if (Status status = validate(config); !status.ok()) return status;
  // An explicit --config file keeps its secrets beside it; with no HOME the
  // data folder is the only place there is.
  if (!config.config_file.empty() && sources.config_file) {
    config.config_dir = config.config_file.parent_path();
  }
  if (config.config_dir.empty()) config.config_dir = config.data_dir;
  return config;
}

std::string describe(const Config& config) {
  constexpr int kWidth = 19;
  std::string out;
  auto line = [&](std::string_view label, std::string_view value) {
    std::string padded(label);
    padded.resize(std::max<size_t>(kWidth, padded.size() + 1), ' ');
    absl::StrAppend(&out, padded, str(value), "\n");
  };
  line("config file:",
       config.config_file.empty() ? "none (built-in defaults)" : config.config_file.string());
  if (config.module_dirs.empty()) line("module dirs:", "none");
  for (size_t i = 0; i < config.module_dirs.size(); ++i) {
    line(i == 0 ? "module dirs:" : "", config.module_dirs[i].string());
  }
  line("data dir:", config.data_dir.string());
  line("bus:", mask_password(config.bus));
  line("threads:",
       config.threads == 0
           ? absl::StrCat("0 (one per hardware thread: ", config.effective_threads(), ")")
           : absl::StrCat(config.threads));
  line("idle spin:", config.idle_spin.count() == 0
                         ? std::string("off (a worker out of work sleeps at once)")
                         : absl::StrCat(config.idle_spin.count(), " us before a worker sleeps"));
  line("log level:", config.log_level);
  line("shutdown deadline:", format_duration(config.shutdown_deadline));
  const Config::Supervision& sup = config.supervision;
  line("supervision:",
       absl::StrCat("at most ", sup.max_restarts, " restarts in ", sup.window.count(),
                    " s; backoff ", format_duration(sup.backoff_initial), " doubling to ",
                    format_duration(sup.backoff_max)));
  std::vector<std::string> configured;
  for (const auto& [name, overrides] : config.module_config) configured.push_back(name);
  line("module config:", configured.empty() ? "none" : absl::StrJoin(configured, ", "));
  line("disabled modules:",
       config.disabled_modules.empty() ? "none" : absl::StrJoin(config.disabled_modules, ", "));
  return out;
}

}  // namespace lotus
