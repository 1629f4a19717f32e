#include "mcp/mcp_client.h"

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bus/local_bus.h"
#include "lotus/strings.h"
#include "mcp/mcp_connection.h"
#include "mcp/mcp_server.h"
#include "testing/sync_wait.h"
#include "testing/temp_dir.h"

namespace lotus::mcp {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// LOTUS's client talking to LOTUS's server in-process: the client's output
// is the server's input and the other way round.
class ClientServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto manifest = parse_manifest(R"(name: echo
version: 1.0.0
type: core
permissions: [memory.read]
tools:
  - name: say
    parameters: [{name: text, type: string, required: true}]
  - name: hang
)",
                                   "echo/manifest.yaml");
    ASSERT_TRUE(manifest.ok()) << manifest.status();
    registry_.add_module(*manifest);
    Subscriber module;
    module.tap = [this](const EventPtr& event) {
      if (event->channel != "tool.echo.say") return;
      (void)bus_.reply(*event, "echo",
                       Json{{"ok", true}, {"result", event->data["arguments"]["text"]}});
    };
    ASSERT_TRUE(bus_.subscribe("tool.echo.*", SubscriptionFilter(), module).ok());
    llm::ToolBrokerOptions options;
    options.timeout = 300ms;  // echo.hang never answers
    broker_ = llm::ToolBroker::create(bus_, registry_, std::move(options));
    ASSERT_TRUE(broker_->start().ok());
    server_ =
        McpServer::create(bus_, registry_, broker_.get(), nullptr, {}, [this](std::string message) {
          if (client_) client_->handle(message);
        });
    ASSERT_TRUE(server_->start().ok());
    client_ = McpClient::create(
        bus_.executor(),
        [this](std::string message) {
          server_->handle(message);
          return true;
        },
        [this](const std::string& method, const Json&) {
          std::lock_guard lock(mutex_);
          notifications_.push_back(method);
        });
  }
  void TearDown() override {
    client_->close(absl::CancelledError("test over"));
    server_->close();
    broker_->stop();
  }
  Result<Json> call(std::string method, Json params, std::chrono::milliseconds timeout = 5s) {
    return client_->call_sync(std::move(method), std::move(params), timeout);
  }

  LocalBus bus_{2};
  llm::ToolRegistry registry_;
  std::shared_ptr<llm::ToolBroker> broker_;
  std::shared_ptr<McpServer> server_;
  std::shared_ptr<McpClient> client_;
  std::mutex mutex_;
  std::vector<std::string> notifications_;
  std::atomic<size_t> sent_count_{0};
};

