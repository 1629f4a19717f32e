// The ReAct loop end to end: a real nucleus with the reasoning module, a
// module with real tools, the tool broker and the scripted provider (the only
// stand-in: it replays model turns). Covers parallel tool calls, argument
// validation going back to the model, approvals answered yes and no, a tool
// that times out, cancellation, budgets, missing capabilities, learning,
// traces, and a conversation that resumes after a restart.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/nucleus.h"
#include "llm/scripted_provider.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "runtime/module_factory.h"
#include "testing/event_log.h"
#include "testing/temp_dir.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::atomic<int> erase_calls{0};

// Tools with each kind of behaviour the loop must cope with.
class DeskModule : public Module {
 public:
  Task<void> initialize() override {
    tool("add", &DeskModule::add);
    tool("erase", &DeskModule::erase);
    tool("slow", &DeskModule::slow);
    tool("big", &DeskModule::big);
    co_return;
  }

 private:
  Task<ToolResult> add(const Json& args) {
    co_return Json(args["a"].get<int64_t>() + args["b"].get<int64_t>());
  }
  Task<ToolResult> erase(const Json& args) {
    erase_calls.fetch_add(1);
    co_return Json(cat("erased ", args["path"].get<std::string>()));
  }
  Task<ToolResult> slow(const Json&) {
    co_await context().sleep(1s);
    co_return Json("finally");
  }
  Task<ToolResult> big(const Json&) { co_return Json(std::string(100'000, 'x')); }
};
static RegisterBuiltinModule<DeskModule> registered_desk("desk");

constexpr std::string_view kDeskManifest = R"(name: desk
version: 1.0.0
type: capability
permissions: [file.write]
tools:
  - name: add
    description: Add two integers
    permissions: []
    parameters:
      - {name: a, type: integer, required: true}
      - {name: b, type: integer, required: true}
  - name: erase
    description: Erase a file
    parameters: [{name: path, type: string, required: true}]
  - name: slow
    description: Takes its time
    permissions: []
  - name: big
    description: Returns a lot
    permissions: []
)";

class ReasoningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"reasoning", "desk"}) fs::create_directories(modules() / name);
    fs::copy_file(fs::path(LOTUS_SOURCE_DIR) / "modules/core/reasoning/manifest.yaml",
                  modules() / "reasoning" / "manifest.yaml");
    std::ofstream(modules() / "desk" / "manifest.yaml") << kDeskManifest;
    erase_calls.store(0);
  }

  fs::path modules() const { return dir_.path() / "modules"; }

  // A config whose only model is the scripted one, replaying `turns`.
  Config config(Json turns, Json reasoning = Json::object()) const {
    Config c;
    c.module_dirs = {modules()};
    c.data_dir = dir_.path() / "data";
    c.threads = 2;
    c.shutdown_deadline = 5000ms;
    c.tools.timeout = 300ms;
    if (!turns.is_null()) {
      c.llm = Json{{"providers", {{"script", {{"type", "scripted"}, {"script", turns}}}}},
                   {"default_model", "script:replay"}};
    } else {
      c.llm = Json{{"providers", Json::object()}};
    }
    reasoning["recall_limit"] = reasoning.value("recall_limit", 0);
    c.module_config["reasoning"] = reasoning;
    return c;
  }

  static void boot(Nucleus& nucleus) {
    ASSERT_TRUE(nucleus.boot().ok());
    for (const auto& m : nucleus.modules()) EXPECT_EQ(m.state, "running") << m.name << m.error;
  }

  // Publishes a user input as the CLI does; returns the task's trace id.
  static std::string ask(Nucleus& nucleus, std::string text, std::string conversation = "") {
    Event event = Event::make("perception.user_input", "cli", Json{{"text", std::move(text)}});
    if (!conversation.empty()) event.data["conversation_id"] = conversation;
    event.metadata.trace_id = event.id.to_string();
    std::string trace = event.metadata.trace_id;
    EXPECT_TRUE(nucleus.publish(std::move(event)).ok());
    return trace;
  }

  static EventPtr completion(testing::EventLog& log, const std::string& trace,
                             std::chrono::milliseconds timeout = 10s) {
    return log.wait_for(
        [&](const Event& e) {
          return e.channel == "cognition.task_complete" && e.metadata.trace_id == trace;
        },
        timeout);
  }

  static llm::ScriptedProvider& script(Nucleus& nucleus) {
    return dynamic_cast<llm::ScriptedProvider&>(*nucleus.llm()->find_provider("script"));
  }

  testing::TempDir dir_;
};

