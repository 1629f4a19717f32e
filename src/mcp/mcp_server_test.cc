#include "mcp/mcp_server.h"

#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bus/local_bus.h"
#include "lotus/strings.h"
#include "testing/mcp_sent_messages.h"

namespace lotus::mcp {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

Manifest files_manifest(int tools = 3) {
  std::string yaml = R"(name: files
version: 1.0.0
type: core
permissions: [file.read, file.write]
tools:
  - name: read
    description: Reads a file
    permissions: [file.read]
    parameters: [{name: path, type: string, required: true}]
  - name: write
    parameters: [{name: path, type: string, required: true}]
  - name: slow
    permissions: [file.read]
)";
  for (int i = 3; i < tools; ++i)
    yaml += cat("  - name: extra", i, "\n    permissions: [file.read]\n");
  auto m = parse_manifest(yaml, "files/manifest.yaml");
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

class FakeContent : public McpContent {
 public:
  Json resources() override {
    return Json::array(
        {{{"uri", "lotus://b"}, {"name", "b"}}, {{"uri", "lotus://a"}, {"name", "a"}}});
  }
  Json resource_templates() override {
    return Json::array({{{"uriTemplate", "lotus://x/{id}"}, {"name", "x"}}});
  }
  Task<Result<Json>> read_resource(std::string uri) override {
    if (uri != "lotus://a") co_return absl::NotFoundError(cat("no resource ", uri));
    co_return Json::array({{{"uri", uri}, {"mimeType", "text/plain"}, {"text", "A"}}});
  }
  Json prompts() override { return Json::array({{{"name", "hello"}}}); }
  std::vector<std::string> update_channels() override { return {"things.*"}; }
  std::vector<std::string> updated_by(const Event& event) override {
    return event.data.value("changed", std::vector<std::string>{});
  }
  Json complete(const Json& ref, std::string_view argument, std::string_view prefix) override {
    Json values = Json::array();
    if (ref.value("name", "") != "hello" || argument != "who") return values;
    for (const char* who : {"ada", "alan", "grace"}) {
      if (std::string_view(who).starts_with(prefix)) values.push_back(who);
    }
    return values;
  }
  Task<Result<Json>> get_prompt(std::string name, Json arguments) override {
    if (name != "hello") co_return absl::NotFoundError(cat("unknown prompt \"", name, "\""));
    if (!arguments.contains("who")) co_return absl::InvalidArgumentError("who: required");
    co_return Json{
        {"messages",
         Json::array({{{"role", "user"},
                       {"content",
                        {{"type", "text"},
                         {"text", cat("hello ", arguments["who"].get<std::string>())}}}}})}};
  }
};

class McpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Subscriber module;
    module.tap = [this](const EventPtr& event) {
      if (event->channel == "tool.files.slow") return;  // never answers
      Json args = event->data["arguments"];
      Json result = event->channel == "tool.files.read"
                        ? Json("contents of " + args.value("path", ""))
                        : Json{{"written", args["path"]}};
      (void)bus_.reply(*event, "files", Json{{"ok", true}, {"result", result}});
    };
    ASSERT_TRUE(bus_.subscribe("tool.files.*", SubscriptionFilter(), module).ok());
  }
  void TearDown() override {
    if (server_) server_->close();
    if (broker_) broker_->stop();
  }

  void start(McpServerOptions options = {}, llm::ToolBrokerOptions broker_options = {},
             int tools = 3) {
    registry_.add_module(files_manifest(tools));
    broker_ = llm::ToolBroker::create(bus_, registry_, std::move(broker_options));
    ASSERT_TRUE(broker_->start().ok());
    server_ = McpServer::create(bus_, registry_, broker_.get(), std::make_shared<FakeContent>(),
                                std::move(options), sent_.sink());
    ASSERT_TRUE(server_->start().ok());
  }

  void initialize(std::string version = "2025-11-25", Json capabilities = Json::object()) {
    Json reply = request(0, "initialize",
                         {{"protocolVersion", version},
                          {"capabilities", std::move(capabilities)},
                          {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
    ASSERT_TRUE(reply.contains("result")) << reply.dump();
    server_->handle(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  }

  // Sends a request and waits for the message answering it.
  Json request(Json id, std::string method, Json params = Json::object()) {
    return sent_.request(*server_, id, method, params);
  }
  Json wait_for(const std::function<bool(const Json&)>& matches,
                std::chrono::milliseconds timeout = 5s) {
    return sent_.wait_for(matches, timeout);
  }
  std::vector<Json> sent() const { return sent_.messages(); }

  LocalBus bus_{2};
  testing::SentMessages sent_;  // outlives the server that sends to it
  llm::ToolRegistry registry_;
  std::shared_ptr<llm::ToolBroker> broker_;
  std::shared_ptr<McpServer> server_;
};

TEST(JsonRpcTest, ClassifiesMessagesAndNamesTheError) {
  EXPECT_EQ(parse_message("{nope").problem.code, kParseError);
  EXPECT_EQ(parse_message("[1,2]").problem.code, kInvalidRequest);
  EXPECT_EQ(parse_message("7").problem.code, kInvalidRequest);
  RpcMessage no_version = parse_message(R"({"id":3,"method":"ping"})");
  EXPECT_EQ(no_version.kind, RpcMessage::Kind::kInvalid);
  EXPECT_EQ(no_version.problem.code, kInvalidRequest);
  EXPECT_EQ(no_version.id, 3);
  EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":null,"method":"ping"})").problem.code,
            kInvalidRequest);
  EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":1,"method":5})").problem.code, kInvalidRequest);
  EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":1,"method":"x","params":[1]})").problem.code,
            kInvalidParams);
  RpcMessage request = parse_message(R"({"jsonrpc":"2.0","id":"a","method":"tools/list"})");
  EXPECT_EQ(request.kind, RpcMessage::Kind::kRequest);
  EXPECT_EQ(request.params, Json::object());
  EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","method":"notifications/initialized"})").kind,
            RpcMessage::Kind::kNotification);
  EXPECT_EQ(parse_message(R"({"jsonrpc":"2.0","id":4,"result":{}})").kind,
            RpcMessage::Kind::kResponse);
  EXPECT_EQ(Json::parse(make_error(Json(), RpcError{kParseError, "x", Json()}))["id"], Json());
}

