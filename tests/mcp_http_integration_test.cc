// MCP over Streamable HTTP against a real `lotus serve`: sessions, the reply
// as JSON or SSE, the session stream, cancelling, and every refusal the
// specification names (bad Origin, no token, no or unknown session, an
// unsupported protocol version, malformed JSON, an oversized body).
#include <sys/socket.h>
#include <sys/time.h>

#include <future>
#include <regex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "api/api_client.h"
#include "lotus/event.h"
#include "support/test_env.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace http = boost::beast::http;
using Headers = api::ApiClient::Headers;

constexpr const char* kAccept = "application/json, text/event-stream";

Json initialize_request(int id, const std::string& version = "2025-11-25") {
  return Json{{"jsonrpc", "2.0"},
              {"id", id},
              {"method", "initialize"},
              {"params",
               {{"protocolVersion", version},
                {"capabilities", Json::object()},
                {"clientInfo", {{"name", "http-test"}, {"version", "1"}}}}}};
}

Json request(int id, const std::string& method, Json params = Json::object()) {
  return Json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
}

// The JSON-RPC messages of an SSE body ("data:" lines).
std::vector<Json> sse_messages(const std::string& body) {
  std::vector<Json> out;
  std::istringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("data: ", 0) == 0) out.push_back(Json::parse(line.substr(6), nullptr, false));
  }
  return out;
}

// An open GET stream, read as raw bytes.
class RawStream {
 public:
  RawStream(uint16_t port, const std::string& head) : socket_(io_) {
    boost::asio::ip::tcp::resolver resolver(io_);
    boost::asio::connect(socket_, resolver.resolve("127.0.0.1", std::to_string(port)));
    timeval timeout{0, 200'000};
    setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    boost::asio::write(socket_, boost::asio::buffer(head));
  }
  // Reads until `needle` arrived or `limit` passed.
  bool wait_for(const std::string& needle, std::chrono::milliseconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (text_.find(needle) == std::string::npos) {
      if (std::chrono::steady_clock::now() > end) return false;
      char buffer[4096];
      ssize_t n = ::recv(socket_.native_handle(), buffer, sizeof buffer, 0);
      if (n == 0) return text_.find(needle) != std::string::npos;
      if (n > 0) text_.append(buffer, static_cast<size_t>(n));
    }
    return true;
  }
  const std::string& text() const { return text_; }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  std::string text_;
};

class McpHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.path() / "work");
    testing::write_file(dir_.path() / "work/hello.txt", "hi over http\n");
    testing::write_file(dir_.path() / "config/lotus/config.yaml",
                        "modules:\n  fs: {roots: [" + (dir_.path() / "work").string() +
                            "]}\napi:\n  max_body_bytes: 65536\n"
                            "tools:\n  approval_timeout_ms: 60000\n");
    daemon_ = std::make_unique<testing::Child>(
        std::vector<std::string>{LOTUS_BINARY, "serve", "--port", "0"},
        std::map<std::string, std::string>{{"HOME", (dir_.path() / "home").string()},
                                           {"XDG_CONFIG_HOME", (dir_.path() / "config").string()},
                                           {"XDG_DATA_HOME", (dir_.path() / "data").string()}},
        dir_.path() / "serve.txt");
    ASSERT_TRUE(daemon_->wait_for_output("Ctrl-C stops", 60s)) << daemon_->output();
    std::smatch match;
    const std::string output = daemon_->output();
    ASSERT_TRUE(
        std::regex_search(output, match, std::regex("serving on http://127\\.0\\.0\\.1:([0-9]+)")));
    port_ = static_cast<uint16_t>(std::stoi(match[1]));
    token_ = testing::read_file(dir_.path() / "config/lotus/api-token").substr(0, 64);
    client_ = std::make_unique<api::ApiClient>("127.0.0.1", port_);
    client_->set_token(token_);
  }
  void TearDown() override {
    if (!daemon_) return;
    daemon_->signal(SIGTERM);
    auto result = daemon_->wait(30s);
    EXPECT_EQ(result.exit_code, 0) << result.output;
  }

  api::ApiReply post(const Json& body, Headers headers = {}) {
    return post_text(body.dump(), std::move(headers));
  }
  api::ApiReply post_text(const std::string& body, Headers headers = {}) {
    Headers all = {{"Accept", kAccept}, {"Content-Type", "application/json"}};
    if (!session_.empty()) all.emplace_back("Mcp-Session-Id", session_);
    all.insert(all.end(), headers.begin(), headers.end());
    return client_->post("/mcp", body, all);
  }
  // initialize + notifications/initialized; the session id is kept.
  void open_session(const std::string& version = "2025-11-25") {
    session_.clear();
    auto reply = post(initialize_request(1, version));
    ASSERT_EQ(reply.status, 200) << reply.body;
    EXPECT_THAT(reply.header("content-type"), HasSubstr("application/json"));
    session_ = reply.header("mcp-session-id");
    ASSERT_FALSE(session_.empty());
    EXPECT_EQ(reply.json()["result"]["protocolVersion"], version);
    auto initialized = post(Json{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}},
                            {{"MCP-Protocol-Version", version}});
    EXPECT_EQ(initialized.status, 202) << initialized.body;
  }

  // The request that opens the session's GET stream.
  std::string session_stream_head() const {
    return "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) +
           "\r\nAuthorization: Bearer " + token_ +
           "\r\nAccept: text/event-stream\r\nMcp-Session-Id: " + session_ +
           "\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n";
  }
  // Calls fs__write, which asks a person; nobody answers, so the call
  // waits. Returns once the approval is listed (`listed` says whether it was).
  std::future<api::ApiReply> call_left_waiting(int id, const std::string& path, bool* listed) {
    auto pending = std::async(std::launch::async, [this, id, path] {
      return post(
          request(id, "tools/call",
                  {{"name", "fs__write"}, {"arguments", {{"path", path}, {"content", "no"}}}}));
    });
    *listed = false;
    for (int i = 0; i < 100 && !*listed; ++i) {
      *listed = client_->get("/api/approvals").json()["approvals"].size() == 1;
      if (!*listed) std::this_thread::sleep_for(50ms);
    }
    return pending;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::Child> daemon_;
  uint16_t port_ = 0;
  std::string token_;
  std::unique_ptr<api::ApiClient> client_;
  std::string session_;
};

