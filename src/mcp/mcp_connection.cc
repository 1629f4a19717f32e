#include "mcp/mcp_connection.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "lotus/strings.h"
#include "mcp/http_session.h"
#include "mcp/mcp_server.h"
#include "mcp/stdio_child.h"

namespace lotus::mcp {

namespace {

constexpr size_t kMaxMessageBytes = 16 * 1024 * 1024;
// A server that stayed up this long is healthy again: the backoff restarts.
constexpr auto kStableAfter = std::chrono::seconds(30);

Result<std::chrono::milliseconds> millis(const Json& server, const char* key,
                                         std::chrono::milliseconds fallback,
                                         const std::string& where) {
  auto it = server.find(key);
  if (it == server.end()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < 1) {
    return absl::InvalidArgumentError(cat(where, ".", key, ": must be a positive integer (ms)"));
  }
  return std::chrono::milliseconds(it->get<int64_t>());
}

bool valid_server_name(std::string_view name) {
  if (name.empty() || name.size() > 40) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

Result<std::vector<McpServerConfig>> parse_server_configs(const Json& config) {
  std::vector<McpServerConfig> servers;
  if (!config.is_object()) return servers;
  for (const char* section : {"servers", "mcpServers"}) {
    auto map = config.find(section);
    if (map == config.end() || map->is_null()) continue;
    if (!map->is_object()) {
      return absl::InvalidArgumentError(cat("mcp.", section,
                                            ": must be a map of server name to "
                                            "{command, args, env} or {url}"));
    }
    for (const auto& [name, server] : map->items()) {
      const std::string where = cat("mcp.", section, ".", name);
      if (!valid_server_name(name)) {
        return absl::InvalidArgumentError(
            cat(where,
                ": server names are lowercase letters, digits and _ (at most 40): they "
                "become the tool namespace mcp_<name>"));
      }
      for (const McpServerConfig& seen : servers) {
        if (seen.name == name) return absl::InvalidArgumentError(cat(where, ": named twice"));
      }
      if (!server.is_object()) {
        return absl::InvalidArgumentError(cat(where, ": must be {command, args, env} or {url}"));
      }
      McpServerConfig c;
      c.name = name;
      for (const auto& [key, value] : server.items()) {
        static const std::vector<std::string> known = {"command",
                                                       "args",
                                                       "env",
                                                       "url",
                                                       "enabled",
                                                       "disabled",
                                                       "timeout_ms",
                                                       "init_timeout_ms",
                                                       "backoff_initial_ms",
                                                       "backoff_max_ms",
                                                       "permissions",
                                                       "type",
                                                       "headers"};
        if (std::find(known.begin(), known.end(), key) == known.end()) {
          return absl::InvalidArgumentError(cat(where, ": unknown key \"", key, "\""));
        }
      }
      if (auto it = server.find("command"); it != server.end()) {
        if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
          return absl::InvalidArgumentError(cat(where, ".command: must be a non-empty string"));
        }
        c.command = it->get<std::string>();
      }
      if (auto it = server.find("args"); it != server.end()) {
        if (!it->is_array()) return absl::InvalidArgumentError(cat(where, ".args: must be a list"));
        for (const Json& arg : *it) {
          if (!arg.is_string() && !arg.is_number()) {
            return absl::InvalidArgumentError(cat(where, ".args: every argument is a string"));
          }
          c.args.push_back(arg.is_string() ? arg.get<std::string>() : arg.dump());
        }
      }
      if (auto it = server.find("env"); it != server.end()) {
        if (!it->is_object()) return absl::InvalidArgumentError(cat(where, ".env: must be a map"));
        for (const auto& [key, value] : it->items()) {
          c.env[key] = value.is_string() ? value.get<std::string>() : value.dump();
        }
      }
      if (auto it = server.find("url"); it != server.end()) {
        if (!it->is_string())
          return absl::InvalidArgumentError(cat(where, ".url: must be a string"));
        c.url = it->get<std::string>();
      }
      if (c.command.empty() == c.url.empty()) {
        return absl::InvalidArgumentError(cat(where, ": give either command (stdio) or url"));
      }
      if (auto it = server.find("enabled"); it != server.end() && it->is_boolean()) {
        c.enabled = it->get<bool>();
      }
      if (auto it = server.find("disabled"); it != server.end() && it->is_boolean()) {
        c.enabled = c.enabled && !it->get<bool>();
      }
      auto timeout = millis(server, "timeout_ms", c.timeout, where);
      auto init = millis(server, "init_timeout_ms", c.init_timeout, where);
      auto backoff = millis(server, "backoff_initial_ms", c.backoff_initial, where);
      auto backoff_max = millis(server, "backoff_max_ms", c.backoff_max, where);
      for (const Status& s :
           {timeout.status(), init.status(), backoff.status(), backoff_max.status()}) {
        if (!s.ok()) return s;
      }
      c.timeout = *timeout;
      c.init_timeout = *init;
      c.backoff_initial = *backoff;
      c.backoff_max = *backoff_max;
      if (auto it = server.find("permissions"); it != server.end()) {
        if (!it->is_array()) {
          return absl::InvalidArgumentError(cat(where, ".permissions: must be a list"));
        }
        c.permissions.clear();
        for (const Json& p : *it) {
          if (!p.is_string()) {
            return absl::InvalidArgumentError(cat(where, ".permissions: must be strings"));
          }
          c.permissions.push_back(p.get<std::string>());
        }
      }
      servers.push_back(std::move(c));
    }
  }
  return servers;
}

std::string lotus_tool_name(std::string_view mcp_name) {
  std::string out;
  for (char c : mcp_name) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
    if (out.size() == 64) break;
  }
  if (out.empty()) out = "tool";
  return out;
}

Result<Json> tool_call_result(const Json& result) {
  if (!result.is_object())
    return absl::InternalError("the server's tools/call result is not an object");
  std::string text;
  bool all_text = true;
  Json content = result.value("content", Json::array());
  if (!content.is_array()) content = Json::array();
  for (const Json& item : content) {
    if (item.is_object() && item.value("type", "") == "text") {
      if (!text.empty()) text += "\n";
      text += item.value("text", "");
    } else {
      all_text = false;
    }
  }
  if (result.value("isError", false)) {
    return absl::UnknownError(text.empty() ? std::string("the server reported an error") : text);
  }
  if (all_text) return Json(std::move(text));
  return content;
}

std::shared_ptr<McpConnection> McpConnection::create(McpServerConfig config,
                                                     boost::asio::any_io_executor executor,
                                                     std::filesystem::path log_dir,
                                                     OnTools on_tools) {
  return std::shared_ptr<McpConnection>(new McpConnection(std::move(config), std::move(executor),
                                                          std::move(log_dir), std::move(on_tools)));
}

McpConnection::McpConnection(McpServerConfig config, boost::asio::any_io_executor executor,
                             std::filesystem::path log_dir, OnTools on_tools)
    : config_(std::move(config)),
      executor_(std::move(executor)),
      log_dir_(std::move(log_dir)),
      on_tools_(std::move(on_tools)) {}

McpConnection::~McpConnection() { stop(); }

void McpConnection::start() {
  if (!config_.enabled) {
    set_state("disabled");
    return;
  }
  set_state("starting");
  thread_ = std::thread([self = shared_from_this()] { self->supervise(); });
}

void McpConnection::stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard lock(mutex_);
    if (interrupt_) interrupt_();
    wake_.notify_all();
  }
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }
  std::lock_guard lock(mutex_);
  if (state_ != "disabled") state_ = "stopped";
}

