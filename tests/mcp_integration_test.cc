// `lotus mcp` run as an IDE runs it: the real binary with the built-in
// modules, JSON-RPC over its stdin/stdout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/mcp_process.h"
#include "support/test_env.h"
#include "testing/free_port.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

class McpStdioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::write_file(dir_.path() / "work" / "hello.txt", "hi there\n");
    testing::write_file(dir_.path() / "config" / "lotus" / "config.yaml",
                        "modules:\n  fs: {roots: [" + (dir_.path() / "work").string() +
                            "]}\n  shell: {roots: [" + (dir_.path() / "work").string() +
                            "]}\ntools:\n  policy: {\"shell.*\": deny}\n"
                            "  approval_timeout_ms: 60000\n");
  }
  std::unique_ptr<testing::McpProcess> start(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {LOTUS_BINARY, "--module-path", LOTUS_SOURCE_DIR "/modules",
                                     "mcp"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::map<std::string, std::string> env = {
        {"HOME", (dir_.path() / "home").string()},
        {"XDG_CONFIG_HOME", (dir_.path() / "config").string()},
        {"XDG_DATA_HOME", (dir_.path() / "data").string()}};
    return std::make_unique<testing::McpProcess>(argv, env, stderr_file());
  }
  std::filesystem::path stderr_file() const { return dir_.path() / "stderr.txt"; }
  static void initialize(testing::McpProcess& mcp) {
    Json init = mcp.request(0, "initialize",
                            {{"protocolVersion", "2025-06-18"},
                             {"capabilities", Json::object()},
                             {"clientInfo", {{"name", "test"}, {"version", "1"}}}});
    ASSERT_EQ(init["result"]["protocolVersion"], "2025-06-18") << init.dump();
    mcp.send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  }
  static std::string text_of(const Json& reply) {
    if (!reply.contains("result")) return reply.dump();
    return reply["result"]["content"][0].value("text", "");
  }

  testing::TempDir dir_;
};

TEST_F(McpStdioTest, ServesToolsResourcesAndPromptsAndStdoutHoldsOnlyProtocol) {
  auto mcp = start();
  initialize(*mcp);
  Json tools = mcp->request(1, "tools/list");
  std::vector<std::string> names;
  for (const Json& tool : tools["result"]["tools"]) names.push_back(tool["name"]);
  EXPECT_THAT(names,
              ::testing::IsSupersetOf({"fs__read", "fs__write", "memory__recall", "shell__run"}));

  Json read =
      mcp->request(2, "tools/call", {{"name", "fs__read"}, {"arguments", {{"path", "hello.txt"}}}});
  EXPECT_EQ(read["result"]["isError"], false) << read.dump();
  EXPECT_THAT(text_of(read), HasSubstr("hi there"));

  Json denied =
      mcp->request(3, "tools/call", {{"name", "shell__run"}, {"arguments", {{"command", "true"}}}});
  EXPECT_EQ(denied["result"]["isError"], true) << denied.dump();
  EXPECT_THAT(text_of(denied), HasSubstr("not allowed"));

  Json resources = mcp->request(4, "resources/list");
  std::vector<std::string> uris;
  for (const Json& r : resources["result"]["resources"]) uris.push_back(r["uri"]);
  EXPECT_THAT(uris, ::testing::IsSupersetOf({"lotus://health", "lotus://modules/fs/manifest"}));
  Json manifest = mcp->request(5, "resources/read", {{"uri", "lotus://modules/fs/manifest"}});
  EXPECT_THAT(manifest["result"]["contents"][0].value("text", ""), HasSubstr("name: fs"));
  Json templates = mcp->request(6, "resources/templates/list");
  EXPECT_EQ(templates["result"]["resourceTemplates"].size(), 3u) << templates.dump();
  Json remembered = mcp->request(
      7, "tools/call",
      {{"name", "memory__remember"}, {"arguments", {{"content", "the deploy key is blue"}}}});
  EXPECT_EQ(remembered["result"]["isError"], false) << remembered.dump();
  Json search = mcp->request(8, "resources/read", {{"uri", "lotus://memory/search/deploy%20key"}});
  EXPECT_THAT(search["result"]["contents"][0].value("text", ""), HasSubstr("blue"))
      << search.dump();
  Json missing = mcp->request(9, "resources/read", {{"uri", "lotus://modules/nope/manifest"}});
  EXPECT_EQ(missing["error"]["code"], -32002);

  Json prompts = mcp->request(10, "prompts/list");
  EXPECT_EQ(prompts["result"]["prompts"].size(), 3u);
  Json prompt = mcp->request(11, "prompts/get",
                             {{"name", "explain_module"}, {"arguments", {{"module", "fs"}}}});
  EXPECT_EQ(prompt["result"]["messages"][0]["content"]["type"], "resource") << prompt.dump();
  Json recall = mcp->request(12, "prompts/get",
                             {{"name", "recall"}, {"arguments", {{"topic", "deploy key"}}}});
  EXPECT_THAT(recall["result"]["messages"][0]["content"].value("text", ""), HasSubstr("blue"));

  mcp->close_stdin();
  EXPECT_EQ(mcp->wait(20s), 0) << testing::read_file(stderr_file());
  for (const std::string& line : mcp->lines()) {
    Json message = Json::parse(line, nullptr, false);
    ASSERT_TRUE(message.is_object()) << "not JSON-RPC on stdout: " << line;
    EXPECT_EQ(message["jsonrpc"], "2.0") << line;
  }
}