Json call(std::string id, std::string name, Json arguments) {
  return Json{
      {"id", std::move(id)}, {"name", std::move(name)}, {"arguments", std::move(arguments)}};
}

TEST_F(ReasoningTest, CallsToolsInParallelAndAnswersWithWhatTheyReturned) {
  Nucleus nucleus(config(Json::array({Json{{"text", "Adding."},
                                           {"tool_calls",
                                            {call("c1", "desk__add", {{"a", 2}, {"b", 3}}),
                                             call("c2", "desk__add", {{"a", 10}, {"b", 20}})}}},
                                      Json{{"text", "The sums are 5 and 30."}}})));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  std::string trace = ask(nucleus, "what are 2+3 and 10+20?");
  EventPtr done = completion(log, trace);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->data["ok"], true) << done->data.dump();
  EXPECT_EQ(done->data["answer"], "The sums are 5 and 30.");
  EXPECT_EQ(done->data["tool_calls"], 2);
  EXPECT_EQ(done->data["iterations"], 2);

  // The model saw the tool list and, on its second turn, both results.
  auto requests = script(nucleus).requests();
  ASSERT_EQ(requests.size(), 2u);
  bool offered = false;
  for (const ToolSpec& t : requests[0].tools) offered |= t.name == "desk__add";
  EXPECT_TRUE(offered);
  std::vector<std::string> results;
  for (const ChatMessage& m : requests[1].messages) {
    if (m.role == ChatRole::kTool) results.push_back(m.text);
  }
  EXPECT_THAT(results, ::testing::UnorderedElementsAre("5", "30"));

  // Every call went over the bus, was logged, and everything carried the trace.
  EXPECT_EQ(log.on("action.tool_result").size(), 2u);
  EXPECT_EQ(log.on("action_log").size(), 2u);
  for (const char* channel : {"cognition.tool_call", "action.tool_result", "action_log",
                              "action.display", "conversation_stream", "tool.desk.add"}) {
    auto events = log.on(channel);
    EXPECT_FALSE(events.empty()) << channel;
    for (const EventPtr& e : events) EXPECT_EQ(e->metadata.trace_id, trace) << channel;
  }
  // What worked is learned as procedural memory.
  EventPtr learned = log.wait_for("memory.store", 2s);
  ASSERT_NE(learned, nullptr);
  EXPECT_EQ(learned->data["type"], "procedural");
  EXPECT_THAT(learned->data["content"].get<std::string>(), HasSubstr("desk.add"));
  // The reply streamed: deltas, then the final message marked as streamed.
  EXPECT_FALSE(log.all([](const Event& e) {
                    return e.channel == "action.display" && e.data.value("kind", "") == "delta";
                  })
                   .empty());
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(ReasoningTest, InvalidArgumentsGoBackToTheModel) {
  Nucleus nucleus(
      config(Json::array({Json{{"tool_calls", {call("c1", "desk__add", {{"a", "two"}, {"b", 3}})}}},
                          Json{{"text", "I passed a string; sorry."}}})));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  std::string trace = ask(nucleus, "add two and three");
  EventPtr done = completion(log, trace);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->data["ok"], true);
  auto requests = script(nucleus).requests();
  ASSERT_EQ(requests.size(), 2u);
  const ChatMessage& result = requests[1].messages.back();
  EXPECT_EQ(result.role, ChatRole::kTool);
  EXPECT_TRUE(result.is_error);
  EXPECT_THAT(result.text, HasSubstr("invalid arguments for desk.add"));
  EXPECT_THAT(result.text, HasSubstr("/a"));
  // Never reached the module.
  EXPECT_TRUE(log.on("tool.desk.add").empty());
  ASSERT_TRUE(nucleus.shutdown().ok());
}

