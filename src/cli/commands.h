// The lotus subcommands, kept apart from argument parsing so each reads as
// one small function.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace lotus {
class Nucleus;
}

namespace lotus::cli {

class SignalWatcher;

// Flags that override the config file and environment.
struct GlobalOptions {
  std::string config_file;
  std::vector<std::string> module_dirs;
  std::string data_dir;
  std::string log_level;
  std::string bus;
  int threads = -1;
  long idle_spin_us = -1;  // -1: not given
};

Status apply_flags(const GlobalOptions& flags, Config& config);

// Boots a nucleus with signals routed to request_stop(); returns it booted,
// or null after printing why it could not boot. `current` points at it while
// it boots, for signal handlers. Errors start with `command` ("lotus mcp").
std::unique_ptr<Nucleus> boot(const Config& config, SignalWatcher& signals,
                              std::atomic<Nucleus*>& current, std::string_view command = "lotus");

int run_check(const Config& config, const std::vector<std::string>& dirs);
int run_modules(const Config& config, bool json);
int run_health(const Config& config, bool json);
int run_events(const Config& config, const std::string& pattern, bool json);
int run_interactive(const Config& config);
struct ProvidersOptions {
  bool json = false;
  bool offline = false;   // only say whether each has what it needs; contact nothing
  int timeout_ms = 5000;  // per provider check
};
// Lists the providers and checks each one's connection; 0 when one is usable.
int run_providers(const Config& config, const ProvidersOptions& options);
// In streams_command.cc.
int run_streams(const Config& config, bool json);

struct ServeOptions {
  std::string host;  // "" = api.host
  int port = -1;     // -1 = api.port
};
// In serve_command.cc: runs the daemon (HTTP API, event stream, web UI)
// until SIGINT or SIGTERM.
int run_serve(Config config, const ServeOptions& options);

struct AskOptions {
  std::string text;
  std::string conversation;        // "" = a fresh one
  std::vector<std::string> allow;  // tool patterns allowed without asking, for this run
  bool json = false;               // print the task's outcome as JSON instead of the reply
};
// Sends one request to the reasoning engine, shows the reply as it streams
// and exits: 0 answered, 1 failed, 130 cancelled with Ctrl-C.
int run_ask(Config config, const AskOptions& options);

struct McpOptions {
  std::vector<std::string> allow;              // tool patterns allowed without asking
  size_t max_message_bytes = 4 * 1024 * 1024;  // larger messages are refused
};
// In mcp_command.cc: serves MCP on stdin/stdout until stdin closes or a
// signal; logs go to stderr (and the log file), never stdout.
int run_mcp(Config config, const McpOptions& options);
// Boots, waits for the configured MCP servers to start, lists them.
int run_mcp_servers(const Config& config, bool json);

}  // namespace lotus::cli