bool McpConnection::wait_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  wake_.wait_for(lock, d, [this] { return stopping_.load(); });
  return !stopping_.load();
}

void McpConnection::set_state(std::string state, std::string error) {
  std::lock_guard lock(mutex_);
  state_ = std::move(state);
  error_ = std::move(error);
}

void McpConnection::supervise() {
  auto backoff = config_.backoff_initial;
  while (!stopping_.load()) {
    auto began = std::chrono::steady_clock::now();
    run_once();
    if (stopping_.load()) break;
    if (std::chrono::steady_clock::now() - began > kStableAfter) backoff = config_.backoff_initial;
    {
      std::lock_guard lock(mutex_);
      ++restarts_;
      if (state_ != "failed") state_ = "restarting";
    }
    spdlog::warn("mcp server {}: {}; restarting in {} ms", config_.name,
                 status()["error"].get<std::string>(), backoff.count());
    if (!wait_for(backoff)) break;
    backoff = std::min(backoff * 2, config_.backoff_max);
  }
}

void McpConnection::run_once() {
  std::weak_ptr<McpConnection> weak = weak_from_this();
  std::atomic<bool> link_down{false};  // the server went away
  auto went_away = [this, &link_down] {
    link_down.store(true);
    std::lock_guard lock(mutex_);
    wake_.notify_all();
  };
  // The transport: a child process on pipes, or Streamable HTTP.
  std::shared_ptr<StdioChild> child;
  std::shared_ptr<HttpSession> http;
  std::shared_ptr<McpClient> client;
  if (config_.url.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(log_dir_, ec);
    auto spawned = StdioChild::spawn(config_.command, config_.args, config_.env,
                                     log_dir_ / cat(config_.name, ".stderr.log"));
    if (!spawned.ok()) {
      set_state("failed", std::string(message_of(spawned.status())));
      return;
    }
    child = *std::move(spawned);
  }
  auto on_notification = [weak](const std::string& method, const Json&) {
    if (method != "notifications/tools/list_changed") return;
    if (auto self = weak.lock()) {
      std::lock_guard lock(self->mutex_);
      self->relist_ = true;
      self->wake_.notify_all();
    }
  };
  if (child) {
    client = McpClient::create(
        executor_, [child](std::string message) { return child->write(message); }, on_notification);
  } else {
    // The session hands the client what arrives; the client sends through it.
    auto receiver = std::make_shared<std::weak_ptr<McpClient>>();
    http = HttpSession::create(
        config_.url, config_.headers,
        [receiver](std::string_view message) {
          if (auto c = receiver->lock()) c->handle(message);
        },
        [went_away](const std::string&) { went_away(); });
    client = McpClient::create(
        executor_, [http](std::string message) { return http->send(std::move(message)); },
        on_notification);
    *receiver = client;
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_.load()) {
      if (child) child->stop(std::chrono::milliseconds(0));
      return;
    }
    // Ends whatever this thread waits for; the server is stopped below.
    interrupt_ = [client] { client->close(absl::CancelledError("LOTUS is stopping")); };
    pid_ = child ? child->pid() : 0;
  }
  std::thread reader;
  if (child) {
    reader = std::thread([&] {
      LineHandlers handlers;
      handlers.on_line = [&client](std::string_view line) { client->handle(line); };
      handlers.on_oversized = [this](size_t bytes) {
        spdlog::warn("mcp server {} sent a message of {}+ bytes; ignored", config_.name, bytes);
      };
      child->read(kMaxMessageBytes, handlers);
      client->close(absl::UnavailableError(cat("MCP server ", config_.name, " closed its output")));
      went_away();
    });
  }

  auto finish = [&](std::string state, std::string error) {
    {
      std::lock_guard lock(mutex_);
      client_.reset();
      interrupt_ = nullptr;
      mcp_names_.clear();
    }
    on_tools_({});
    std::string ended;
    if (child) {
      ended = child->stop(std::chrono::milliseconds(1000));
      reader.join();
    } else {
      ended = http->error().empty() ? std::string("ended the session") : http->error();
      http->close();
    }
    client->close(absl::UnavailableError(cat("MCP server ", config_.name, " stopped")));
    if (!stopping_.load()) {
      set_state(std::move(state), error.empty() ? cat("the server ", ended) : error);
    }
  };

  Json init_params = {{"protocolVersion", std::string(kProtocolVersions[0])},
                      {"capabilities", Json::object()},
                      {"clientInfo", {{"name", "lotus"}, {"version", LOTUS_VERSION}}}};
  auto init = client->call_sync("initialize", init_params, config_.init_timeout);
  if (!init.ok()) {
    finish("failed", cat("initialize failed: ", message_of(init.status())));
    return;
  }
  std::string version = init->value("protocolVersion", "");
  if (std::find(std::begin(kProtocolVersions), std::end(kProtocolVersions), version) ==
      std::end(kProtocolVersions)) {
    finish("failed", cat("the server speaks protocol version \"", version,
                         "\", which LOTUS does not support"));
    return;
  }
  client->notify("notifications/initialized", Json::object());
  {
    std::lock_guard lock(mutex_);
    server_info_ = init->value("serverInfo", Json::object());
    protocol_version_ = version;
  }
  if (Status listed = list_and_mount(client); !listed.ok()) {
    finish("failed", cat("tools/list failed: ", message_of(listed)));
    return;
  }
  {
    std::lock_guard lock(mutex_);
    client_ = client;
  }
  set_state("running");
  spdlog::info("mcp server {} running ({}, protocol {})", config_.name,
               child ? cat("pid ", child->pid()) : config_.url, version);

  for (;;) {
    bool relist = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_.load() || link_down.load() || relist_; });
      if (stopping_.load() || link_down.load()) break;
      relist = std::exchange(relist_, false);
    }
    if (relist) {
      // A listing cut short because LOTUS is stopping is no news.
      if (Status listed = list_and_mount(client); !listed.ok() && !stopping_.load()) {
        spdlog::warn("mcp server {}: listing tools again failed: {}", config_.name,
                     message_of(listed));
      }
    }
  }
  finish("restarting", "");
}