// Messages are written out member by member: each is whole JSON-RPC 2.0,
// and text that is not UTF-8 is replaced rather than breaking the message.
TEST(JsonRpcTest, WritesEachKindOfMessage) {
  EXPECT_EQ(Json::parse(make_result(7, {{"a", 1}})),
            (Json{{"jsonrpc", "2.0"}, {"id", 7}, {"result", {{"a", 1}}}}));
  EXPECT_EQ(Json::parse(make_error("x", RpcError{kInvalidParams, "bad", {{"field", "n"}}})),
            (Json{{"jsonrpc", "2.0"},
                  {"id", "x"},
                  {"error",
                   {{"code", kInvalidParams}, {"message", "bad"}, {"data", {{"field", "n"}}}}}}));
  EXPECT_EQ(Json::parse(make_notification("notifications/progress", {{"progress", 1}})),
            (Json{{"jsonrpc", "2.0"},
                  {"method", "notifications/progress"},
                  {"params", {{"progress", 1}}}}));
  EXPECT_EQ(
      Json::parse(make_request(3, "roots/list", Json::object())),
      (Json{{"jsonrpc", "2.0"}, {"id", 3}, {"method", "roots/list"}, {"params", Json::object()}}));
  Json broken = Json::parse(make_result(1, Json(std::string("caf\xc3"))));
  EXPECT_EQ(broken["result"], "caf\xef\xbf\xbd");  // U+FFFD
}

TEST(JsonRpcTest, WritesIdsAndValuesAsTheirJsonText) {
  for (const Json& value :
       {Json(0), Json(-42), Json(std::numeric_limits<int64_t>::min()),
        Json(std::numeric_limits<uint64_t>::max()), Json("7"), Json("say \"hi\""), Json(1.5),
        Json(nullptr), Json{{"a", Json::array({1, 2})}}}) {
    EXPECT_EQ(json_text(value), value.dump()) << value.dump();
    EXPECT_EQ(Json::parse(json_text(value)), value) << value.dump();
  }
  EXPECT_NE(json_text(Json(7)), json_text(Json("7")));  // the keys of calls in flight differ
}

