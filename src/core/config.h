// Config: how the nucleus is set up, and where each setting came from.
//
// Precedence, lowest first: built-in defaults < config file < environment <
// command-line flags (the caller assigns those to the public fields after
// load_config()).
//
// Config file: the path given with --config (it must exist), else
// $XDG_CONFIG_HOME/lotus/config.yaml, else ~/.config/lotus/config.yaml (these
// two may be absent). Every key is optional; an empty value keeps the default:
//
//   module_dirs: [~/lotus-modules, /opt/lotus/modules]  # replaces the defaults:
//                              # <built-in modules>, $XDG_DATA_HOME/lotus/modules
//   data_dir: ~/.local/share/lotus   # state, memory and logs live here
//   bus: local                       # or redis://[user:password@]host[:port][/db]
//   redis:                           # tunes a redis:// bus (see src/bus/redis_bus.h)
//     streams: [audit.trail]         # more channels bound to streams
//     stream_maxlen: 1000000         # retention: XADD MAXLEN ~ (or stream_max_age_ms: MINID ~)
//     claim_idle_ms: 30000           # reclaim a silent consumer's pending entries after this
//     fallback_local: false          # Redis unreachable at start: embedded bus, not an error
//   threads: 0                       # worker threads; 0 = one per hardware thread
//   idle_spin_us: 100                # a worker out of work looks for more this long before it
//   sleeps log_level: info                  # trace | debug | info | warn | error | off
//   shutdown_deadline_ms: 5000       # how long modules get to stop
//   supervision:                     # restarting failed modules, Erlang/OTP style
//     max_restarts: 5                # more than this many restarts ...
//     window_seconds: 60             # ... within this window marks a module failed
//     backoff_initial_ms: 100        # first restart delay, doubling each time ...
//     backoff_max_ms: 30000          # ... up to this
//   modules:                         # per-module config, over the manifest defaults
//     code_assistant: {model: fast, max_file_size: 100000}
//   disabled: [voice, screen]        # modules not to start
//   llm:                             # LLM providers, model aliases, fallbacks
//     providers: {anthropic: {type: anthropic, api_key_env: ANTHROPIC_API_KEY}}
//   tools:                           # calling module tools (the reasoning engine, MCP)
//     policy: {"fs.read": allow, "shell.*": deny}   # module.tool glob -> allow | ask | deny
//     risk: {low: allow, medium: allow, high: ask}  # for tools no policy entry names
//     timeout_ms: 30000              # per call, once approved
//     approval_timeout_ms: 300000    # an unanswered approval request counts as denied
//     max_result_bytes: 32768        # larger results are cut, saying how much was left out
//
// `~` and `~/...` expand to the home directory; relative paths are relative to
// the config file's directory. Unknown keys and wrongly typed values are
// errors that name file:line:column and the key.
//
// Environment (an empty variable counts as unset; relative paths are made
// absolute against the current directory):
//   LOTUS_MODULE_PATH  colon-separated module directories, replacing the list
//   LOTUS_DATA_DIR, LOTUS_BUS, LOTUS_THREADS, LOTUS_LOG_LEVEL
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lotus/event.h"
#include "lotus/status.h"

namespace lotus {

struct Config {
  // Searched in order for module folders; earlier directories win on a
  // name clash.
  std::vector<std::filesystem::path> module_dirs;
  std::filesystem::path data_dir;
  std::string bus = "local";
  size_t threads = 0;  // 0 = std::thread::hardware_concurrency()
  // How long a worker thread that ran out of work keeps looking for more
  // before it sleeps (bus/worker_threads.h); 0 sleeps at once.
  std::chrono::microseconds idle_spin{100};
  std::string log_level = "info";
  std::chrono::milliseconds shutdown_deadline{5000};

  struct Supervision {
    int max_restarts = 5;
    std::chrono::seconds window{60};
    std::chrono::milliseconds backoff_initial{100};
    std::chrono::milliseconds backoff_max{30000};
  } supervision;

  // Per-module config overlays from the file's `modules:` map; each value is
  // a JSON object.
  std::map<std::string, Json> module_config;
  std::set<std::string> disabled_modules;
  // The `llm:` section (providers, model aliases, fallback chains), as
  // given; the provider router validates it.
  Json llm = Json::object();
  // The `redis:` section, as given; RedisBusOptions::from_config checks it.
  Json redis = Json::object();
  // The `api:` section of the daemon, as given; api::ApiOptions checks it.
  Json api = Json::object();

  // How tools are called: the permission policy and the limits.
  struct Tools {
    // (pattern, decision) in file order; the most specific pattern that
    // matches a tool's "module.tool" name wins (see ToolPolicy).
    std::vector<std::pair<std::string, std::string>> policy;
    std::map<std::string, std::string> risk = {
        {"low", "allow"}, {"medium", "allow"}, {"high", "ask"}};
    std::chrono::milliseconds timeout{30000};
    std::chrono::milliseconds approval_timeout{300000};
    size_t max_result_bytes = 32768;
  } tools;

  // The file the settings were read from; empty if none was.
  std::filesystem::path config_file;
  // Where LOTUS keeps its own secrets (the API token): the folder of an
  // explicit --config file, else $XDG_CONFIG_HOME/lotus.
  std::filesystem::path config_dir;

  // threads with 0 resolved to the hardware thread count (at least 1).
  size_t effective_threads() const;
};

struct ConfigSources {
  using EnvLookup = std::function<std::optional<std::string>(const char*)>;

  // --config: when set the file must exist; when unset the default location
  // is read if present.
  std::optional<std::filesystem::path> config_file;
  // Environment lookup, replaceable so tests need not touch the real one.
  EnvLookup env = process_env;
  // Modules shipped with this build; first entry of the default module_dirs.
  std::filesystem::path builtin_modules_dir;

  static std::optional<std::string> process_env(const char* name);
};

Result<Config> load_config(const ConfigSources& sources);

// Checks the values that have a restricted form (log level, bus URL, ranges);
// load_config() runs it, and a caller that applies flags can run it again.
Status validate(const Config& config);

// Checks `bus` is "local" or a syntactically valid redis:// URL.
Status validate_bus(std::string_view bus);
// Checks `level` is one of trace, debug, info, warn, error, off.
Status validate_log_level(std::string_view level);

// A short multi-line, human-readable summary (for `lotus config`). Passwords
// in a bus URL are masked.
std::string describe(const Config& config);

}  // namespace lotus