Status McpConnection::list_and_mount(const std::shared_ptr<McpClient>& client) {
  std::vector<MountedTool> tools;
  std::map<std::string, std::string> names;
  Json cursor;
  for (int page = 0; page < 1000; ++page) {
    Json params = Json::object();
    if (!cursor.is_null()) params["cursor"] = cursor;
    auto listed = client->call_sync("tools/list", params, config_.init_timeout);
    if (!listed.ok()) return listed.status();
    for (const Json& tool : listed->value("tools", Json::array())) {
      if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string()) continue;
      std::string mcp_name = tool["name"];
      std::string name = lotus_tool_name(mcp_name);
      for (int n = 2; names.count(name) > 0; ++n) name = lotus_tool_name(cat(mcp_name, "_", n));
      names[name] = mcp_name;
      MountedTool mounted;
      mounted.name = name;
      mounted.description = tool.value("description", std::string());
      mounted.parameters = tool.value("inputSchema", Json{{"type", "object"}});
      mounted.permissions = config_.permissions;
      tools.push_back(std::move(mounted));
    }
    cursor = listed->value("nextCursor", Json());
    if (!cursor.is_string()) break;
  }
  {
    std::lock_guard lock(mutex_);
    mcp_names_ = std::move(names);
  }
  on_tools_(std::move(tools));
  return absl::OkStatus();
}