TEST_F(McpServerTest, CompletesPromptArgumentsFromTheContent) {
  start();
  initialize();
  Json reply = request(1, "completion/complete",
                       {{"ref", {{"type", "ref/prompt"}, {"name", "hello"}}},
                        {"argument", {{"name", "who"}, {"value", "a"}}}});
  ASSERT_TRUE(reply.contains("result")) << reply.dump();
  EXPECT_EQ(reply["result"]["completion"]["values"], Json::array({"ada", "alan"}));
  EXPECT_EQ(reply["result"]["completion"]["hasMore"], false);
  Json nothing = request(2, "completion/complete",
                         {{"ref", {{"type", "ref/prompt"}, {"name", "other"}}},
                          {"argument", {{"name", "x"}, {"value", ""}}}});
  EXPECT_EQ(nothing["result"]["completion"]["values"], Json::array());
  Json bad = request(3, "completion/complete", {{"ref", "hello"}});
  EXPECT_EQ(bad["error"]["code"], kInvalidParams);
}

TEST_F(McpServerTest, NegotiatesTheProtocolVersion) {
  start();
  Json reply = request(1, "initialize",
                       {{"protocolVersion", "2024-11-05"},
                        {"capabilities", Json::object()},
                        {"clientInfo", {{"name", "old"}, {"version", "1"}}}});
  EXPECT_EQ(reply["result"]["protocolVersion"], "2024-11-05");
  EXPECT_EQ(reply["result"]["serverInfo"]["name"], "lotus");
  EXPECT_TRUE(reply["result"]["capabilities"]["tools"]["listChanged"].get<bool>());
  EXPECT_TRUE(reply["result"]["capabilities"].contains("logging"));
  EXPECT_EQ(server_->client_info()["name"], "old");
  Json again = request(2, "initialize", {{"protocolVersion", "2025-06-18"}});
  EXPECT_EQ(again["error"]["code"], kInvalidRequest);
}

TEST_F(McpServerTest, AnswersAnUnknownVersionWithTheLatest) {
  start();
  Json reply = request("x", "initialize", {{"protocolVersion", "1999-01-01"}});
  EXPECT_EQ(reply["result"]["protocolVersion"], std::string(kProtocolVersions[0]));
  for (const char* version : {"2025-11-25", "2025-06-18", "2025-03-26"}) {
    auto other =
        McpServer::create(bus_, registry_, broker_.get(), nullptr, {}, [&](std::string message) {
          EXPECT_EQ(Json::parse(message)["result"]["protocolVersion"], version);
        });
    other->handle(Json{{"jsonrpc", "2.0"},
                       {"id", 1},
                       {"method", "initialize"},
                       {"params", {{"protocolVersion", version}}}}
                      .dump());
  }
}

TEST_F(McpServerTest, RefusesWorkBeforeInitializeButAnswersPing) {
  start();
  EXPECT_EQ(request(1, "ping")["result"], Json::object());
  EXPECT_EQ(request(2, "tools/list")["error"]["code"], kInvalidRequest);
  EXPECT_EQ(request(3, "initialize", Json::object())["error"]["code"], kInvalidParams);
}

TEST_F(McpServerTest, ErrorsForBadMessages) {
  start();
  initialize();
  server_->handle("{not json");
  Json parse = wait_for([](const Json& m) { return m.contains("error") && m["id"].is_null(); });
  EXPECT_EQ(parse["error"]["code"], kParseError);
  EXPECT_EQ(request(5, "no/such/method")["error"]["code"], kMethodNotFound);
  EXPECT_EQ(request(6, "tools/call", {{"arguments", Json::object()}})["error"]["code"],
            kInvalidParams);
  EXPECT_EQ(request(7, "tools/call", {{"name", "files.read"}, {"arguments", 3}})["error"]["code"],
            kInvalidParams);
  EXPECT_EQ(request(8, "logging/setLevel", {{"level", "loud"}})["error"]["code"], kInvalidParams);
  EXPECT_EQ(request(9, "tools/list", {{"cursor", "garbage"}})["error"]["code"], kInvalidParams);
  server_->handle(R"({"jsonrpc":"2.0","id":10,"method":"tools/list","params":"x"})");
  EXPECT_EQ(wait_for([](const Json& m) { return m["id"] == 10; })["error"]["code"], kInvalidParams);
  // Still serving.
  EXPECT_EQ(request(11, "ping")["result"], Json::object());
}

