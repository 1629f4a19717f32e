// McpModule: the built-in `mcp` module, LOTUS as a client of external MCP
// servers. One McpConnection per configured server keeps it running and
// mounts its tools as mcp_<server>.<tool>; calls reach the server through
// the connection, off this module's mailbox, so a slow server never holds up
// another's calls.
#include <memory>
#include <string>
#include <vector>

#include "bus/io_thread.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "mcp/mcp_connection.h"
#include "runtime/module_factory.h"

namespace lotus::mcp {
namespace {

Task<Result<Json>> call_on(std::shared_ptr<McpConnection> connection, std::string tool,
                           Json arguments) {
  auto calling = connection->call_tool(std::move(tool), std::move(arguments));
  Result<Json> result = co_await std::move(calling);
  co_return result;
}

class McpModule final : public Module {
 public:
  Task<void> initialize() override {
    auto servers = parse_server_configs(config());
    if (!servers.ok()) throw PermanentError(cat("config ", message_of(servers.status())));
    on("on_servers", &McpModule::on_servers);
    if (servers->empty()) co_return;  // nothing to run: no thread either
    if (auto wait = config().find("startup_wait_ms");
        wait != config().end() && (!wait->is_number_integer() || wait->get<int64_t>() < 0)) {
      throw PermanentError("config startup_wait_ms: must be a whole number of ms, 0 or more");
    }
    io_ = std::make_unique<IoThread>();
    ModuleContext* context = &this->context();
    const std::string prefix = cat(context->module_name(), "_");
    for (McpServerConfig& server : *servers) {
      std::string group = cat(prefix, server.name);
      auto connection = McpConnection::create(
          std::move(server), io_->context().get_executor(), context->data_dir(),
          [context, group, this](std::vector<MountedTool> tools) {
            mount(context, group, std::move(tools));
          });
      connections_.push_back(connection);
    }
    for (const auto& connection : connections_) connection->start();
    // Boot waits (a while) for the servers, so their tools are there when
    // the first request comes.
    const int64_t wait_ms = config().value("startup_wait_ms", int64_t{10000});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (!settled() && std::chrono::steady_clock::now() < deadline) {
      auto pause = this->context().sleep(std::chrono::milliseconds(20));
      co_await std::move(pause);
    }
  }

  bool settled() const {
    for (const auto& connection : connections_) {
      if (connection->status()["state"] == "starting") return false;
    }
    return true;
  }

  Task<void> shutdown() override {
    for (const auto& connection : connections_) connection->stop();
    connections_.clear();
    if (io_) io_->stop();
    co_return;
  }

  Task<Json> health_check() override {
    Json servers = Json::array();
    bool healthy = true;
    for (const auto& connection : connections_) {
      Json status = connection->status();
      healthy = healthy && (status["state"] == "running" || status["state"] == "disabled");
      servers.push_back(std::move(status));
    }
    co_return Json{{"status", healthy ? "healthy" : "degraded"}, {"servers", std::move(servers)}};
  }

 private:
  void mount(ModuleContext* context, const std::string& group, std::vector<MountedTool> tools) {
    std::shared_ptr<McpConnection> connection;
    for (const auto& c : connections_) {
      if (cat(context->module_name(), "_", c->config().name) == group) connection = c;
    }
    if (!connection) return;
    std::weak_ptr<McpConnection> weak = connection;
    Status mounted = context->mount_tools(
        group, std::move(tools), [weak](std::string tool, Json arguments) -> Task<Result<Json>> {
          auto alive = weak.lock();
          if (!alive) return unavailable();
          return call_on(std::move(alive), std::move(tool), std::move(arguments));
        });
    if (!mounted.ok()) {
      context->log(LogLevel::kError,
                   cat("cannot mount the tools of MCP server ", group, ": ", message_of(mounted)));
    }
  }

  static Task<Result<Json>> unavailable() {
    co_return absl::UnavailableError("the MCP client is stopping");
  }

  // mcp.servers {wait_ms}: every server's state, once none is still starting
  // (or wait_ms passed).
  Task<void> on_servers(const Event& event) {
    int64_t wait_ms = event.data.value("wait_ms", 0);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    Json servers;
    for (;;) {
      servers = Json::array();
      bool settled = true;
      for (const auto& connection : connections_) {
        Json status = connection->status();
        settled = settled && status["state"] != "starting";
        servers.push_back(std::move(status));
      }
      if (settled || std::chrono::steady_clock::now() >= deadline) break;
      auto pause = context().sleep(std::chrono::milliseconds(50));
      co_await std::move(pause);
    }
    if (!event.metadata.reply_to.empty()) {
      (void)reply(event, Json{{"ok", true}, {"servers", std::move(servers)}});
    }
  }

  std::unique_ptr<IoThread> io_;
  std::vector<std::shared_ptr<McpConnection>> connections_;
};

static RegisterBuiltinModule<McpModule> registered("mcp");

}  // namespace
}  // namespace lotus::mcp