TEST_F(McpStdioTest, BadInputGetsTheSpecifiedErrorsAndLotusStaysUp) {
  auto mcp = start({"--max-message-bytes", "4096"});
  mcp->send_raw("{this is not json\n");
  Json parse = mcp->response(Json());
  EXPECT_EQ(parse["error"]["code"], -32700) << parse.dump();
  Json early = mcp->request(1, "tools/list");
  EXPECT_EQ(early["error"]["code"], -32600);  // before initialize
  initialize(*mcp);
  EXPECT_EQ(mcp->request(2, "no/such/method")["error"]["code"], -32601);
  EXPECT_EQ(mcp->request(3, "tools/call", {{"arguments", Json::object()}})["error"]["code"],
            -32602);
  EXPECT_EQ(mcp->request(4, "tools/call", {{"name", "nope__nothing"}})["error"]["code"], -32602);
  Json invalid =
      mcp->request(5, "tools/call", {{"name", "fs__read"}, {"arguments", {{"path", 5}}}});
  EXPECT_EQ(invalid["result"]["isError"], true);
  mcp->send_raw(R"({"jsonrpc":"1.0","id":6,"method":"ping"})"
                "\n");
  EXPECT_EQ(mcp->response(6)["error"]["code"], -32600);
  mcp->send_raw(Json{{"jsonrpc", "2.0"},
                     {"id", 7},
                     {"method", "ping"},
                     {"params", {{"pad", std::string(20000, 'x')}}}}
                    .dump() +
                "\n");
  Json big = mcp->response(Json());
  EXPECT_EQ(big["error"]["code"], -32600) << big.dump();
  EXPECT_THAT(big["error"].value("message", ""), HasSubstr("limit is 4096"));
  EXPECT_EQ(mcp->request(8, "ping")["result"], Json::object());
  mcp->close_stdin();
  EXPECT_EQ(mcp->wait(20s), 0) << testing::read_file(stderr_file());
}

TEST_F(McpStdioTest, AClientThatDisconnectsMidCallLeavesNothingRunning) {
  auto mcp = start();
  initialize(*mcp);
  // fs.write asks a person; nobody will answer before the client leaves.
  mcp->send(
      {{"jsonrpc", "2.0"},
       {"id", 1},
       {"method", "tools/call"},
       {"params", {{"name", "fs__write"}, {"arguments", {{"path", "x.txt"}, {"content", "x"}}}}}});
  std::this_thread::sleep_for(300ms);
  mcp->close_stdout();
  mcp->close_stdin();
  EXPECT_EQ(mcp->wait(20s), 0) << testing::read_file(stderr_file());
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "work" / "x.txt"));
}

TEST_F(McpStdioTest, ACancelledCallIsNotAnswered) {
  auto mcp = start();
  initialize(*mcp);
  mcp->send(
      {{"jsonrpc", "2.0"},
       {"id", "w"},
       {"method", "tools/call"},
       {"params", {{"name", "fs__write"}, {"arguments", {{"path", "y.txt"}, {"content", "y"}}}}}});
  std::this_thread::sleep_for(300ms);
  mcp->send({{"jsonrpc", "2.0"},
             {"method", "notifications/cancelled"},
             {"params", {{"requestId", "w"}, {"reason", "changed my mind"}}}});
  EXPECT_EQ(mcp->request(2, "ping")["result"], Json::object());
  EXPECT_TRUE(mcp->response("w", 1s).is_null());
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "work" / "y.txt"));
  mcp->close_stdin();
  EXPECT_EQ(mcp->wait(20s), 0);
}

}  // namespace
}  // namespace lotus