TEST_F(McpServerTest, RefusesOversizedMessages) {
  McpServerOptions options;
  options.max_message_bytes = 250;
  start(options);
  initialize();
  std::string big = Json{{"jsonrpc", "2.0"},
                         {"id", 1},
                         {"method", "ping"},
                         {"params", {{"pad", std::string(400, 'x')}}}}
                        .dump();
  server_->handle(big);
  Json refused = wait_for([](const Json& m) { return m.contains("error"); });
  EXPECT_EQ(refused["error"]["code"], kInvalidRequest);
  EXPECT_THAT(refused["error"]["message"].get<std::string>(), HasSubstr("limit is 250"));
  EXPECT_EQ(request(2, "ping")["result"], Json::object());
}

TEST_F(McpServerTest, ListsToolsWithSchemasInPages) {
  McpServerOptions options;
  options.page_size = 2;
  start(options, {}, 5);
  initialize();
  std::vector<std::string> names;
  Json cursor;
  for (int i = 0; i < 10; ++i) {
    Json params = cursor.is_null() ? Json::object() : Json{{"cursor", cursor}};
    Json reply = request(100 + i, "tools/list", params);
    ASSERT_TRUE(reply.contains("result")) << reply.dump();
    for (const Json& tool : reply["result"]["tools"]) {
      names.push_back(tool["name"]);
      EXPECT_EQ(tool["inputSchema"]["type"], "object");
      if (tool["name"] == "files__read") {
        EXPECT_EQ(tool["title"], "files.read");
        EXPECT_EQ(tool["description"], "Reads a file");
        EXPECT_EQ(tool["inputSchema"]["required"], Json::array({"path"}));
      }
    }
    if (!reply["result"].contains("nextCursor")) break;
    cursor = reply["result"]["nextCursor"];
  }
  EXPECT_EQ(names, (std::vector<std::string>{"files__extra3", "files__extra4", "files__read",
                                             "files__slow", "files__write"}));
}

TEST_F(McpServerTest, CallsToolsThroughTheBroker) {
  start();
  initialize();
  Json reply = request(1, "tools/call", {{"name", "files__read"}, {"arguments", {{"path", "a"}}}});
  ASSERT_TRUE(reply.contains("result")) << reply.dump();
  EXPECT_EQ(reply["result"]["isError"], false);
  EXPECT_EQ(reply["result"]["content"][0]["text"], "contents of a");
  // The qualified name works too.
  Json qualified =
      request(2, "tools/call", {{"name", "files.read"}, {"arguments", {{"path", "b"}}}});
  EXPECT_EQ(qualified["result"]["content"][0]["text"], "contents of b");
  // A text result is written straight into the reply: quotes, newlines and
  // other scripts arrive as they were.
  const std::string path = "\"q\"\n\tcaf\u00e9 \u65e5\u672c \\ end";
  Json text = request(3, "tools/call", {{"name", "files__read"}, {"arguments", {{"path", path}}}});
  EXPECT_EQ(text["result"],
            (Json{{"content", {{{"type", "text"}, {"text", "contents of " + path}}}},
                  {"isError", false}}));
}

TEST_F(McpServerTest, DeniedAndInvalidCallsAreErrorResults) {
  llm::ToolBrokerOptions broker_options;
  broker_options.policy = *llm::ToolPolicy::create({{"files.write", "deny"}}, {});
  start({}, std::move(broker_options));
  initialize();
  Json denied = request(1, "tools/call", {{"name", "files.write"}, {"arguments", {{"path", "b"}}}});
  EXPECT_EQ(denied["result"]["isError"], true);
  EXPECT_THAT(denied["result"]["content"][0]["text"].get<std::string>(), HasSubstr("not allowed"));
  Json invalid = request(2, "tools/call", {{"name", "files.read"}, {"arguments", {{"path", 5}}}});
  EXPECT_EQ(invalid["result"]["isError"], true);
  EXPECT_THAT(invalid["result"]["content"][0]["text"].get<std::string>(),
              HasSubstr("invalid arguments for files.read"));
  Json unknown = request(3, "tools/call", {{"name", "files.nope"}});
  EXPECT_EQ(unknown["error"]["code"], kInvalidParams);
}

