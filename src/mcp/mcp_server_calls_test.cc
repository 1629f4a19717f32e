// McpServer and what tools do while they run: MCP content results, bare
// tool names, progress and logs reported by the tool, questions to the client
// (sampling, elicitation), and resource subscriptions. The "kit" module here
// stands in for a module host: it answers tool calls with a BusToolCall, the
// context real modules get.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bus/local_bus.h"
#include "core/bus_tool_call.h"
#include "lotus/strings.h"
#include "mcp/mcp_server.h"
#include "testing/mcp_sent_messages.h"
#include "testing/sync_wait.h"

namespace lotus::mcp {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

Manifest kit_manifest(bool bare) {
  std::string yaml = R"(name: kit
version: 1.0.0
type: capability
tools:
  - name: picture
  - name: broken
  - name: steps
  - name: ask
    parameters: [{name: method, type: string, required: true}]
  - name: big
)";
  if (bare) yaml += "mcp:\n  tool_names: bare\n";
  auto m = parse_manifest(yaml, "kit/manifest.yaml");
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

// One tool call, run the way a module host runs it.
Task<void> run_kit_tool(Bus* bus, EventPtr event) {
  BusToolCall bus_call(*bus, "kit", event->data.value("call_id", ""),
                       event->data.value("session", ""), "");
  ToolCallContext& call = bus_call;  // as a module's tool sees it
  Json response;
  if (event->channel == "tool.kit.picture") {
    response = {
        {"ok", true},
        {"result", mcp_content(Json::array(
                       {{{"type", "image"}, {"data", "iVBORw0KGgo="}, {"mimeType", "image/png"}},
                        {{"type", "text"}, {"text", "a picture"}}}))}};
  } else if (event->channel == "tool.kit.broken") {
    response = {
        {"ok", true},
        {"result", mcp_content(Json::array({{{"type", "text"}, {"text", "it broke"}}}), true)}};
  } else if (event->channel == "tool.kit.steps") {
    call.log("info", "starting");
    call.progress(0, 100);
    call.progress(50, 100, "half way");
    call.progress(40, 100);  // never backwards: dropped
    call.log("debug", Json{{"detail", 1}});
    call.progress(100, 100);
    response = {{"ok", true}, {"result", "stepped"}};
  } else if (event->channel == "tool.kit.big") {
    response = {{"ok", true},
                {"result", mcp_content(Json::array({{{"type", "image"},
                                                     {"data", std::string(40000, 'A')},
                                                     {"mimeType", "image/png"}}}))}};
  } else if (event->channel == "tool.kit.ask") {
    std::string method = event->data["arguments"].value("method", "");
    auto asking = call.ask(method, Json{{"message", "which?"}}, 5s);
    Result<Json> answer = co_await std::move(asking);
    response = answer.ok() ? Json{{"ok", true}, {"result", *answer}}
                           : Json{{"ok", false}, {"error", message_of(answer.status())}};
  }
  (void)bus->reply(*event, "kit", std::move(response));
}

class McpServerCallsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Subscriber module;
    module.tap = [this](const EventPtr& event) {
      start_detached(run_kit_tool(&bus_, event), [](std::exception_ptr) {});
    };
    ASSERT_TRUE(bus_.subscribe("tool.kit.*", SubscriptionFilter(), module).ok());
  }
  void TearDown() override {
    if (server_) server_->close();
    if (broker_) broker_->stop();
  }

  void start(bool bare = false, Json capabilities = Json::object()) {
    registry_.add_module(kit_manifest(bare));
    broker_ = llm::ToolBroker::create(bus_, registry_, {});
    ASSERT_TRUE(broker_->start().ok());
    server_ = McpServer::create(bus_, registry_, broker_.get(), nullptr, {}, sent_.sink());
    ASSERT_TRUE(server_->start().ok());
    Json reply = request(0, "initialize",
                         {{"protocolVersion", "2025-11-25"},
                          {"capabilities", capabilities},
                          {"clientInfo", {{"name", "t"}, {"version", "1"}}}});
    ASSERT_TRUE(reply.contains("result")) << reply.dump();
  }

  Json request(Json id, std::string method, Json params = Json::object()) {
    return sent_.request(*server_, id, method, params);
  }
  Json call(Json id, std::string tool, Json arguments = Json::object(), Json meta = Json()) {
    Json params = {{"name", tool}, {"arguments", arguments}};
    if (!meta.is_null()) params["_meta"] = meta;
    return request(id, "tools/call", params);
  }

  Json wait_for(const std::function<bool(const Json&)>& matches,
                std::chrono::milliseconds timeout = 5s) {
    return sent_.wait_for(matches, timeout);
  }
  // Calls kit__ask as request `id`, which asks the client `method` while it
  // runs; returns the request the client receives (null if none came).
  Json call_asking(int id, const std::string& method) {
    server_->handle(Json{{"jsonrpc", "2.0"},
                         {"id", id},
                         {"method", "tools/call"},
                         {"params", {{"name", "kit__ask"}, {"arguments", {{"method", method}}}}}}
                        .dump());
    return wait_for(
        [&method](const Json& m) { return m.value("method", "") == method && m.contains("id"); });
  }
  // The messages sent with `method`, and what each was related to.
  std::vector<std::pair<Json, Json>> sent_with(std::string_view method) {
    return sent_.with_method(method);
  }

  LocalBus bus_{2};
  testing::SentMessages sent_;  // outlives the server that sends to it
  llm::ToolRegistry registry_;
  std::shared_ptr<llm::ToolBroker> broker_;
  std::shared_ptr<McpServer> server_;
};