TEST_F(ClientServerTest, InitializesListsAndCalls) {
  auto init = call("initialize", {{"protocolVersion", "2025-11-25"},
                                  {"capabilities", Json::object()},
                                  {"clientInfo", {{"name", "lotus"}, {"version", "1"}}}});
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_EQ((*init)["protocolVersion"], "2025-11-25");
  auto tools = call("tools/list", Json::object());
  ASSERT_TRUE(tools.ok());
  EXPECT_EQ((*tools)["tools"].size(), 2u);
  auto said = call("tools/call", {{"name", "echo__say"}, {"arguments", {{"text", "hi"}}}});
  ASSERT_TRUE(said.ok());
  EXPECT_EQ(tool_call_result(*said).value(), "hi");
  auto unknown = call("no/such", Json::object());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnimplemented);
  auto bad = call("tools/call", {{"name", 5}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientServerTest, ATimedOutCallFailsAndTheServerIsToldToStop) {
  ASSERT_TRUE(call("initialize", {{"protocolVersion", "2025-11-25"}}).ok());
  auto hung = call("tools/call", {{"name", "echo.hang"}}, 100ms);
  EXPECT_EQ(hung.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(message_of(hung.status())), HasSubstr("no answer within 100 ms"));
  // The server got notifications/cancelled: when the tool gives up, nothing
  // is sent for the call.
  size_t sent_before = sent_count_.load();
  for (int i = 0; i < 2000 && server_->in_flight() > 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(sent_count_.load(), sent_before);
  EXPECT_EQ(server_->in_flight(), 0u);
  EXPECT_EQ(client_->pending(), 0u);
}

TEST_F(ClientServerTest, ClosingFailsWhatIsPendingAndWhatComesLater) {
  ASSERT_TRUE(call("initialize", {{"protocolVersion", "2025-11-25"}}).ok());
  std::thread closer([this] {
    std::this_thread::sleep_for(50ms);
    client_->close(absl::UnavailableError("server gone"));
  });
  auto hung = call("tools/call", {{"name", "echo.hang"}}, 10s);
  closer.join();
  EXPECT_EQ(hung.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(call("ping", Json::object()).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ClientServerTest, NotificationsReachTheCallback) {
  ASSERT_TRUE(call("initialize", {{"protocolVersion", "2025-11-25"}}).ok());
  ASSERT_TRUE(bus_.publish(Event::make("system.tools_changed", "nucleus", Json::object())).ok());
  for (int i = 0; i < 2000; ++i) {
    {
      std::lock_guard lock(mutex_);
      if (!notifications_.empty()) break;
    }
    std::this_thread::sleep_for(5ms);
  }
  std::lock_guard lock(mutex_);
  EXPECT_EQ(notifications_, (std::vector<std::string>{"notifications/tools/list_changed"}));
}

TEST(McpClientTest, AnswersTheServersPingAndRefusesOtherRequests) {
  LocalBus bus{1};
  std::vector<Json> sent;
  auto client = McpClient::create(bus.executor(), [&](std::string message) {
    sent.push_back(Json::parse(message));
    return true;
  });
  client->handle(R"({"jsonrpc":"2.0","id":"s1","method":"ping"})");
  client->handle(R"({"jsonrpc":"2.0","id":"s2","method":"sampling/createMessage","params":{}})");
  client->handle("garbage");  // ignored
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0]["result"], Json::object());
  EXPECT_EQ(sent[1]["error"]["code"], kMethodNotFound);
}

TEST(McpConfigTest, ReadsServersAsOtherClientsWriteThem) {
  auto servers = parse_server_configs(Json::parse(R"({
    "servers": {"files": {"command": "npx", "args": ["-y", "server-filesystem", "/tmp"],
                          "env": {"DEBUG": "1"}, "timeout_ms": 5000}},
    "mcpServers": {"remote": {"url": "http://localhost:9/mcp"},
                   "off": {"command": "x", "enabled": false, "permissions": ["file.read"]}}
  })"));
  ASSERT_TRUE(servers.ok()) << servers.status();
  ASSERT_EQ(servers->size(), 3u);
  std::map<std::string, McpServerConfig> by_name;
  for (const McpServerConfig& server : *servers) by_name[server.name] = server;
  const McpServerConfig& files = by_name["files"];
  EXPECT_EQ(files.name, "files");
  EXPECT_EQ(files.command, "npx");
  EXPECT_EQ(files.args, (std::vector<std::string>{"-y", "server-filesystem", "/tmp"}));
  EXPECT_EQ(files.env.at("DEBUG"), "1");
  EXPECT_EQ(files.timeout, 5000ms);
  EXPECT_EQ(files.permissions, (std::vector<std::string>{"process.exec"}));
  EXPECT_EQ(by_name["remote"].url, "http://localhost:9/mcp");
  EXPECT_FALSE(by_name["off"].enabled);
  EXPECT_EQ(by_name["off"].permissions, (std::vector<std::string>{"file.read"}));

  for (const char* bad :
       {R"({"servers": {"Bad Name": {"command": "x"}}})", R"({"servers": {"a": {"args": ["x"]}}})",
        R"({"servers": {"a": {"command": "x", "url": "http://y"}}})",
        R"({"servers": {"a": {"command": "x", "colour": "red"}}})",
        R"({"servers": {"a": {"command": "x", "timeout_ms": -1}}})",
        R"({"servers": {"a": {"command": "x"}}, "mcpServers": {"a": {"command": "y"}}})",
        R"({"servers": [1]})"}) {
    EXPECT_FALSE(parse_server_configs(Json::parse(bad)).ok()) << bad;
  }
}

TEST(McpConfigTest, ToolNamesAndResults) {
  EXPECT_EQ(lotus_tool_name("read.file/now"), "read_file_now");
  EXPECT_EQ(lotus_tool_name(std::string(100, 'a')).size(), 64u);
  EXPECT_EQ(
      tool_call_result(
          Json::parse(R"({"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]})"))
          .value(),
      "a\nb");
  auto image = tool_call_result(Json::parse(R"({"content":[{"type":"image","data":"AA=="}]})"));
  ASSERT_TRUE(image.ok());
  EXPECT_TRUE(image->is_array());
  auto error =
      tool_call_result(Json::parse(R"({"isError":true,"content":[{"type":"text","text":"no"}]})"));
  EXPECT_FALSE(error.ok());
  EXPECT_EQ(message_of(error.status()), "no");
}

TEST(McpConnectionTest, AServerThatCannotStartIsRetriedAndReported) {
  LocalBus bus{1};
  McpServerConfig config;
  config.name = "ghost";
  config.command = "/nonexistent/mcp-server";
  config.backoff_initial = 20ms;
  config.backoff_max = 40ms;
  std::atomic<int> mounts{0};
  testing::TempDir dir;
  auto connection = McpConnection::create(config, bus.executor(), dir.path(),
                                          [&](std::vector<MountedTool>) { mounts++; });
  connection->start();
  Json status;
  for (int i = 0; i < 2000; ++i) {
    status = connection->status();
    if (status["restarts"].get<int>() >= 2) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_GE(status["restarts"].get<int>(), 2) << status.dump();
  EXPECT_THAT(status["error"].get<std::string>(),
              HasSubstr("cannot run \"/nonexistent/mcp-server\""));
  auto call = testing::sync_wait(bus.executor(), connection->call_tool("x", Json::object()));
  EXPECT_EQ(call.status().code(), absl::StatusCode::kUnavailable);
  connection->stop();
  EXPECT_EQ(connection->status()["state"], "stopped");
  EXPECT_EQ(mounts.load(), 0);
}

TEST(McpConnectionTest, AnUnreachableUrlServerFailsSayingWhereAndIsRetried) {
  LocalBus bus{1};
  McpServerConfig config;
  config.name = "remote";
  config.url = "http://127.0.0.1:1/mcp";  // nothing listens on port 1
  config.backoff_initial = 20ms;
  auto connection =
      McpConnection::create(config, bus.executor(), "/tmp", [](std::vector<MountedTool>) {});
  connection->start();
  Json status;
  for (int i = 0; i < 2000; ++i) {
    status = connection->status();
    if (status["restarts"].get<int>() >= 1) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(status["state"], "failed") << status.dump();
  EXPECT_THAT(status["error"].get<std::string>(), HasSubstr("cannot reach http://127.0.0.1:1/mcp"));
  EXPECT_EQ(status["transport"], "http");
  connection->stop();
}

}  // namespace
}  // namespace lotus::mcp