class Approver {
 public:
  Approver(Nucleus& nucleus, bool approve) : nucleus_(nucleus), approve_(approve) {
    Subscriber tap;
    tap.tap = [this](const EventPtr& event) {
      // Answer from another thread, as a person at the CLI would.
      std::string id = event->data["approval_id"];
      std::thread([this, id] {
        std::this_thread::sleep_for(20ms);
        (void)nucleus_.publish(Event::make("perception.approval_response", "cli",
                                           Json{{"approval_id", id}, {"approved", approve_}}));
      }).detach();
    };
    id_ = *nucleus.bus().subscribe("action.approval_request", SubscriptionFilter(), tap);
  }
  ~Approver() { nucleus_.bus().unsubscribe(id_); }

 private:
  Nucleus& nucleus_;
  bool approve_;
  SubscriptionId id_ = 0;
};

TEST_F(ReasoningTest, AHighRiskToolWaitsForAPersonAndADenialGoesBackToTheModel) {
  Nucleus nucleus(config(
      Json::array({Json{{"tool_calls", {call("c1", "desk__erase", {{"path", "notes.txt"}})}}},
                   Json{{"text", "You did not allow it."}}})));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  Approver no(nucleus, false);
  std::string trace = ask(nucleus, "erase notes.txt");
  EventPtr done = completion(log, trace);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->data["ok"], true);
  EventPtr asked = log.wait_for("action.approval_request");
  ASSERT_NE(asked, nullptr);
  EXPECT_EQ(asked->data["tool"], "desk.erase");
  EXPECT_EQ(asked->data["risk"], "high");
  EXPECT_EQ(asked->data["arguments"]["path"], "notes.txt");
  EXPECT_EQ(erase_calls.load(), 0);
  ChatMessage result = script(nucleus).requests()[1].messages.back();
  EXPECT_TRUE(result.is_error);
  EXPECT_THAT(result.text, HasSubstr("not approved"));
  EXPECT_TRUE(log.on("action_log").empty()) << "nothing was executed";
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(ReasoningTest, AnApprovedCallRunsAndIsLogged) {
  Nucleus nucleus(config(
      Json::array({Json{{"tool_calls", {call("c1", "desk__erase", {{"path", "notes.txt"}})}}},
                   Json{{"text", "Done."}}})));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  Approver yes(nucleus, true);
  std::string trace = ask(nucleus, "erase notes.txt");
  ASSERT_NE(completion(log, trace), nullptr);
  EXPECT_EQ(erase_calls.load(), 1);
  auto logged = log.on("action_log");
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_EQ(logged[0]->data["tool"], "desk.erase");
  EXPECT_EQ(logged[0]->data["approved_by"], "person");
  EXPECT_EQ(logged[0]->data["ok"], true);
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(ReasoningTest, AToolThatTimesOutIsReportedToTheModel) {
  Nucleus nucleus(
      config(Json::array({Json{{"tool_calls", {call("c1", "desk__slow", Json::object())}}},
                          Json{{"text", "It was too slow."}}})));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  std::string trace = ask(nucleus, "try the slow one");
  EventPtr done = completion(log, trace);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->data["ok"], true);
  ChatMessage result = script(nucleus).requests()[1].messages.back();
  EXPECT_TRUE(result.is_error);
  EXPECT_THAT(result.text, HasSubstr("did not answer within 300 ms"));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(ReasoningTest, AHugeResultIsCutBeforeTheModelSeesIt) {
  Nucleus nucleus(
      config(Json::array({Json{{"tool_calls", {call("c1", "desk__big", Json::object())}}},
                          Json{{"text", "That was long."}}})));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  ASSERT_NE(completion(log, ask(nucleus, "get the big one")), nullptr);
  ChatMessage result = script(nucleus).requests()[1].messages.back();
  EXPECT_FALSE(result.is_error);
  EXPECT_LT(result.text.size(), 40'000u);
  EXPECT_THAT(result.text, HasSubstr("more bytes left out"));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(ReasoningTest, CancellingStopsTheTaskNotTheSystem) {
  Nucleus nucleus(config(Json::array(
      {Json{{"delay_ms", 10000}, {"text", "too late"}}, Json{{"text", "second answer"}}})));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  std::string trace = ask(nucleus, "think for a long time");
  ASSERT_NE(log.wait_for("cognition.tools", 5s), nullptr);  // the task is under way
  std::this_thread::sleep_for(50ms);
  auto begin = std::chrono::steady_clock::now();
  ASSERT_TRUE(
      nucleus.publish(Event::make("cognition.cancel", "cli", Json{{"task_id", trace}})).ok());
  EventPtr done = completion(log, trace, 5s);
  ASSERT_NE(done, nullptr);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 3s);
  EXPECT_EQ(done->data["ok"], false);
  EXPECT_EQ(done->data["cancelled"], true);
  // The next request in the same conversation is served.
  std::string next = ask(nucleus, "and now?");
  EventPtr second = completion(log, next);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->data["answer"], "second answer");
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(ReasoningTest, TheIterationBudgetEndsALoopThatNeverAnswers) {
  Nucleus nucleus(config(
      Json{{"responses", {Json{{"tool_calls", {call("", "desk__add", {{"a", 1}, {"b", 1}})}}}}},
           {"loop", true}},
      Json{{"max_iterations", 3}}));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  std::string trace = ask(nucleus, "loop forever");
  EventPtr done = completion(log, trace);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->data["ok"], false);
  EXPECT_THAT(done->data["error"].get<std::string>(), HasSubstr("no answer after 3 rounds"));
  EXPECT_EQ(done->data["tool_calls"], 3);
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(ReasoningTest, AMissingCapabilityIsPublished) {
  Nucleus nucleus(config(
      Json::array({Json{{"tool_calls",
                         {call("c1", "report_missing_capability",
                               {{"capability", "send email"}, {"reason", "no mail module"}})}}},
                   Json{{"text", "I cannot send email yet."}}})));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  std::string trace = ask(nucleus, "email Bob");
  ASSERT_NE(completion(log, trace), nullptr);
  EventPtr missing = log.wait_for("cognition.capability_missing", 1s);
  ASSERT_NE(missing, nullptr);
  EXPECT_EQ(missing->data["capability"], "send email");
  EXPECT_EQ(missing->data["request"], "email Bob");
  EXPECT_EQ(missing->metadata.trace_id, trace);
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(ReasoningTest, WithoutAProviderTheTaskFailsWithWhatToConfigure) {
  Nucleus nucleus(config(Json()));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  std::string trace = ask(nucleus, "hello?");
  EventPtr done = completion(log, trace);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->data["ok"], false);
  EXPECT_THAT(done->data["error"].get<std::string>(), HasSubstr("llm"));
  EventPtr shown = log.wait_for([](const Event& e) {
    return e.channel == "action.display" && e.data.value("kind", "") == "error";
  });
  ASSERT_NE(shown, nullptr);
  EXPECT_EQ(nucleus.health()["modules"]["reasoning"]["state"], "running");
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_F(ReasoningTest, AConversationResumesAfterARestart) {
  {
    Nucleus nucleus(config(Json::array({Json{{"text", "Hello Ada."}}})));
    testing::EventLog log(nucleus.bus());
    boot(nucleus);
    ASSERT_NE(completion(log, ask(nucleus, "My name is Ada.", "chat1")), nullptr);
    ASSERT_TRUE(nucleus.shutdown().ok());
  }
  Nucleus nucleus(config(Json::array({Json{{"text", "You are Ada."}}})));
  testing::EventLog log(nucleus.bus());
  boot(nucleus);
  EventPtr done = completion(log, ask(nucleus, "What is my name?", "chat1"));
  ASSERT_NE(done, nullptr);
  auto requests = script(nucleus).requests();
  ASSERT_EQ(requests.size(), 1u);
  std::vector<std::string> texts;
  for (const ChatMessage& m : requests[0].messages) {
    if (m.role != ChatRole::kSystem) texts.push_back(m.text);
  }
  EXPECT_THAT(texts, ::testing::ElementsAre("My name is Ada.", "Hello Ada.", "What is my name?"));
  ASSERT_TRUE(nucleus.shutdown().ok());
}

}  // namespace
}  // namespace lotus