TEST_F(McpServerCallsTest, PassesMcpContentAndErrorResultsThrough) {
  start();
  Json picture = call(1, "kit__picture");
  ASSERT_TRUE(picture.contains("result")) << picture.dump();
  EXPECT_EQ(picture["result"]["isError"], false);
  ASSERT_EQ(picture["result"]["content"].size(), 2u);
  EXPECT_EQ(picture["result"]["content"][0]["type"], "image");
  EXPECT_EQ(picture["result"]["content"][0]["mimeType"], "image/png");
  EXPECT_EQ(picture["result"]["content"][1]["text"], "a picture");
  EXPECT_FALSE(picture["result"].contains("structuredContent"));

  Json broken = call(2, "kit__broken");
  EXPECT_EQ(broken["result"]["isError"], true);
  EXPECT_EQ(broken["result"]["content"][0]["text"], "it broke");

  // Over the broker's result cap (32 KiB), which is for models' context:
  // an MCP client gets the content whole.
  Json big = call(3, "kit__big");
  EXPECT_EQ(big["result"]["content"][0]["data"].get<std::string>().size(), 40000u);
}

TEST_F(McpServerCallsTest, BareToolNamesAreListedAndCalled) {
  start(/*bare=*/true);
  Json list = request(1, "tools/list");
  std::vector<std::string> names;
  for (const Json& tool : list["result"]["tools"]) names.push_back(tool["name"]);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("picture", "broken", "steps", "ask", "big"));
  EXPECT_EQ(call(2, "picture")["result"]["isError"], false);
  EXPECT_EQ(call(3, "kit__picture")["result"]["isError"], false);  // the old name still works
}

TEST_F(McpServerCallsTest, ToolProgressAndLogsGoToTheClientWithTheirRequest) {
  start();
  ASSERT_TRUE(request(1, "logging/setLevel", {{"level", "info"}}).contains("result"));
  Json reply = call(2, "kit__steps", Json::object(), {{"progressToken", "p"}});
  EXPECT_EQ(reply["result"]["content"][0]["text"], "stepped");

  std::vector<double> progress;
  for (const auto& [message, related] : sent_with("notifications/progress")) {
    EXPECT_EQ(message["params"]["progressToken"], "p");
    EXPECT_EQ(related, 2);
    progress.push_back(message["params"]["progress"].get<double>());
  }
  // The server's own start (0), then the tool's (its 0 is not higher), and
  // no "done" of the server's once the tool reported progress itself.
  EXPECT_EQ(progress, (std::vector<double>{0, 50, 100}));

  auto logs = sent_with("notifications/message");
  ASSERT_EQ(logs.size(), 1u);  // the debug one is below the client's level
  EXPECT_EQ(logs[0].first["params"]["level"], "info");
  EXPECT_EQ(logs[0].first["params"]["logger"], "kit");
  EXPECT_EQ(logs[0].first["params"]["data"], "starting");
  EXPECT_EQ(logs[0].second, 2);

  // Each reply is routed as the answer to its request (HTTP ends that POST
  // with it); nothing else is.
  size_t replies = 0;
  for (const testing::SentMessages::Sent& sent : sent_.all()) {
    const bool is_reply = sent.message.contains("result") || sent.message.contains("error");
    EXPECT_EQ(sent.answers, is_reply) << sent.message.dump();
    if (is_reply) {
      ++replies;
      EXPECT_EQ(sent.related, sent.message["id"]) << sent.message.dump();
    }
  }
  EXPECT_GE(replies, 2u);  // initialize's and the call's
}

TEST_F(McpServerCallsTest, ToolQuestionsGoToTheClientAndItsAnswerBack) {
  start(false, {{"sampling", Json::object()}});
  Json asked = call_asking(7, "sampling/createMessage");
  ASSERT_FALSE(asked.is_null());
  EXPECT_EQ(asked["params"]["message"], "which?");
  EXPECT_EQ(sent_with("sampling/createMessage")[0].second, 7);  // on the call's stream
  server_->handle(Json{{"jsonrpc", "2.0"},
                       {"id", asked["id"]},
                       {"result", {{"role", "assistant"}, {"content", {{"text", "that one"}}}}}}
                      .dump());
  Json reply = wait_for([](const Json& m) { return m.value("id", Json()) == 7; });
  ASSERT_TRUE(reply.contains("result")) << reply.dump();
  EXPECT_EQ(reply["result"]["isError"], false);
  EXPECT_EQ(reply["result"]["structuredContent"]["content"]["text"], "that one");
}