TEST_F(McpServerTest, AnAskWithNobodyToApproveTimesOut) {
  llm::ToolBrokerOptions broker_options;
  broker_options.approval_timeout = 100ms;
  start({}, std::move(broker_options));
  initialize();
  Json reply = request(1, "tools/call", {{"name", "files.write"}, {"arguments", {{"path", "b"}}}});
  EXPECT_EQ(reply["result"]["isError"], true);
  EXPECT_THAT(reply["result"]["content"][0]["text"].get<std::string>(), HasSubstr("not approved"));
}

TEST_F(McpServerTest, SendsProgressWhenAskedTo) {
  start();
  initialize();
  Json reply = request(1, "tools/call",
                       {{"name", "files.read"},
                        {"arguments", {{"path", "a"}}},
                        {"_meta", {{"progressToken", "tok"}}}});
  EXPECT_EQ(reply["result"]["isError"], false);
  std::vector<double> progress;
  for (const Json& m : sent()) {
    if (m.value("method", "") == "notifications/progress") {
      EXPECT_EQ(m["params"]["progressToken"], "tok");
      progress.push_back(m["params"]["progress"].get<double>());
    }
  }
  EXPECT_EQ(progress, (std::vector<double>{0, 1}));
}

TEST_F(McpServerTest, CancelledCallsGetNoAnswerAndFreeTheirSlot) {
  llm::ToolBrokerOptions broker_options;
  broker_options.timeout = 300ms;
  start({}, std::move(broker_options));
  initialize();
  server_->handle(
      R"({"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"files.slow"}})");
  for (int i = 0; i < 100 && server_->in_flight() == 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(server_->in_flight(), 1u);
  server_->handle(
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c","reason":"bored"}})");
  // The broker gives up after its timeout; the answer is dropped.
  for (int i = 0; i < 2000 && server_->in_flight() > 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(server_->in_flight(), 0u);
  EXPECT_EQ(request(2, "ping")["result"], Json::object());
  for (const Json& m : sent()) EXPECT_NE(m.value("id", Json()), "c") << m.dump();
}

// The client offers elicitation: a call that needs approval asks the
// client's person (one yes/no field); cancelling the call withdraws the
// question (notifications/cancelled) and refuses the approval.
TEST_F(McpServerTest, CancellingAWaitingApprovalRefusesIt) {
  start();
  initialize("2025-11-25", {{"elicitation", Json::object()}});
  server_->handle(
      R"({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"files.write","arguments":{"path":"x"}}})");
  Json asked =
      wait_for([](const Json& m) { return m.value("method", "") == "elicitation/create"; });
  ASSERT_FALSE(asked.is_null());
  ASSERT_EQ(broker_->pending_approvals().size(), 1u);
  server_->handle(
      R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}})");
  Json withdrawn = wait_for([&](const Json& m) {
    return m.value("method", "") == "notifications/cancelled" &&
           m["params"]["requestId"] == asked["id"];
  });
  EXPECT_FALSE(withdrawn.is_null());
  for (int i = 0; i < 2000 && server_->in_flight() > 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(server_->in_flight(), 0u);
  EXPECT_TRUE(broker_->pending_approvals().empty());
}