TEST_F(McpHttpTest, ASessionListsAndCallsToolsAndEndsWithDelete) {
  open_session();
  auto tools = post(request(2, "tools/list"));
  ASSERT_EQ(tools.status, 200) << tools.body;
  const Json listed = tools.json();
  bool has_read = false;
  for (const Json& tool : listed["result"]["tools"]) has_read |= tool["name"] == "fs__read";
  EXPECT_TRUE(has_read) << tools.body;

  // With a progress token the reply streams: progress first, then the result.
  auto read = post(request(3, "tools/call",
                           {{"name", "fs__read"},
                            {"arguments", {{"path", "hello.txt"}}},
                            {"_meta", {{"progressToken", "p1"}}}}));
  ASSERT_EQ(read.status, 200) << read.body;
  EXPECT_THAT(read.header("content-type"), HasSubstr("text/event-stream"));
  std::vector<Json> messages = sse_messages(read.body);
  ASSERT_GE(messages.size(), 2u) << read.body;
  EXPECT_EQ(messages.front()["method"], "notifications/progress");
  EXPECT_EQ(messages.front()["params"]["progressToken"], "p1");
  EXPECT_EQ(messages.back()["id"], 3);
  EXPECT_THAT(messages.back()["result"]["content"][0]["text"].get<std::string>(),
              HasSubstr("hi over http"));

  // Without one, a quick call is plain JSON.
  auto plain = post(
      request(4, "tools/call", {{"name", "fs__read"}, {"arguments", {{"path", "hello.txt"}}}}));
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_THAT(plain.header("content-type"), HasSubstr("application/json"));
  EXPECT_FALSE(plain.json()["result"]["isError"].get<bool>());

  auto ended = client_->request(http::verb::delete_, "/mcp", {}, {{"Mcp-Session-Id", session_}});
  EXPECT_EQ(ended.status, 200) << ended.body;
  auto gone = post(request(5, "tools/list"));
  EXPECT_EQ(gone.status, 404) << gone.body;
  open_session("2025-03-26");  // an earlier version is still spoken
  EXPECT_EQ(post(request(6, "ping"), {{"MCP-Protocol-Version", "2025-03-26"}}).status, 200);
}