TEST_F(McpServerCallsTest, AClientErrorAnswerFailsTheCall) {
  start(false, {{"elicitation", Json::object()}});
  Json asked = call_asking(8, "elicitation/create");
  ASSERT_FALSE(asked.is_null());
  server_->handle(Json{{"jsonrpc", "2.0"},
                       {"id", asked["id"]},
                       {"error", {{"code", -1}, {"message", "user said no"}}}}
                      .dump());
  Json reply = wait_for([](const Json& m) { return m.value("id", Json()) == 8; });
  EXPECT_EQ(reply["result"]["isError"], true);
  EXPECT_THAT(reply["result"]["content"][0]["text"].get<std::string>(), HasSubstr("user said no"));
}

TEST_F(McpServerCallsTest, CancellingACallWithdrawsItsQuestionsAndEndsTheToolsWait) {
  start(false, {{"sampling", Json::object()}});
  Json asked = call_asking(9, "sampling/createMessage");
  ASSERT_FALSE(asked.is_null());
  auto begin = std::chrono::steady_clock::now();
  server_->handle(Json{
      {"jsonrpc", "2.0"}, {"method", "notifications/cancelled"}, {"params", {{"requestId", 9}}}}
                      .dump());
  Json withdrawn = wait_for([&](const Json& m) {
    return m.value("method", "") == "notifications/cancelled" &&
           m["params"]["requestId"] == asked["id"];
  });
  EXPECT_FALSE(withdrawn.is_null());
  while (server_->in_flight() > 0 && std::chrono::steady_clock::now() - begin < 3s) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(server_->in_flight(), 0u);  // the tool did not wait out its 5 s
  // A late answer from the client is ignored; no result goes out for the call.
  server_->handle(Json{{"jsonrpc", "2.0"}, {"id", asked["id"]}, {"result", Json::object()}}.dump());
  EXPECT_EQ(request(10, "ping")["result"], Json::object());
  EXPECT_TRUE(wait_for([](const Json& m) { return m.value("id", Json()) == 9; }, 100ms).is_null());
}

TEST_F(McpServerCallsTest, AskingAClientWithoutTheCapabilityFailsAtOnce) {
  start();  // no sampling, no elicitation
  Json reply = call(1, "kit__ask", {{"method", "elicitation/create"}});
  EXPECT_EQ(reply["result"]["isError"], true);
  EXPECT_THAT(reply["result"]["content"][0]["text"].get<std::string>(),
              HasSubstr("does not offer elicitation"));
  EXPECT_TRUE(sent_with("elicitation/create").empty());
}

TEST_F(McpServerCallsTest, ModulesComingAndGoingChangeTheResourceAndPromptLists) {
  // Without content there is nothing to change.
  start();
  ASSERT_TRUE(bus_.publish(Event::make("system.module_loaded", "nucleus", {{"module", "x"}})).ok());
  EXPECT_EQ(request(1, "ping")["result"], Json::object());
  EXPECT_TRUE(sent_with("notifications/resources/list_changed").empty());
}

TEST(BusToolCallTest, WithoutASessionProgressAndLogsAreDroppedAndAskFails) {
  LocalBus bus(1);
  BusToolCall bus_call(bus, "kit", "c1", "", "");
  ToolCallContext& call = bus_call;
  call.progress(1, 2);
  call.log("info", "nobody listens");
  EXPECT_EQ(bus.stats().published, 0u);
  Result<Json> answer =
      testing::sync_wait(bus.executor(), call.ask("sampling/createMessage", Json::object(), 1s));
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(McpServerCallsTest, SubscribedClientsHearOfUpdatedResources) {
  start();
  EXPECT_EQ(request(1, "initialize", {{"protocolVersion", "2025-11-25"}})["error"]["code"],
            kInvalidRequest);  // (already initialized; declared capabilities stay)
  EXPECT_EQ(request(2, "resources/subscribe", {{"uri", "test://w"}})["result"], Json::object());
  EXPECT_EQ(request(3, "resources/subscribe", Json::object())["error"]["code"], kInvalidParams);
  auto updated = [&](const char* uri) {
    ASSERT_TRUE(bus_.publish(Event::make(std::string(McpServer::kResourceUpdatedChannel), "kit",
                                         Json{{"uri", uri}}))
                    .ok());
  };
  updated("test://other");
  updated("test://w");
  Json note = wait_for(
      [](const Json& m) { return m.value("method", "") == "notifications/resources/updated"; });
  EXPECT_EQ(note["params"]["uri"], "test://w");
  EXPECT_EQ(request(4, "resources/unsubscribe", {{"uri", "test://w"}})["result"], Json::object());
  updated("test://w");
  EXPECT_EQ(request(5, "ping")["result"], Json::object());
  EXPECT_EQ(sent_with("notifications/resources/updated").size(), 1u);
}

}  // namespace
}  // namespace lotus::mcp
