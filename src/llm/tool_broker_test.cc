#include "llm/tool_broker.h"

#include <atomic>
#include <chrono>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bus/local_bus.h"
#include "testing/event_log.h"
#include "testing/sync_wait.h"

namespace lotus::llm {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

Manifest files_manifest() {
  auto m = parse_manifest(R"(name: files
version: 1.0.0
type: core
permissions: [file.read, file.write]
tools:
  - name: read
    permissions: [file.read]
    parameters: [{name: path, type: string, required: true}]
  - name: write
    parameters: [{name: path, type: string, required: true}]
  - name: silent
    permissions: [file.read]
)",
                          "files/manifest.yaml");
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

// A stand-in for the module: answers tool.files.* (except silent) at once.
class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.add_module(files_manifest());
    Subscriber module;
    module.tap = [this](const EventPtr& event) {
      if (event->channel == "tool.files.silent") return;
      calls_.fetch_add(1);
      Json args = event->data["arguments"];
      Json result = event->channel == "tool.files.read"
                        ? Json(std::string(args.value("path", "") == "big" ? 5000 : 3, 'r'))
                        : Json{{"written", args["path"]}};
      (void)bus_.reply(*event, "files", Json{{"ok", true}, {"result", result}});
    };
    ASSERT_TRUE(bus_.subscribe("tool.files.*", SubscriptionFilter(), module).ok());
  }
  void TearDown() override {
    if (broker_) broker_->stop();
  }

  void start(ToolBrokerOptions options) {
    options.max_result_bytes = 1000;
    broker_ = ToolBroker::create(bus_, registry_, std::move(options));
    ASSERT_TRUE(broker_->start().ok());
  }
  Json call(std::string tool, Json arguments) {
    ToolCallRequest request{std::move(tool), std::move(arguments), "c1", "trace-1", "tester", ""};
    return testing::sync_wait(bus_.executor(), broker_->call(std::move(request))).to_json();
  }

  LocalBus bus_{2};
  ToolRegistry registry_;
  std::shared_ptr<ToolBroker> broker_;
  std::atomic<int> calls_{0};
};

TEST_F(BrokerTest, RunsAnAllowedCallAndLogsIt) {
  start({});
  testing::EventLog log(bus_);
  Json answer = call("files__read", {{"path", "a.txt"}});
  EXPECT_EQ(answer["ok"], true) << answer.dump();
  EXPECT_EQ(answer["tool"], "files.read");
  EXPECT_EQ(answer["result"], "rrr");
  EXPECT_EQ(answer["truncated"], false);
  ASSERT_NE(log.wait_for("action_log"), nullptr);
  EventPtr result = log.wait_for("action.tool_result");
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(result->metadata.trace_id, "trace-1");
  EXPECT_EQ(broker_->stats().calls, 1u);
}

TEST_F(BrokerTest, RefusesBadArgumentsAndUnknownToolsWithoutCallingAnything) {
  start({});
  Json bad = call("files.read", {{"path", 7}});
  EXPECT_EQ(bad["ok"], false);
  EXPECT_THAT(bad["error"].get<std::string>(), HasSubstr("invalid arguments for files.read"));
  Json unknown = call("files.delete", Json::object());
  EXPECT_THAT(unknown["error"].get<std::string>(), HasSubstr("there is no tool \"files.delete\""));
  EXPECT_EQ(calls_.load(), 0);
  EXPECT_EQ(broker_->stats().invalid, 2u);
}

TEST_F(BrokerTest, CutsLargeResults) {
  start({});
  Json answer = call("files.read", {{"path", "big"}});
  EXPECT_EQ(answer["truncated"], true);
  EXPECT_THAT(answer["result"].get<std::string>(), HasSubstr("4000 more bytes left out"));
  bool truncated = false;
  EXPECT_EQ(cap_result(Json{{"a", 1}}, 100, &truncated), (Json{{"a", 1}}));
  EXPECT_FALSE(truncated);
  Json cut = cap_result(Json{{"a", std::string(200, 'z')}}, 50, &truncated);
  EXPECT_TRUE(truncated);
  EXPECT_TRUE(cut.is_string());
}

