#include "llm/tool_broker.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

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
  broker_->add_approver();  // an interface shows it; nobody answers
  Json answer = call("files.write", {{"path", "a"}});
  EXPECT_EQ(answer["denied"], true);
  EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("nobody answered within 50 ms"));
  EXPECT_EQ(calls_.load(), 0);
}

// Nothing listens for approvals and no interface shows them: the call is
// refused now, saying how to allow it, not after approval_timeout.
TEST_F(BrokerTest, ACallNobodyCanApproveIsRefusedAtOnce) {
  start({});  // approval_timeout: the default 5 minutes
  auto began = std::chrono::steady_clock::now();
  Json answer = call("files.write", {{"path", "a"}});
  EXPECT_LT(std::chrono::steady_clock::now() - began, 30s);
  EXPECT_EQ(answer["denied"], true);
  EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("nobody is there to approve it"));
  EXPECT_THAT(answer["error"].get<std::string>(), HasSubstr("--allow"));
  EXPECT_TRUE(broker_->pending_approvals().empty());
  EXPECT_EQ(calls_.load(), 0);
  // Once an interface that shows approvals is up, the next call waits for it.
  broker_->add_approver();
  std::thread person([&] {
    for (int i = 0; i < 2000 && broker_->pending_approvals().empty(); ++i) {
      std::this_thread::sleep_for(5ms);
    }
    Json pending = broker_->pending_approvals();
    ASSERT_EQ(pending.size(), 1u);
    EXPECT_TRUE(broker_->answer_approval(pending[0]["approval_id"].get<std::string>(), true).ok());
  });
  Json approved = call("files.write", {{"path", "b"}});
  person.join();
  EXPECT_EQ(approved["ok"], true) << approved.dump();
  broker_->remove_approver();
  EXPECT_EQ(call("files.write", {{"path", "c"}})["denied"], true);
  EXPECT_EQ(calls_.load(), 1);
}

// A session's approver (an MCP client that can ask its person) is asked
// for that session's calls only; the answer comes back as any other.
TEST_F(BrokerTest, ASessionsApproverIsAskedForItsOwnCalls) {
  start({});
  std::vector<Json> asked;
  std::mutex asked_mutex;
  broker_->set_session_approver("mcp.session.s1", [&](const Json& shown) {
    {
      std::lock_guard lock(asked_mutex);
      asked.push_back(shown);
    }
    const bool yes = shown["arguments"]["path"] == "yes";
    EXPECT_TRUE(broker_
                    ->answer_approval(shown["approval_id"].get<std::string>(), yes,
                                      yes ? "" : "declined on the MCP client")
                    .ok());
  });
  auto call_in = [&](std::string session, std::string path) {
    ToolCallRequest request{"files.write", {{"path", path}}, "c1", "trace-1", "tester", session};
    return testing::sync_wait(bus_.executor(), broker_->call(std::move(request))).to_json();
  };
  EXPECT_EQ(call_in("mcp.session.s1", "yes")["ok"], true);
  Json no = call_in("mcp.session.s1", "no");
  EXPECT_EQ(no["denied"], true);
  EXPECT_THAT(no["error"].get<std::string>(), HasSubstr("declined on the MCP client"));
  // Another session's call is not this approver's; nobody else can answer.
  EXPECT_THAT(call_in("mcp.session.s2", "yes")["error"].get<std::string>(),
              HasSubstr("nobody is there to approve it"));
  {
    std::lock_guard lock(asked_mutex);
    ASSERT_EQ(asked.size(), 2u);
    EXPECT_EQ(asked[0]["tool"], "files.write");
    EXPECT_EQ(asked[0]["risk"], "high");
  }
  broker_->clear_session_approver("mcp.session.s1");
  EXPECT_THAT(call_in("mcp.session.s1", "yes")["error"].get<std::string>(),
              HasSubstr("nobody is there to approve it"));
  EXPECT_EQ(calls_.load(), 1);
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