TEST_F(McpServerTest, AnApprovalIsAskedOfTheClientsPersonThroughElicitation) {
  start();
  initialize("2025-06-18", {{"elicitation", Json::object()}});
  auto ask_and_answer = [&](int id, const std::string& path, const std::string& answer) {
    server_->handle(
        cat(R"({"jsonrpc":"2.0","id":)", id,
            R"(,"method":"tools/call","params":{"name":"files.write","arguments":{"path":")", path,
            R"("}}})"));
    Json asked = wait_for([&](const Json& m) {
      return m.value("method", "") == "elicitation/create" &&
             m["params"]["message"].get<std::string>().find(path) != std::string::npos;
    });
    if (asked.is_null()) return Json();
    const Json& params = asked["params"];
    EXPECT_THAT(params["message"].get<std::string>(), HasSubstr("files.write"));
    EXPECT_EQ(params["requestedSchema"]["type"], "object");
    EXPECT_EQ(params["requestedSchema"]["properties"]["approve"]["type"], "boolean");
    EXPECT_EQ(params["requestedSchema"]["required"], Json({"approve"}));
    EXPECT_FALSE(params.contains("mode"));  // form, understood by 2025-06-18 clients too
    server_->handle(cat(R"({"jsonrpc":"2.0","id":)", asked["id"].dump(), ",", answer, "}"));
    return wait_for([&](const Json& m) { return m.contains("result") && m["id"] == id; });
  };
  Json yes =
      ask_and_answer(1, "yes.txt", R"("result":{"action":"accept","content":{"approve":true}})");
  EXPECT_EQ(yes["result"]["isError"], false) << yes.dump();
  EXPECT_THAT(yes.dump(), HasSubstr("yes.txt"));
  Json unticked = ask_and_answer(2, "unticked.txt",
                                 R"("result":{"action":"accept","content":{"approve":false}})");
  EXPECT_EQ(unticked["result"]["isError"], true);
  EXPECT_THAT(unticked.dump(), HasSubstr("declined on the MCP client"));
  Json declined = ask_and_answer(3, "declined.txt", R"("result":{"action":"decline"})");
  EXPECT_THAT(declined.dump(), HasSubstr("declined on the MCP client"));
  Json dismissed = ask_and_answer(4, "dismissed.txt", R"("result":{"action":"cancel"})");
  EXPECT_THAT(dismissed.dump(), HasSubstr("dismissed on the MCP client"));
  Json failed =
      ask_and_answer(5, "failed.txt", R"("error":{"code":-32601,"message":"no dialogs here"})");
  EXPECT_EQ(failed["result"]["isError"], true);
  EXPECT_THAT(failed.dump(), HasSubstr("the MCP client could not ask: no dialogs here"));
  EXPECT_TRUE(broker_->pending_approvals().empty());
}

// Without elicitation (or with URL mode only) and with nothing else in the
// process to show approvals, a call that needs one is refused at once, with
// what to do instead.
TEST_F(McpServerTest, ACallNobodyCanApproveIsRefusedAtOnce) {
  start();
  initialize("2025-11-25", {{"elicitation", {{"url", Json::object()}}}});
  Json refused =
      request(1, "tools/call", {{"name", "files.write"}, {"arguments", {{"path", "x"}}}});
  EXPECT_EQ(refused["result"]["isError"], true) << refused.dump();
  EXPECT_THAT(refused.dump(), HasSubstr("nobody is there to approve it"));
  EXPECT_THAT(refused.dump(), HasSubstr("--allow"));
  for (const Json& m : sent()) EXPECT_NE(m.value("method", ""), "elicitation/create");
}

TEST_F(McpServerTest, DuplicateIdsInFlightAreRefused) {
  llm::ToolBrokerOptions broker_options;
  broker_options.timeout = 200ms;
  start({}, std::move(broker_options));
  initialize();
  server_->handle(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files.slow"}})");
  Json dup = request(1, "tools/call", {{"name", "files.slow"}});
  EXPECT_EQ(dup["error"]["code"], kInvalidRequest);
  // The first one still gets its answer: the tool did not reply in time.
  Json late = wait_for([](const Json& m) { return m.contains("result") && m["id"] == 1; });
  EXPECT_EQ(late["result"]["isError"], true) << late.dump();
}

TEST_F(McpServerTest, ToolsChangedReachesTheClient) {
  start();
  initialize();
  ASSERT_TRUE(bus_.publish(Event::make("system.tools_changed", "nucleus", {{"module", "x"}})).ok());
  Json changed = wait_for(
      [](const Json& m) { return m.value("method", "") == "notifications/tools/list_changed"; });
  EXPECT_FALSE(changed.is_null());
}

TEST_F(McpServerTest, ModulesComingAndGoingChangeTheResourceAndPromptLists) {
  start();
  Json reply = request(0, "initialize", {{"protocolVersion", "2025-11-25"}});
  EXPECT_EQ(reply["result"]["capabilities"]["resources"]["listChanged"], true);
  EXPECT_EQ(reply["result"]["capabilities"]["resources"]["subscribe"], true);
  EXPECT_EQ(reply["result"]["capabilities"]["prompts"]["listChanged"], true);
  // Every module is a resource (its manifest); only one that declares
  // prompts changes the prompt list. An event that does not say (from an
  // older node) is taken to change both.
  for (const char* channel : {"system.module_loaded", "system.module_unloaded"}) {
    ASSERT_TRUE(
        bus_.publish(Event::make(channel, "nucleus", {{"module", "x"}, {"mcp_prompts", 0}})).ok());
    ASSERT_TRUE(
        bus_.publish(Event::make(channel, "nucleus", {{"module", "y"}, {"mcp_prompts", 2}})).ok());
    ASSERT_TRUE(bus_.publish(Event::make(channel, "nucleus", {{"module", "z"}})).ok());
  }
  size_t resources = 0;
  size_t prompts = 0;
  for (const Json& m : sent()) {
    resources += m.value("method", "") == "notifications/resources/list_changed" ? 1 : 0;
    prompts += m.value("method", "") == "notifications/prompts/list_changed" ? 1 : 0;
  }
  EXPECT_EQ(resources, 6u);
  EXPECT_EQ(prompts, 4u);
}

