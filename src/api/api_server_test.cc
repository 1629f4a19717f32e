// The daemon's API over real HTTP and WebSocket on loopback: a nucleus with
// the reasoning and memory modules and a tool module, the scripted provider,
// and the server exactly as `lotus serve` builds it.
#include <fstream>
#include <future>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/api_client.h"
#include "api/api_options.h"
#include "api/api_service.h"
#include "api/api_token.h"
#include "api/http_server.h"
#include "core/nucleus.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "runtime/module_factory.h"
#include "testing/temp_dir.h"

namespace lotus::api {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace http = boost::beast::http;

class ApiDeskModule : public Module {
 public:
  Task<void> initialize() override {
    tool("add", &ApiDeskModule::add);
    tool("wipe", &ApiDeskModule::wipe);
    co_return;
  }

 private:
  Task<ToolResult> add(const Json& args) {
    co_return Json(args["a"].get<int64_t>() + args["b"].get<int64_t>());
  }
  Task<ToolResult> wipe(const Json& args) {
    co_return Json(cat("wiped ", args["path"].get<std::string>()));
  }
};
static RegisterBuiltinModule<ApiDeskModule> registered_api_desk("apidesk");

constexpr std::string_view kDeskManifest = R"(name: apidesk
version: 1.0.0
type: capability
permissions: [file.write]
dependencies:
  modules: [memory]
tools:
  - name: add
    description: Add two integers
    permissions: []
    parameters:
      - {name: a, type: integer, required: true}
      - {name: b, type: integer, required: true}
  - name: wipe
    description: Wipe a file
    parameters: [{name: path, type: string, required: true}]
)";

Json call(std::string id, std::string name, Json arguments) {
  return Json{
      {"id", std::move(id)}, {"name", std::move(name)}, {"arguments", std::move(arguments)}};
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"reasoning", "memory", "apidesk"}) {
      fs::create_directories(dir_.path() / "modules" / name);
    }
    for (const char* name : {"reasoning", "memory"}) {
      fs::copy_file(fs::path(LOTUS_SOURCE_DIR) / "modules/core" / name / "manifest.yaml",
                    dir_.path() / "modules" / name / "manifest.yaml");
    }
    std::ofstream(dir_.path() / "modules/apidesk/manifest.yaml") << kDeskManifest;
  }
  void TearDown() override { stop(); }

  // Boots the nucleus and starts the server on a free port.
  void start(Json script = Json::array({Json{{"text", "Hello from LOTUS."}}}),
             Json api = Json::object()) {
    Config c;
    c.module_dirs = {dir_.path() / "modules"};
    c.data_dir = dir_.path() / "data";
    c.config_dir = dir_.path() / "config";
    c.threads = 2;
    c.shutdown_deadline = 5000ms;
    c.llm = Json{{"providers", {{"script", {{"type", "scripted"}, {"script", script}}}}},
                 {"default_model", "script:replay"}};
    c.module_config["reasoning"] = Json{{"recall_limit", 0}, {"learn", false}};
    api["port"] = 0;
    c.api = api;
    nucleus_ = std::make_unique<Nucleus>(c);
    ASSERT_TRUE(nucleus_->boot().ok());
    for (const auto& m : nucleus_->modules()) ASSERT_EQ(m.state, "running") << m.name << m.error;
    auto options = ApiOptions::from_config(c);
    ASSERT_TRUE(options.ok()) << options.status();
    auto token = load_or_create_token(options->token_file);
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *token;
    service_ = std::make_unique<ApiService>(*nucleus_);
    server_ = std::make_unique<HttpServer>(*options, token_, service_->routes(), nucleus_->bus());
    service_->attach(server_.get());
    ASSERT_TRUE(server_->start().ok());
    client_ = std::make_unique<ApiClient>("127.0.0.1", server_->port());
    client_->set_token(token_);
  }

  void stop() {
    if (server_) server_->stop();
    server_.reset();
    service_.reset();
    if (nucleus_) {
      EXPECT_TRUE(nucleus_->shutdown().ok());
    }
    nucleus_.reset();
  }

  ApiClient anonymous() const { return ApiClient("127.0.0.1", server_->port()); }
  std::unique_ptr<EventStreamClient> socket(const std::string& target,
                                            bool token_as_subprotocol = false) {
    return std::make_unique<EventStreamClient>("127.0.0.1", server_->port(), target, token_,
                                               token_as_subprotocol);
  }

  testing::TempDir dir_;
  std::unique_ptr<Nucleus> nucleus_;
  std::unique_ptr<ApiService> service_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<ApiClient> client_;
  std::string token_;
};