Task<Result<Json>> McpConnection::call_tool(std::string tool, Json arguments) {
  std::shared_ptr<McpClient> client;
  std::string mcp_name;
  {
    std::lock_guard lock(mutex_);
    client = client_;
    auto it = mcp_names_.find(tool);
    if (it != mcp_names_.end()) mcp_name = it->second;
  }
  if (!client) {
    co_return absl::UnavailableError(cat("MCP server ", config_.name, " is not running (",
                                         status().value("error", std::string("stopped")), ")"));
  }
  if (mcp_name.empty()) {
    co_return absl::NotFoundError(cat("MCP server ", config_.name, " has no tool ", tool));
  }
  auto calling = client->call(
      "tools/call", {{"name", mcp_name}, {"arguments", std::move(arguments)}}, config_.timeout);
  Result<Json> result = co_await std::move(calling);
  if (!result.ok()) co_return result.status();
  co_return tool_call_result(*result);
}

Json McpConnection::status() const {
  std::lock_guard lock(mutex_);
  Json tools = Json::array();
  for (const auto& [name, mcp_name] : mcp_names_) tools.push_back(name);
  Json out = {{"name", config_.name},
              {"transport", config_.url.empty() ? "stdio" : "http"},
              {"state", state_},
              {"error", error_},
              {"restarts", restarts_},
              {"tools", std::move(tools)},
              {"namespace", cat("mcp_", config_.name)}};
  if (config_.url.empty()) {
    std::string line = config_.command;
    for (const std::string& arg : config_.args) line += " " + arg;
    out["command"] = line;
  } else {
    out["url"] = config_.url;
  }
  if (state_ == "running") {
    if (pid_ > 0) out["pid"] = pid_;
    out["server"] = server_info_;
    out["protocol_version"] = protocol_version_;
  }
  return out;
}

}  // namespace lotus::mcp