TEST_F(McpServerTest, ContentChangesReachClientsSubscribedToThem) {
  start();
  initialize();
  EXPECT_EQ(request(1, "resources/subscribe", {{"uri", "lotus://a"}})["result"], Json::object());
  ASSERT_TRUE(bus_.publish(Event::make("things.changed", "nucleus",
                                       {{"changed", {"lotus://a", "lotus://b"}}}))
                  .ok());
  ASSERT_TRUE(
      bus_.publish(Event::make("things.changed", "nucleus", {{"changed", {"lotus://b"}}})).ok());
  std::vector<std::string> updated;
  for (const Json& m : sent()) {
    if (m.value("method", "") == "notifications/resources/updated") {
      updated.push_back(m["params"]["uri"]);
    }
  }
  EXPECT_EQ(updated, std::vector<std::string>{"lotus://a"});
}

TEST_F(McpServerTest, ResourcesAndTemplates) {
  start();
  initialize();
  Json list = request(1, "resources/list");
  ASSERT_EQ(list["result"]["resources"].size(), 2u);
  EXPECT_EQ(list["result"]["resources"][0]["uri"], "lotus://a");  // sorted
  Json templates = request(2, "resources/templates/list");
  EXPECT_EQ(templates["result"]["resourceTemplates"][0]["uriTemplate"], "lotus://x/{id}");
  Json read = request(3, "resources/read", {{"uri", "lotus://a"}});
  EXPECT_EQ(read["result"]["contents"][0]["text"], "A");
  Json missing = request(4, "resources/read", {{"uri", "lotus://zzz"}});
  EXPECT_EQ(missing["error"]["code"], kResourceNotFound);
  EXPECT_EQ(request(5, "resources/read")["error"]["code"], kInvalidParams);
}

TEST_F(McpServerTest, Prompts) {
  start();
  initialize();
  EXPECT_EQ(request(1, "prompts/list")["result"]["prompts"][0]["name"], "hello");
  Json got = request(2, "prompts/get", {{"name", "hello"}, {"arguments", {{"who", "you"}}}});
  EXPECT_EQ(got["result"]["messages"][0]["content"]["text"], "hello you");
  EXPECT_EQ(request(3, "prompts/get", {{"name", "hello"}})["error"]["code"], kInvalidParams);
  EXPECT_EQ(request(4, "prompts/get", {{"name", "nope"}})["error"]["code"], kInvalidParams);
}

TEST_F(McpServerTest, LoggingFollowsTheClientsLevel) {
  start();
  server_->log(McpLogLevel::kError, "lotus", "before initialize");  // not sent
  initialize();
  server_->log(McpLogLevel::kInfo, "lotus", "too quiet");  // below warning
  EXPECT_EQ(request(1, "logging/setLevel", {{"level", "debug"}})["result"], Json::object());
  server_->log(McpLogLevel::kInfo, "lotus", "heard");
  Json heard =
      wait_for([](const Json& m) { return m.value("method", "") == "notifications/message"; });
  EXPECT_EQ(heard["params"]["data"], "heard");
  EXPECT_EQ(heard["params"]["level"], "info");
  int messages = 0;
  for (const Json& m : sent()) messages += m.value("method", "") == "notifications/message";
  EXPECT_EQ(messages, 1);
}

TEST_F(McpServerTest, NothingIsSentAfterClose) {
  start();
  initialize();
  size_t before = sent().size();
  server_->close();
  server_->handle(R"({"jsonrpc":"2.0","id":9,"method":"ping"})");
  EXPECT_EQ(sent().size(), before);
}

}  // namespace
}  // namespace lotus::mcp
