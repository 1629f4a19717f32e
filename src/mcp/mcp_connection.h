// McpConnection: one external MCP server LOTUS uses, kept alive.
//
// A thread of its own starts the server (a stdio child process, or a
// Streamable HTTP session when config gives a url), runs the
// initialize handshake, lists its tools (every page) and hands them to
// `on_tools` to mount; on notifications/tools/list_changed it lists them
// again. When the server dies its tools are unmounted, calls in flight fail,
// and it is restarted after an exponential backoff. Every call has a timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "lotus/module.h"
#include "mcp/mcp_client.h"

namespace lotus::mcp {

struct McpServerConfig {
  std::string name;  // the key under servers: (tools mount as mcp_<name>.<tool>)
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string url;                             // Streamable HTTP instead of a command
  std::map<std::string, std::string> headers;  // sent with every HTTP request
  bool enabled = true;
  std::chrono::milliseconds timeout{60000};       // per call
  std::chrono::milliseconds init_timeout{30000};  // start + initialize + tools/list
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30000};
  std::vector<std::string> permissions{"process.exec"};  // risk of every tool it offers
};

// The `servers` (or `mcpServers`) map of the mcp module's config, in the
// form other MCP clients use: {NAME: {command, args, env} | {url}}.
Result<std::vector<McpServerConfig>> parse_server_configs(const Json& config);

// "read.file" -> "read_file": what LOTUS tool names may hold ([A-Za-z0-9_-],
// at most 64 characters).
std::string lotus_tool_name(std::string_view mcp_name);

// A tools/call result as a LOTUS tool result: the text of its content (or
// the content itself when it is not all text); isError becomes an error.
Result<Json> tool_call_result(const Json& result);

class McpConnection : public std::enable_shared_from_this<McpConnection> {
 public:
  // Receives the server's tools to mount (empty: unmount), from the
  // connection's thread.
  using OnTools = std::function<void(std::vector<MountedTool> tools)>;

  static std::shared_ptr<McpConnection> create(McpServerConfig config,
                                               boost::asio::any_io_executor executor,
                                               std::filesystem::path log_dir, OnTools on_tools);
  ~McpConnection();

  void start();
  // Stops the server and the thread (joins); no more on_tools calls after.
  void stop();

  // Calls a tool by its LOTUS name.
  Task<Result<Json>> call_tool(std::string tool, Json arguments);

  // {name, transport, command|url, state, error, restarts, pid, server, protocol_version,
  //  tools: [...]}; state is starting | running | restarting | failed | stopped | disabled.
  Json status() const;
  const McpServerConfig& config() const { return config_; }

 private:
  McpConnection(McpServerConfig config, boost::asio::any_io_executor executor,
                std::filesystem::path log_dir, OnTools on_tools);
  void supervise();
  // One life of the server: start, handshake, serve until it dies or stop().
  void run_once();
  Status list_and_mount(const std::shared_ptr<McpClient>& client);
  void set_state(std::string state, std::string error = {});
  // Sleeps up to `d`; false when stop() interrupted it.
  bool wait_for(std::chrono::milliseconds d);

  McpServerConfig config_;
  boost::asio::any_io_executor executor_;
  std::filesystem::path log_dir_;
  OnTools on_tools_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool relist_ = false;
  std::shared_ptr<McpClient> client_;             // while running
  std::map<std::string, std::string> mcp_names_;  // LOTUS tool name -> the server's
  std::string state_ = "stopped";
  std::string error_;
  uint64_t restarts_ = 0;
  int64_t pid_ = 0;
  Json server_info_;
  std::string protocol_version_;
  std::function<void()> interrupt_;  // stops the running child
};

}  // namespace lotus::mcp