namespace lotus {
namespace {

// LOTUS as an MCP client: the reference servers from npm (server-everything,
// server-filesystem, run by the Node 22 that tests/interop installs) mounted
// into the tool registry and called through the tool broker, by the
// reasoning engine and by LOTUS's own MCP server.
class McpClientInteropTest : public McpStdioTest {
 protected:
  void SetUp() override {
    testing::write_file(dir_.path() / "work" / "hello.txt", "hi there\n");
    const std::string modules = LOTUS_INTEROP_DIR "/node_modules/@modelcontextprotocol/";
    testing::write_file(
        dir_.path() / "script.yaml",
        "responses:\n"
        "  - tool_calls:\n"
        "      - {name: mcp_everything__echo, arguments: {message: ping from lotus}}\n"
        "      - {name: mcp_files__read_text_file, arguments: {path: " +
            (dir_.path() / "work" / "hello.txt").string() +
            "}}\n"
            "  - text: \"Both servers answered.\"\n");
    testing::write_file(
        dir_.path() / "config" / "lotus" / "config.yaml",
        "llm:\n  providers: {demo: {type: scripted, file: " +
            (dir_.path() / "script.yaml").string() +
            "}}\n  default_model: demo:replay\n"
            "tools:\n  policy: {\"mcp_everything.*\": allow}\n  approval_timeout_ms: 60000\n"
            "mcp:\n  servers:\n"
            "    everything: {command: " LOTUS_NODE ", args: [" +
            modules + "server-everything/dist/index.js, stdio], backoff_initial_ms: 200}\n" +
            "  mcpServers:\n    files: {command: " LOTUS_NODE ", args: [" + modules +
            "server-filesystem/dist/index.js, " + (dir_.path() / "work").string() +
            "], permissions: [file.read]}\n");
  }
  testing::ProcessResult run_lotus(std::vector<std::string> args) {
    args.insert(args.begin(), {LOTUS_BINARY, "--module-path", LOTUS_SOURCE_DIR "/modules"});
    testing::Child child(args,
                         {{"HOME", (dir_.path() / "home").string()},
                          {"XDG_CONFIG_HOME", (dir_.path() / "config").string()},
                          {"XDG_DATA_HOME", (dir_.path() / "data").string()}},
                         dir_.path() / "out.txt");
    child.close_input();
    return child.wait(120s);
  }
  // The child of `parent` whose command line holds `needle`, or 0.
  static pid_t child_process(pid_t parent, const std::string& needle) {
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      std::string name = entry.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      std::string stat = testing::read_file(entry.path() / "stat");
      size_t close = stat.rfind(')');
      if (close == std::string::npos) continue;
      std::istringstream fields(stat.substr(close + 2));
      std::string state;
      pid_t ppid = 0;
      fields >> state >> ppid;
      if (ppid != parent) continue;
      std::string cmdline = testing::read_file(entry.path() / "cmdline");
      if (cmdline.find(needle) != std::string::npos) return std::stoi(name);
    }
    return 0;
  }
};

TEST_F(McpClientInteropTest, ServersListsTheMountedReferenceServers) {
  auto result = run_lotus({"mcp", "servers", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // The JSON starts at "[" + newline; log lines on stderr start with "[<time>]".
  const size_t json_start = result.output.find("[\n");
  ASSERT_NE(json_start, std::string::npos) << result.output;
  Json servers = Json::parse(result.output.substr(json_start), nullptr, false);
  ASSERT_TRUE(servers.is_array()) << result.output;
  std::map<std::string, Json> by_name;
  for (const Json& s : servers) by_name[s["name"]] = s;
  ASSERT_EQ(by_name.size(), 2u) << result.output;
  EXPECT_EQ(by_name["everything"]["state"], "running") << result.output;
  EXPECT_EQ(by_name["files"]["state"], "running") << result.output;
  EXPECT_THAT(by_name["everything"]["tools"], ::testing::Contains("echo"));
  EXPECT_THAT(by_name["files"]["tools"], ::testing::Contains("read_text_file"));
  EXPECT_EQ(by_name["files"]["namespace"], "mcp_files");
}

TEST_F(McpClientInteropTest, TheReasoningEngineCallsTheirTools) {
  auto result = run_lotus({"ask", "ask both servers"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, HasSubstr("Echo: ping from lotus"));
  EXPECT_THAT(result.output, HasSubstr("hi there"));
  EXPECT_THAT(result.output, HasSubstr("Both servers answered."));
}

TEST_F(McpClientInteropTest, LotusServesTheMountedToolsAndRestartsACrashedServer) {
  auto mcp = start();
  initialize(*mcp);
  // The servers start beside the boot; wait until the echo tool is mounted.
  Json echo;
  for (int i = 0; i < 200; ++i) {
    echo = mcp->request(100 + i, "tools/call",
                        {{"name", "mcp_everything__echo"}, {"arguments", {{"message", "one"}}}});
    if (echo.contains("result")) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(text_of(echo), "Echo: one") << echo.dump();
  Json sum = mcp->request(
      1, "tools/call", {{"name", "mcp_everything__get-sum"}, {"arguments", {{"a", 2}, {"b", 3}}}});
  EXPECT_THAT(text_of(sum), HasSubstr("5")) << sum.dump();
  Json bad = mcp->request(2, "tools/call",
                          {{"name", "mcp_everything__echo"}, {"arguments", {{"message", 5}}}});
  EXPECT_EQ(bad["result"]["isError"], true) << bad.dump();

  pid_t before = child_process(mcp->pid(), "server-everything");
  ASSERT_GT(before, 0);
  ASSERT_EQ(kill(before, SIGKILL), 0);
  pid_t after = 0;
  for (int i = 0; i < 300 && (after == 0 || after == before); ++i) {
    std::this_thread::sleep_for(100ms);
    after = child_process(mcp->pid(), "server-everything");
  }
  EXPECT_GT(after, 0);
  EXPECT_NE(after, before);
  Json again;
  for (int i = 0; i < 100; ++i) {
    again = mcp->request(2000 + i, "tools/call",
                         {{"name", "mcp_everything__echo"}, {"arguments", {{"message", "two"}}}});
    if (text_of(again) == "Echo: two") break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(text_of(again), "Echo: two") << again.dump();
  mcp->close_stdin();
  EXPECT_EQ(mcp->wait(30s), 0) << testing::read_file(stderr_file());
}

}  // namespace
}  // namespace lotus

namespace lotus {
namespace {

// A server reached over Streamable HTTP: server-everything's HTTP transport.
TEST_F(McpStdioTest, MountsAServerOverStreamableHttp) {
  int port = testing::free_loopback_port();
  ASSERT_GT(port, 0);
  testing::Child server(
      {LOTUS_NODE,
       LOTUS_INTEROP_DIR "/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
       "streamableHttp"},
      {{"PORT", std::to_string(port)}}, dir_.path() / "http-server.txt");
  ASSERT_TRUE(server.wait_for_output("listening on port", 30s)) << server.output();
  testing::write_file(
      dir_.path() / "config" / "lotus" / "config.yaml",
      "mcp:\n  servers:\n    remote: {url: \"http://127.0.0.1:" + std::to_string(port) +
          "/mcp\"}\n"
          "tools:\n  policy: {\"mcp_remote.*\": allow}\n");
  auto mcp = start();
  initialize(*mcp);
  Json echo = mcp->request(
      1, "tools/call", {{"name", "mcp_remote__echo"}, {"arguments", {{"message", "over http"}}}});
  EXPECT_EQ(text_of(echo), "Echo: over http") << echo.dump() << testing::read_file(stderr_file());
  Json sum = mcp->request(2, "tools/call",
                          {{"name", "mcp_remote__get-sum"}, {"arguments", {{"a", 20}, {"b", 22}}}});
  EXPECT_THAT(text_of(sum), HasSubstr("42")) << sum.dump();
  mcp->close_stdin();
  EXPECT_EQ(mcp->wait(30s), 0) << testing::read_file(stderr_file());
  server.signal(SIGTERM);
  server.wait(10s);
}

}  // namespace
}  // namespace lotus
