// The lotus command: boots the nucleus and talks to it.
//
//   lotus                    interactive session (the default)
//   lotus check [DIR...]     validate manifests, print the load order
//   lotus modules            list modules with version, type and state
//   lotus health [--json]    health of every module and the process
//   lotus events [PATTERN]   tail the live bus
//   lotus ask "..."          one request to the reasoning engine
//   lotus serve              the daemon: HTTP API, live events, web UI
//   lotus streams            Redis bus streams: length, groups, pending
//   lotus mcp                MCP server on stdin/stdout
//   lotus mcp servers        the external MCP servers LOTUS mounts
//   lotus memory ...         add, search, forget, stats, reindex (cli/memory_command.h)
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <thread>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/memory_command.h"
#include "core/config.h"
#include "lotus/strings.h"

namespace {

std::filesystem::path builtin_modules_dir() {
  if (const char* dir = std::getenv("LOTUS_BUILTIN_MODULES"); dir != nullptr && *dir != '\0') {
    return dir;
  }
  return std::filesystem::path(LOTUS_SOURCE_DIR) / "modules";
}

// Logs go to <data_dir>/lotus.log at the configured level; only warnings and
// worse also reach the terminal, so they do not drown what the command prints.
void setup_logging(const lotus::Config& config) {
  std::vector<spdlog::sink_ptr> sinks;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_level(spdlog::level::warn);
  sinks.push_back(console);
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  try {
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(
        (config.data_dir / "lotus.log").string(), /*truncate=*/false);
    sinks.push_back(file);
  } catch (const spdlog::spdlog_ex& e) {
    std::cerr << "lotus: cannot write the log file: " << e.what() << "\n";
  }
  auto logger = std::make_shared<spdlog::logger>("lotus", sinks.begin(), sinks.end());
  logger->set_level(spdlog::level::from_str(config.log_level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "LOTUS: an AI operating system. A small kernel boots modules from manifest.yaml files;\n"
      "modules talk only through events on a bus.\n\n"
      "With no command, starts an interactive session: each line you type is published as\n"
      "perception.user_input and whatever arrives on action.display is printed.\n"
      "Lines starting with / are commands: /help, /modules, /health, /quit.",
      "lotus"};
  app.set_version_flag("--version", std::string("lotus ") + LOTUS_VERSION);
  app.require_subcommand(0, 1);

  lotus::cli::GlobalOptions global;
  app.add_option("--config", global.config_file,
                 "Config file (default: $XDG_CONFIG_HOME/lotus/config.yaml)");
  app.add_option("--module-path", global.module_dirs,
                 "Module folder to search (repeatable; replaces the configured list)");
  app.add_option("--data-dir", global.data_dir, "Where state and logs live");
  app.add_option("--log-level", global.log_level, "trace, debug, info, warn, error or off");
  app.add_option("--threads", global.threads, "Worker threads (0: one per hardware thread)");
  app.add_option("--idle-spin-us", global.idle_spin_us,
                 "How long a worker out of work looks for more before it sleeps (0: at once)");
  app.add_option("--bus", global.bus, "Bus backend: local (default) or redis://host[:port][/db]");
  bool standalone = false;
  app.add_flag("--standalone", standalone,
               "health, modules, events and ask boot their own nucleus even when a lotus serve "
               "daemon is running (they use the daemon by default)");

  auto* check = app.add_subcommand(
      "check", "Validate the manifests in DIR (default: the module folders), print the load order");
  std::vector<std::string> check_dirs;
  check->add_option("DIR", check_dirs, "Folders holding modules");

  auto* modules = app.add_subcommand("modules", "Boot, list modules with version, type and state");
  bool modules_json = false;
  modules->add_flag("--json", modules_json, "Print JSON");

  auto* health = app.add_subcommand("health", "Boot, print health of every module and the process");
  bool health_json = false;
  health->add_flag("--json", health_json, "Print JSON");

  auto* events = app.add_subcommand("events", "Boot and tail the live bus (Ctrl-C to stop)");
  std::string events_pattern = "**";
  events->add_option("PATTERN", events_pattern,
                     "Channel pattern: * is one segment, ** any number (default **)");
  bool events_json = false;
  events->add_flag("--json", events_json, "Print each event as one line of JSON");

  auto* config_cmd = app.add_subcommand("config", "Print the effective configuration");

  auto* streams = app.add_subcommand(
      "streams", "List the Redis bus's streams: length, groups, consumers, pending entries");
  bool streams_json = false;
  streams->add_flag("--json", streams_json, "Print JSON");

  auto* providers = app.add_subcommand(
      "providers",
      "List the configured LLM providers and check each one's connection (a model list\n"
      "request): reachable, key accepted, latency, configured models present. Exit 0 when\n"
      "at least one is usable, else 1");
  lotus::cli::ProvidersOptions providers_options;
  providers->add_flag("--json", providers_options.json, "Print JSON");
  providers->add_flag("--offline", providers_options.offline,
                      "Contact nothing: only say whether each has what it needs (key, script)");
  providers
      ->add_option("--timeout-ms", providers_options.timeout_ms,
                   "How long each check may take (default 5000)")
      ->check(CLI::Range(1, 600'000));

  auto* ask = app.add_subcommand(
      "ask",
      "Boot, send one request to the reasoning engine, print the answer as it streams, exit\n"
      "(0 answered, 1 failed, 130 cancelled). Tool calls are shown on stderr; calls that need\n"
      "approval are asked on the terminal, or denied when stdin is not one.");
  lotus::cli::AskOptions ask_options;
  std::vector<std::string> ask_words;
  ask->add_option("REQUEST", ask_words, "What to ask (several words are joined)")->required();
  ask->add_option("--conversation", ask_options.conversation,
                  "Continue this conversation (default: a fresh one)");
  ask->add_option("--allow", ask_options.allow,
                  "Run tools matching this pattern without asking (repeatable), e.g. fs.write");
  ask->add_flag("--json", ask_options.json,
                "Print the outcome (answer, tool calls, error) as JSON");

  auto* serve = app.add_subcommand(
      "serve",
      "Run LOTUS as a daemon: the HTTP API, the live event stream (WebSocket) and the web UI,\n"
      "on loopback by default (config api: host, port). Prints the UI's address with the\n"
      "access token; the token is kept in the config folder (api-token, mode 0600). Runs\n"
      "until Ctrl-C or SIGTERM");
  lotus::cli::ServeOptions serve_options;
  serve->add_option("--host", serve_options.host,
                    "Address to listen on (default api.host, 127.0.0.1)");
  serve->add_option("--port", serve_options.port, "Port (default api.port, 7777; 0 = any free)")
      ->check(CLI::Range(0, 65535));

  auto* mcp = app.add_subcommand(
      "mcp",
      "Serve the Model Context Protocol on stdin/stdout (newline-delimited JSON-RPC), the way\n"
      "IDEs and assistants start MCP servers: every LOTUS tool, resources and prompts.\n"
      "A call that needs approval asks the client's person (elicitation) when the client\n"
      "offers it, and is refused at once when nothing can answer (see --allow).\n"
      "Logs go to stderr and the log file, never stdout. Ends when stdin closes");
  lotus::cli::McpOptions mcp_options;
  mcp->add_option("--allow", mcp_options.allow,
                  "Run tools matching this pattern without asking (repeatable), e.g. fs.write");
  mcp->add_option("--max-message-bytes", mcp_options.max_message_bytes,
                  "Refuse larger messages (default 4 MiB)")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  auto* mcp_servers = mcp->add_subcommand(
      "servers",
      "Boot, start the external MCP servers config names (mcp: servers:) and list each one's\n"
      "state and the tools it mounted (as mcp_<server>.<tool>). Exit 1 when one failed");
  bool mcp_servers_json = false;
  mcp_servers->add_flag("--json", mcp_servers_json, "Print JSON");

  lotus::cli::MemoryCommand memory(app);

  CLI11_PARSE(app, argc, argv);
  if (standalone) setenv("LOTUS_STANDALONE", "1", 1);

  lotus::ConfigSources sources;
  if (!global.config_file.empty()) sources.config_file = global.config_file;
  sources.builtin_modules_dir = builtin_modules_dir();
  auto config = lotus::load_config(sources);
  if (!config.ok()) {
    std::cerr << "lotus: " << lotus::message_of(config.status()) << "\n";
    return 2;
  }
  if (lotus::Status s = lotus::cli::apply_flags(global, *config); !s.ok()) {
    std::cerr << "lotus: " << lotus::message_of(s) << "\n";
    return 2;
  }

  if (*check) return lotus::cli::run_check(*config, check_dirs);
  if (*config_cmd) {
    std::cout << lotus::describe(*config);
    return 0;
  }
  setup_logging(*config);
  if (*providers) return lotus::cli::run_providers(*config, providers_options);
  if (*streams) return lotus::cli::run_streams(*config, streams_json);
  if (memory.selected()) return memory.run(*config);
  if (*mcp_servers) return lotus::cli::run_mcp_servers(*config, mcp_servers_json);
  if (*mcp) return lotus::cli::run_mcp(*config, mcp_options);
  if (*modules) return lotus::cli::run_modules(*config, modules_json);
  if (*health) return lotus::cli::run_health(*config, health_json);
  if (*events) return lotus::cli::run_events(*config, events_pattern, events_json);
  if (*serve) return lotus::cli::run_serve(*config, serve_options);
  if (*ask) {
    for (const std::string& word : ask_words) {
      ask_options.text += (ask_options.text.empty() ? "" : " ") + word;
    }
    return lotus::cli::run_ask(*config, ask_options);
  }
  return lotus::cli::run_interactive(*config);
}