TEST_F(McpHttpTest, RefusalsAreTheOnesTheSpecificationNames) {
  api::ApiClient nobody("127.0.0.1", port_);
  auto no_token = nobody.post("/mcp", initialize_request(1).dump(),
                              {{"Accept", kAccept}, {"Content-Type", "application/json"}});
  EXPECT_EQ(no_token.status, 401);
  EXPECT_EQ(no_token.header("www-authenticate"), "Bearer realm=\"lotus\"");

  auto foreign = post(initialize_request(1), {{"Origin", "https://evil.example"}});
  EXPECT_EQ(foreign.status, 403);
  EXPECT_THAT(foreign.body, HasSubstr("evil.example"));

  auto no_session = post(request(2, "tools/list"));
  EXPECT_EQ(no_session.status, 400);
  EXPECT_THAT(no_session.body, HasSubstr("Mcp-Session-Id"));

  session_ = "0123456789abcdef0123456789abcdef";
  auto unknown = post(request(2, "tools/list"));
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.json()["error"]["code"], -32000);
  open_session();  // a fresh initialize works after the 404
  EXPECT_EQ(post(request(3, "tools/list")).status, 200);

  auto version = post(request(4, "tools/list"), {{"MCP-Protocol-Version", "1999-01-01"}});
  EXPECT_EQ(version.status, 400);
  EXPECT_THAT(version.body, HasSubstr("1999-01-01"));

  auto malformed = post_text("{\"jsonrpc\": \"2.0\", \"id\": ");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_EQ(malformed.json()["error"]["code"], -32700);

  auto unknown_method = post(request(5, "no/such/method"));
  EXPECT_EQ(unknown_method.status, 200);
  EXPECT_EQ(unknown_method.json()["error"]["code"], -32601);

  auto oversized =
      post_text(request(6, "tools/call",
                        {{"name", "fs__read"}, {"arguments", {{"path", std::string(70000, 'x')}}}})
                    .dump());
  EXPECT_EQ(oversized.status, 413);

  auto html = post(request(7, "ping"), {{"Accept", "text/html"}});
  EXPECT_EQ(html.status, 406);

  auto get_without_session = client_->get("/mcp", {{"Accept", "text/event-stream"}});
  EXPECT_EQ(get_without_session.status, 400);
  auto put = client_->request(http::verb::put, "/mcp", "{}");
  EXPECT_EQ(put.status, 405);

  // Through all of it the session still works.
  EXPECT_EQ(post(request(8, "ping")).status, 200);
}

TEST_F(McpHttpTest, TheSessionStreamCarriesToolListChanges) {
  open_session();
  RawStream stream(port_, session_stream_head());
  ASSERT_TRUE(stream.wait_for("\r\n\r\n", 10s)) << stream.text();
  EXPECT_THAT(stream.text(), HasSubstr("text/event-stream"));
  // One stream per session.
  auto second =
      client_->get("/mcp", {{"Accept", "text/event-stream"}, {"Mcp-Session-Id", session_}});
  EXPECT_EQ(second.status, 409);

  ASSERT_EQ(client_->post("/api/modules/shell/unload").status, 200);
  EXPECT_TRUE(stream.wait_for("notifications/tools/list_changed", 10s)) << stream.text();
}

TEST_F(McpHttpTest, ACancelledCallEndsItsResponseAndTheSessionGoesOn) {
  open_session();
  bool waiting = false;
  auto pending = call_left_waiting(10, "cancelled.txt", &waiting);
  ASSERT_TRUE(waiting);
  auto cancel = post(Json{{"jsonrpc", "2.0"},
                          {"method", "notifications/cancelled"},
                          {"params", {{"requestId", 10}, {"reason", "changed my mind"}}}});
  EXPECT_EQ(cancel.status, 202);
  ASSERT_EQ(pending.wait_for(20s), std::future_status::ready);
  api::ApiReply ended = pending.get();
  EXPECT_THAT(ended.body, ::testing::Not(HasSubstr("\"result\"")));
  EXPECT_FALSE(fs::exists(dir_.path() / "work/cancelled.txt"));
  EXPECT_EQ(post(request(11, "ping")).status, 200);
}

TEST_F(McpHttpTest, TheDaemonStopsWhileACallWaitsAndTheSessionStreamIsOpen) {
  open_session();
  RawStream stream(port_, session_stream_head());
  ASSERT_TRUE(stream.wait_for("\r\n\r\n", 10s)) << stream.text();
  bool waiting = false;  // for a minute (tools.approval_timeout_ms)
  auto pending = call_left_waiting(20, "unanswered.txt", &waiting);
  ASSERT_TRUE(waiting);

  // Neither the waiting call nor the open stream holds the daemon up.
  daemon_->signal(SIGTERM);
  auto result = daemon_->wait(20s);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_THAT(result.output, ::testing::Not(HasSubstr("did not finish")));
  daemon_.reset();
  ASSERT_EQ(pending.wait_for(10s), std::future_status::ready);
  EXPECT_THAT(pending.get().body, ::testing::Not(HasSubstr("\"result\"")));
  EXPECT_FALSE(fs::exists(dir_.path() / "work/unanswered.txt"));
}

}  // namespace
}  // namespace lotus