TEST_F(ApiServerTest, HealthIsOpenEverythingElseNeedsTheToken) {
  start();
  ApiClient nobody = anonymous();
  auto health = nobody.get("/health");
  ASSERT_EQ(health.status, 200) << health.error;
  EXPECT_EQ(health.json()["modules"]["apidesk"]["state"], "running");

  for (const char* target : {"/api/modules", "/api/tools", "/metrics", "/api/openapi.json"}) {
    auto refused = nobody.get(target);
    EXPECT_EQ(refused.status, 401) << target;
    EXPECT_EQ(refused.header("www-authenticate"), "Bearer realm=\"lotus\"");
    EXPECT_THAT(refused.json().value("error", ""), HasSubstr("Authorization: Bearer"));
  }
  ApiClient wrong = anonymous();
  wrong.set_token(std::string(token_.size(), 'f'));
  EXPECT_EQ(wrong.get("/api/modules").status, 401);
  EXPECT_EQ(nobody.post("/api/events", Json{{"channel", "a.b"}}).status, 401);
  EXPECT_EQ(client_->get("/api/modules").status, 200);

  // The token file is the owner's alone.
  struct stat info {};
  ASSERT_EQ(::stat((dir_.path() / "config/api-token").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);
}

TEST_F(ApiServerTest, ForeignHostsAndOriginsAreRefused) {
  start(Json::array(), Json{{"allowed_origins", {"https://trusted.example"}}});
  const std::string own = cat("http://127.0.0.1:", server_->port());
  auto rebinding = client_->get("/api/modules", {{"Host", "attacker.example"}});
  EXPECT_EQ(rebinding.status, 403);
  EXPECT_THAT(rebinding.json().value("error", ""), HasSubstr("attacker.example"));
  // Even the open endpoint: a rebinding page must not read health either.
  EXPECT_EQ(anonymous().get("/health", {{"Host", "attacker.example:80"}}).status, 403);

  auto cross_site = client_->get("/api/modules", {{"Origin", "https://evil.example"}});
  EXPECT_EQ(cross_site.status, 403);
  EXPECT_THAT(cross_site.json().value("error", ""), HasSubstr("evil.example"));
  EXPECT_EQ(
      client_
          ->post("/api/events", Json{{"channel", "a.b"}}.dump(), {{"Origin", "http://localhost:1"}})
          .status,
      403);
  EXPECT_EQ(client_->get("/api/modules", {{"Origin", own}}).status, 200);
  EXPECT_EQ(client_->get("/api/modules", {{"Origin", "https://trusted.example"}}).status, 200);
  EXPECT_EQ(client_->get("/api/modules", {{"Host", cat("localhost:", server_->port())}}).status,
            200);
}

TEST_F(ApiServerTest, BadRequestsGetJsonErrorsThatSayWhatWasWrong) {
  start(Json::array(), Json{{"max_body_bytes", 4096}});
  auto oversized = client_->post("/api/events", std::string(10000, ' '));
  EXPECT_EQ(oversized.status, 413);
  EXPECT_THAT(oversized.json().value("error", ""), HasSubstr("api.max_body_bytes"));

  auto malformed = client_->post("/api/events", std::string("{\"channel\": "));
  EXPECT_EQ(malformed.status, 400);
  EXPECT_THAT(malformed.json().value("error", ""), HasSubstr("not valid JSON"));

  auto not_object = client_->post("/api/events", std::string("[1, 2]"));
  EXPECT_EQ(not_object.status, 400);
  EXPECT_THAT(not_object.json().value("error", ""), HasSubstr("JSON object"));

  auto wrong_type = client_->post("/api/events", Json{{"channel", 7}});
  EXPECT_EQ(wrong_type.status, 400);
  EXPECT_THAT(wrong_type.json().value("error", ""), HasSubstr("/channel"));

  auto bad_channel = client_->post("/api/events", Json{{"channel", "a..b"}});
  EXPECT_EQ(bad_channel.status, 400);
  EXPECT_THAT(bad_channel.json().value("error", ""), HasSubstr("a..b"));

  auto missing = client_->get("/api/nothing-here");
  EXPECT_EQ(missing.status, 404);
  EXPECT_THAT(missing.json().value("error", ""), HasSubstr("/api/nothing-here"));

  auto method = client_->request(http::verb::delete_, "/api/modules");
  EXPECT_EQ(method.status, 405);
  EXPECT_EQ(method.header("allow"), "GET, POST");

  auto encoded = client_->get("/api/modules%zz");
  EXPECT_EQ(encoded.status, 400);

  // The server is still there and well.
  EXPECT_EQ(client_->get("/health").status, 200);
}

TEST_F(ApiServerTest, ABodyIsReadWhetherItCameWithTheHeaderLaterOrAfterAContinue) {
  start();
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket raw(io);
  raw.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
  const std::string body = R"({"arguments": {"a": 20, "b": 22}})";
  auto head = [&](const std::string& extra) {
    return cat("POST /api/tools/apidesk.add/call HTTP/1.1\r\nHost: 127.0.0.1:", server_->port(),
               "\r\nAuthorization: Bearer ", token_,
               "\r\nContent-Type: application/json\r\nContent-Length: ", body.size(), "\r\n", extra,
               "\r\n");
  };
  boost::beast::flat_buffer buffer;
  auto answer = [&] {
    http::response<http::string_body> response;
    http::read(raw, buffer, response);
    return response;
  };
  // Two whole requests in one write: the second waits in the buffer.
  boost::asio::write(raw, boost::asio::buffer(head("") + body + head("") + body));
  for (int i = 0; i < 2; ++i) {
    auto response = answer();
    EXPECT_EQ(response.result_int(), 200u) << response.body();
    EXPECT_EQ(Json::parse(response.body())["result"], 42);
  }
  // The header and half the body, the rest a moment later.
  boost::asio::write(raw, boost::asio::buffer(head("") + body.substr(0, 10)));
  std::this_thread::sleep_for(50ms);
  boost::asio::write(raw, boost::asio::buffer(body.substr(10)));
  auto late = answer();
  EXPECT_EQ(late.result_int(), 200u) << late.body();
  EXPECT_EQ(Json::parse(late.body())["result"], 42);
  // A client that waits for 100 Continue before sending the body.
  boost::asio::write(raw, boost::asio::buffer(head("Expect: 100-continue\r\n")));
  http::response<http::empty_body> go_on;
  http::read(raw, buffer, go_on);
  EXPECT_EQ(go_on.result(), http::status::continue_);
  boost::asio::write(raw, boost::asio::buffer(body));
  auto continued = answer();
  EXPECT_EQ(continued.result_int(), 200u) << continued.body();
  EXPECT_EQ(Json::parse(continued.body())["result"], 42);
}

TEST_F(ApiServerTest, AClientTooSlowToSendItsRequestOrIdleTooLongIsClosed) {
  start(Json::array(), Json{{"request_timeout_ms", 400}});
  boost::asio::io_context io;
  auto connect = [&] {
    boost::asio::ip::tcp::socket socket(io);
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
    return socket;
  };
  auto closed_within = [](boost::asio::ip::tcp::socket& socket, std::chrono::milliseconds limit) {
    timeval timeout{static_cast<time_t>(limit.count() / 1000),
                    static_cast<suseconds_t>(limit.count() % 1000 * 1000)};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char byte = 0;
    return ::recv(socket.native_handle(), &byte, 1, 0) == 0;  // 0: closed; -1: timed out
  };
  // Says nothing at all.
  auto silent = connect();
  // Starts a request and never finishes its header.
  auto halting = connect();
  boost::asio::write(halting, boost::asio::buffer(std::string("GET /health HTTP/1.1\r\nHo")));
  EXPECT_TRUE(closed_within(silent, 5s));
  EXPECT_TRUE(closed_within(halting, 5s));

  // A connection that keeps asking is never cut, though it lives longer
  // than the timeout; once it stops asking it is.
  auto busy = connect();
  boost::beast::flat_buffer buffer;
  const auto until = std::chrono::steady_clock::now() + 1200ms;
  int answered = 0;
  while (std::chrono::steady_clock::now() < until) {
    http::request<http::empty_body> request{http::verb::get, "/health", 11};
    request.set(http::field::host, cat("127.0.0.1:", server_->port()));
    http::write(busy, request);
    http::response<http::string_body> response;
    http::read(busy, buffer, response);
    ASSERT_EQ(response.result_int(), 200u);
    ++answered;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_GE(answered, 5);
  EXPECT_TRUE(closed_within(busy, 5s));
}

TEST_F(ApiServerTest, ModulesAreListedAndLoadedUnloadedReloaded) {
  start();
  auto list = client_->get("/api/modules");
  ASSERT_EQ(list.status, 200);
  bool found = false;
  const Json modules = list.json();
  for (const Json& m : modules["modules"]) {
    if (m["name"] != "apidesk") continue;
    found = true;
    EXPECT_EQ(m["state"], "running");
    EXPECT_EQ(m["dependencies"], Json::array({"memory"}));
    EXPECT_TRUE(m["health"].contains("events_handled"));
  }
  EXPECT_TRUE(found);

  auto reloaded = client_->post("/api/modules/apidesk/reload");
  ASSERT_EQ(reloaded.status, 200) << reloaded.body;
  EXPECT_EQ(reloaded.json()["state"], "running");
  auto unloaded = client_->post("/api/modules/apidesk/unload");
  ASSERT_EQ(unloaded.status, 200) << unloaded.body;
  EXPECT_EQ(client_->post("/api/tools/apidesk.add/call", Json{{"arguments", {{"a", 1}, {"b", 2}}}})
                .status,
            404);
  auto loaded = client_->post("/api/modules", Json{{"name", "apidesk"}});
  ASSERT_EQ(loaded.status, 200) << loaded.body;
  EXPECT_EQ(loaded.json()["state"], "running");

  auto unknown = client_->post("/api/modules/nosuch/reload");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_THAT(unknown.json().value("error", ""), HasSubstr("nosuch"));
  EXPECT_EQ(client_->post("/api/modules", Json{{"name", "nosuch"}}).status, 404);
}

TEST_F(ApiServerTest, ToolsAreListedAndCalledThroughThePolicy) {
  start();
  auto tools = client_->get("/api/tools");
  ASSERT_EQ(tools.status, 200);
  bool listed = false;
  const Json listing = tools.json();
  for (const Json& t : listing["tools"]) listed |= t["qualified"] == "apidesk.add";
  EXPECT_TRUE(listed);

  auto sum =
      client_->post("/api/tools/apidesk.add/call", Json{{"arguments", {{"a", 2}, {"b", 3}}}});
  ASSERT_EQ(sum.status, 200) << sum.body;
  EXPECT_EQ(sum.json()["ok"], true);
  EXPECT_EQ(sum.json()["result"], 5);

  auto invalid =
      client_->post("/api/tools/apidesk.add/call", Json{{"arguments", {{"a", "two"}, {"b", 3}}}});
  ASSERT_EQ(invalid.status, 200);
  EXPECT_EQ(invalid.json()["ok"], false);
  EXPECT_THAT(invalid.json().value("error", ""), HasSubstr("/a"));

  EXPECT_EQ(client_->post("/api/tools/apidesk.nothing/call", Json::object()).status, 404);
}

TEST_F(ApiServerTest, APendingApprovalIsListedAndAnsweredOverTheApi) {
  start();
  // wipe needs file.write: high risk, so the call waits for a person.
  auto pending_call = std::async(std::launch::async, [&] {
    return client_->post("/api/tools/apidesk.wipe/call",
                         Json{{"arguments", {{"path", "notes.txt"}}}});
  });
  Json approval;
  for (int i = 0; i < 500 && approval.is_null(); ++i) {
    auto list = client_->get("/api/approvals");
    ASSERT_EQ(list.status, 200);
    if (!list.json()["approvals"].empty()) approval = list.json()["approvals"][0];
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(approval.is_null()) << "no approval was requested";
  EXPECT_EQ(approval["tool"], "apidesk.wipe");
  EXPECT_EQ(approval["arguments"]["path"], "notes.txt");

  auto bad = client_->post(cat("/api/approvals/", approval["approval_id"].get<std::string>()),
                           Json{{"approved", "yes"}});
  EXPECT_EQ(bad.status, 400);
  auto answered = client_->post(cat("/api/approvals/", approval["approval_id"].get<std::string>()),
                                Json{{"approved", true}});
  ASSERT_EQ(answered.status, 200) << answered.body;

  auto result = pending_call.get();
  ASSERT_EQ(result.status, 200);
  EXPECT_EQ(result.json()["ok"], true) << result.body;
  EXPECT_EQ(result.json()["result"], "wiped notes.txt");
  // Answered once; a second answer finds nothing waiting.
  EXPECT_EQ(client_
                ->post(cat("/api/approvals/", approval["approval_id"].get<std::string>()),
                       Json{{"approved", false}})
                .status,
            404);
}

TEST_F(ApiServerTest, StoppingEndsEveryConnectionEvenOnesWaitingForAReply) {
  start();
  // A call waiting for a person's approval, an event stream, and a client
  // that connected and said nothing: stop() ends all three and returns.
  auto waiting_call = std::async(std::launch::async, [&] {
    return client_->post("/api/tools/apidesk.wipe/call",
                         Json{{"arguments", {{"path", "notes.txt"}}}});
  });
  bool asked = false;
  for (int i = 0; i < 500 && !asked; ++i) {
    asked = !client_->get("/api/approvals").json()["approvals"].empty();
    if (!asked) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(asked) << "no approval was requested";
  auto stream = socket("/api/events");
  ASSERT_TRUE(stream->open()) << stream->error();
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket idle(io);
  idle.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});

  auto stopping = std::async(std::launch::async, [&] { server_->stop(); });
  ASSERT_EQ(stopping.wait_for(8s), std::future_status::ready)
      << "stop() did not return: a connection was left waiting";

  ApiReply cut = waiting_call.get();
  EXPECT_EQ(cut.status, 0) << cut.body;
  EXPECT_FALSE(cut.error.empty());
  EXPECT_FALSE(stream->read().has_value());
  EXPECT_EQ(stream->close_reason().code, boost::beast::websocket::close_code::going_away);
  char byte = 0;
  boost::system::error_code ec;
  idle.read_some(boost::asio::buffer(&byte, 1), ec);
  // Closed after it was accepted, or refused while still in the backlog.
  EXPECT_TRUE(ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset)
      << ec.message();
  EXPECT_EQ(server_->event_socket_stats().connected.load(), 0u);
  // TearDown frees the routes and shuts the nucleus down, which ends the
  // approval still open: nothing of the server may run by then.
}

TEST_F(ApiServerTest, AConversationIsAnsweredAndItsHistoryKept) {
  start(Json::array({Json{{"tool_calls", {call("c1", "apidesk__add", {{"a", 20}, {"b", 22}})}}},
                     Json{{"text", "It is 42."}}}));
  auto answer =
      client_->post("/api/conversations/kitchen/messages", Json{{"text", "what is 20 + 22?"}});
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.json()["ok"], true);
  EXPECT_EQ(answer.json()["answer"], "It is 42.");
  EXPECT_EQ(answer.json()["conversation_id"], "kitchen");
  EXPECT_FALSE(answer.json().value("trace_id", "").empty());

  auto history = client_->get("/api/conversations/kitchen");
  ASSERT_EQ(history.status, 200) << history.body;
  std::vector<std::string> roles;
  const Json kept = history.json();
  for (const Json& m : kept["messages"]) roles.push_back(m["role"]);
  ASSERT_GE(roles.size(), 3u);
  EXPECT_EQ(roles.front(), "user");
  EXPECT_EQ(history.json()["messages"].back()["text"], "It is 42.");

  auto empty = client_->post("/api/conversations/kitchen/messages", Json{{"text", ""}});
  EXPECT_EQ(empty.status, 400);
  auto bad_id = client_->post("/api/conversations/a.b/messages", Json{{"text", "hi"}});
  EXPECT_EQ(bad_id.status, 400);
}

TEST_F(ApiServerTest, MemoriesAreAddedAndFound) {
  start();
  auto added = client_->post("/api/memory", Json{{"content", "The spare key is under the blue pot"},
                                                 {"type", "semantic"}});
  ASSERT_EQ(added.status, 200) << added.body;
  auto found = client_->post("/api/memory/search", Json{{"query", "where is the spare key"}});
  ASSERT_EQ(found.status, 200) << found.body;
  ASSERT_FALSE(found.json()["results"].empty());
  EXPECT_EQ(found.json()["results"][0]["content"], "The spare key is under the blue pot");
  EXPECT_EQ(client_->post("/api/memory/search", Json{{"limit", 3}}).status, 400);
  auto bad_type = client_->post("/api/memory", Json{{"content", "x"}, {"type", "dream"}});
  EXPECT_EQ(bad_type.status, 400);
  EXPECT_THAT(bad_type.json().value("error", ""), HasSubstr("dream"));
}

TEST_F(ApiServerTest, TheEventStreamSendsWhatMatchesItsPattern) {
  start();
  auto stream = socket("/api/events?pattern=user.*");
  ASSERT_TRUE(stream->open()) << stream->error();
  auto other = socket("/api/events?pattern=user.**&filter=" + std::string("%7B%22n%22%3A2%7D"),
                      /*token_as_subprotocol=*/true);
  ASSERT_TRUE(other->open()) << other->error();
  EXPECT_EQ(other->subprotocol(), "lotus.events");

  // The subscription is in place once the handshake is done.
  for (int n = 0; n < 3; ++n) {
    ASSERT_EQ(
        client_->post("/api/events", Json{{"channel", "elsewhere.note"}, {"data", {{"n", n}}}})
            .status,
        200);
    ASSERT_EQ(
        client_->post("/api/events", Json{{"channel", "user.note"}, {"data", {{"n", n}}}}).status,
        200);
  }
  auto events = stream->read_events(3);
  ASSERT_EQ(events.size(), 3u);
  for (int n = 0; n < 3; ++n) {
    EXPECT_EQ(events[n]["channel"], "user.note");
    EXPECT_EQ(events[n]["data"]["n"], n);
    EXPECT_EQ(events[n]["source"], "api");
  }
  auto filtered = other->read_events(1);
  ASSERT_EQ(filtered.size(), 1u);
  EXPECT_EQ(filtered[0]["data"]["n"], 2);

  auto no_token = EventStreamClient("127.0.0.1", server_->port(), "/api/events", "");
  EXPECT_FALSE(no_token.open());
  auto bad_pattern = socket("/api/events?pattern=a..b");
  EXPECT_FALSE(bad_pattern->open());
}

TEST_F(ApiServerTest, ASlowStreamReaderIsDroppedWithANoticeAndOthersGetEverything) {
  start(Json::array(), Json{{"socket_queue", 256}});
  auto slow = socket("/api/events?pattern=load.**");
  auto fast = socket("/api/events?pattern=load.**");
  ASSERT_TRUE(slow->open() && fast->open());

  // 20 MB in all: more than loopback's socket buffers hold for the slow one.
  constexpr int kEvents = 10000;
  constexpr int kBatch = 100;
  const std::string payload(2048, 'x');
  std::atomic<int> received{0};
  std::thread reader([&] {
    while (received.load() < kEvents) {
      if (!fast->read()) break;
      received.fetch_add(1);
    }
  });
  // The slow one reads nothing until it is dropped, then takes what was
  // already on its way and the close frame that explains.
  size_t slow_got = 0;
  std::thread slow_reader([&] {
    const auto give_up = std::chrono::steady_clock::now() + 200s;
    while (server_->event_socket_stats().dropped_clients.load() == 0 &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(1ms);
    }
    while (slow->read()) ++slow_got;
  });
  // The fast reader is never more than a batch behind, below its queue's
  // limit however slow the build (sanitizers): each batch waits for it.
  const auto give_up = std::chrono::steady_clock::now() + 200s;
  for (int i = 0; i < kEvents; ++i) {
    Event event = Event::make("load.tick", "test", Json{{"i", i}, {"pad", payload}});
    ASSERT_TRUE(nucleus_->publish(std::move(event)).ok());
    if ((i + 1) % kBatch == 0) {
      while (received.load() < i + 1 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(1ms);
      }
    }
  }
  reader.join();
  slow_reader.join();
  EXPECT_EQ(received.load(), kEvents);
  EXPECT_LT(slow_got, static_cast<size_t>(kEvents));
  EXPECT_EQ(slow->close_reason().code, boost::beast::websocket::close_code::policy_error);
  const auto& reason = slow->close_reason().reason;
  EXPECT_THAT(std::string(reason.data(), reason.size()), HasSubstr("slow consumer"));
  EXPECT_EQ(server_->event_socket_stats().dropped_clients.load(), 1u);

  auto metrics = client_->get("/metrics");
  EXPECT_THAT(metrics.body, HasSubstr("lotus_api_event_socket_dropped_total 1"));
}

TEST_F(ApiServerTest, MetricsAndTheApiDescriptionAreServed) {
  start();
  ASSERT_EQ(client_->post("/api/tools/apidesk.add/call", Json{{"arguments", {{"a", 1}, {"b", 1}}}})
                .status,
            200);
  auto metrics = client_->get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.header("content-type"), HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE lotus_module_events_handled_total counter"));
  EXPECT_THAT(metrics.body, HasSubstr("lotus_module_running{module=\"apidesk\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("lotus_tool_calls_total{outcome=\"all\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("lotus_api_requests_total{class=\"all\"}"));

  auto openapi = client_->get("/api/openapi.json");
  ASSERT_EQ(openapi.status, 200);
  Json doc = openapi.json();
  EXPECT_EQ(doc["openapi"], "3.1.0");
  for (const char* path :
       {"/health", "/api/modules", "/api/modules/{name}/reload", "/api/tools/{tool}/call",
        "/api/approvals/{id}", "/api/conversations/{id}/messages", "/api/memory/search",
        "/api/events"}) {
    EXPECT_TRUE(doc["paths"].contains(path)) << path;
  }
  EXPECT_EQ(doc["paths"]["/health"]["get"]["security"], Json::array());
  EXPECT_EQ(doc["paths"]["/api/tools/{tool}/call"]["post"]["parameters"][0]["name"], "tool");
}

TEST_F(ApiServerTest, TheWebUiIsServedWithoutTheTokenAndNothingOutsideItsFolder) {
  start();
  auto page = anonymous().get("/");
  ASSERT_EQ(page.status, 200);
  EXPECT_THAT(page.header("content-type"), HasSubstr("text/html"));
  EXPECT_THAT(page.body, HasSubstr("<title>LOTUS</title>"));
  EXPECT_THAT(page.header("content-security-policy"), HasSubstr("default-src 'self'"));
  auto script = anonymous().get("/ui/app.js");
  ASSERT_EQ(script.status, 200);
  EXPECT_THAT(script.header("content-type"), HasSubstr("javascript"));
  EXPECT_EQ(anonymous().get("/ui/..%2Fapi-token").status, 404);
  EXPECT_EQ(anonymous().get("/ui/.hidden").status, 404);
}

}  // namespace
}  // namespace lotus::api