TEST_F(BrokerTest, PolicyDenies) {
  ToolBrokerOptions options;
  options.policy = *ToolPolicy::create({{"files.*", "deny"}}, {});
  start(std::move(options));
  Json answer = call("files.read", {{"path", "a"}});
  EXPECT_EQ(answer["ok"], false);
  EXPECT_EQ(answer["denied"], true);
  EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("policy \"files.*\""));
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(BrokerTest, AskWaitsForAnAnswer) {
  start({});
  testing::EventLog log(bus_);
  std::thread person([&] {
    EventPtr asked = log.wait_for("action.approval_request");
    ASSERT_NE(asked, nullptr);
    EXPECT_EQ(asked->data["tool"], "files.write");
    EXPECT_EQ(broker_->pending_approvals().size(), 1u);
    (void)bus_.publish(
        Event::make("perception.approval_response", "person",
                    Json{{"approval_id", asked->data["approval_id"]}, {"approved", true}}));
  });
  Json answer = call("files.write", {{"path", "a"}});
  person.join();
  EXPECT_EQ(answer["ok"], true) << answer.dump();
  EXPECT_EQ(calls_.load(), 1);
  EXPECT_TRUE(broker_->pending_approvals().empty());
  EXPECT_EQ(broker_->answer_approval("nope", true).code(), absl::StatusCode::kNotFound);
}

TEST_F(BrokerTest, AnUnansweredApprovalCountsAsNo) {
  ToolBrokerOptions options;
  options.approval_timeout = 50ms;
  start(std::move(options));
  Json answer = call("files.write", {{"path", "a"}});
  EXPECT_EQ(answer["denied"], true);
  EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("nobody answered within 50 ms"));
  EXPECT_EQ(calls_.load(), 0);
}

TEST_F(BrokerTest, StoppingRefusesWaitingApprovals) {
  start({});
  testing::EventLog log(bus_);
  std::thread stopper([&] {
    ASSERT_NE(log.wait_for("action.approval_request"), nullptr);
    broker_->stop();
  });
  Json answer = call("files.write", {{"path", "a"}});
  stopper.join();
  EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("shutting down"));
}

TEST_F(BrokerTest, ASilentToolTimesOut) {
  ToolBrokerOptions options;
  options.timeout = 50ms;
  start(std::move(options));
  Json answer = call("files.silent", Json::object());
  EXPECT_EQ(answer["ok"], false);
  EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("did not answer within 50 ms"));
  EXPECT_EQ(broker_->stats().timed_out, 1u);
}

TEST_F(BrokerTest, AnswersCallsAndListsOverTheBus) {
  start({});
  Event request =
      Event::make("cognition.tool_call", "reasoning",
                  Json{{"tool", "files__read"}, {"arguments", {{"path", "x"}}}, {"call_id", "k"}});
  auto reply = testing::sync_wait(bus_.executor(), bus_.request(std::move(request), 2s));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ((*reply)->data["ok"], true);
  EXPECT_EQ((*reply)->data["call_id"], "k");

  auto listing = testing::sync_wait(bus_.executor(),
                                    bus_.request(Event::make("cognition.tools", "reasoning"), 2s));
  ASSERT_TRUE(listing.ok());
  const Json& tools = (*listing)->data["tools"];
  ASSERT_EQ(tools.size(), 3u);
  EXPECT_EQ(tools[0]["name"], "files__read");
  EXPECT_EQ(tools[0]["decision"], "allow");
  EXPECT_EQ(tools[2]["name"], "files__write");
  EXPECT_EQ(tools[2]["decision"], "ask");
  EXPECT_EQ((*listing)->data["version"], registry_.version());
}

}  // namespace
}  // namespace lotus::llm
