// The tool registry shared across nodes: two nuclei on one real
// redis-server, a module with tools on node B only. Node A lists B's tools
// (description, schema, risk), calls them through its own broker (schema
// checked and policy decided on A, before the call leaves), answers its own
// tool-list requests, and forgets B's tools when B leaves or dies.
#include "core/node_tools.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bus/redis_bus.h"
#include "core/nucleus.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "mcp/module_content.h"
#include "runtime/module_factory.h"
#include "testing/redis_server.h"
#include "testing/sync_wait.h"
#include "testing/temp_dir.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::atomic<int> ledger_calls{0};
// Runs per module instance (one per nucleus), by its `node` config value.
std::mutex runs_mutex;
std::map<std::string, int> runs_by_node;

class LedgerModule : public Module {
 public:
  Task<void> initialize() override {
    tool("add", &LedgerModule::add);
    tool("wipe", &LedgerModule::wipe);
    on("ping", &LedgerModule::ping);
    on("page", &LedgerModule::page);
    co_return;
  }

 private:
  void count_run() {
    std::lock_guard lock(runs_mutex);
    ++runs_by_node[config().value("node", std::string("?"))];
  }
  Task<ToolResult> add(const Json& args) {
    ledger_calls.fetch_add(1);
    count_run();
    co_return Json(args["a"].get<int64_t>() + args["b"].get<int64_t>());
  }
  Task<void> ping(const Event& event) {
    count_run();
    reply(event, Json{{"node", config().value("node", std::string("?"))}}).IgnoreError();
    co_return;
  }
  // Serves the ledger://pages/{id} MCP resource template.
  Task<void> page(const Event& event) {
    const std::string uri = event.data.value("uri", "");
    const std::string id = event.data["variables"].value("id", "");
    const std::string text = cat("page ", id, " from ", config().value("node", std::string("?")));
    reply(event, Json{{"contents", Json::array({{{"uri", uri}, {"text", text}}})}}).IgnoreError();
    co_return;
  }
  Task<ToolResult> wipe(const Json&) {
    ledger_calls.fetch_add(1);
    co_return Json("wiped");
  }
};
static RegisterBuiltinModule<LedgerModule> registered_ledger("ledger");

constexpr std::string_view kLedgerManifest = R"(name: ledger
version: 1.0.0
type: capability
permissions: [file.write]
subscriptions:
  - {pattern: ledger.ping, handler: ping}
  - {pattern: ledger.page, handler: page}
mcp:
  resources:
    - {uri: "ledger://summary", name: summary, mimeType: text/plain, text: the ledger}
  resource_templates:
    - {uriTemplate: "ledger://pages/{id}", name: page, channel: ledger.page}
  prompts:
    - name: ledger_help
      messages:
        - {role: user, content: {type: text, text: "How do I add to the ledger?"}}
tools:
  - name: add
    description: Add two integers
    permissions: []
    parameters:
      - {name: a, type: integer, required: true}
      - {name: b, type: integer, required: true}
  - name: wipe
    description: Wipe the ledger
)";

// A module with MCP prompts and no tools.
constexpr std::string_view kHandbookManifest = R"(name: handbook
version: 1.0.0
type: capability
mcp:
  prompts:
    - name: first
      messages:
        - {role: user, content: {type: text, text: one}}
)";

class HandbookModule : public Module {
 public:
  Task<void> initialize() override { co_return; }
};
static RegisterBuiltinModule<HandbookModule> registered_handbook("handbook");

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

class NodeToolsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ledger_calls.store(0);
    runs_by_node.clear();
    fs::create_directories(dir_.path() / "b" / "modules" / "ledger");
    fs::create_directories(dir_.path() / "a" / "modules");
    std::ofstream(dir_.path() / "b" / "modules" / "ledger" / "manifest.yaml") << kLedgerManifest;
  }

  // A nucleus on the shared Redis; `name` is its node id and folder.
  std::unique_ptr<Nucleus> node(const std::string& name,
                                std::vector<std::pair<std::string, std::string>> policy = {}) {
    RedisBusOptions options;
    options.url = server_.url();
    options.node_id = name;
    options.threads = 2;
    options.heartbeat = 100ms;
    // Well above the heartbeat: on a loaded machine (the suite runs two
    // tests at a time beside daemons and Node servers) a beat can be late,
    // and a live node taken for gone drops its tools mid-test.
    options.node_timeout = 2000ms;
    auto bus = RedisBus::connect(options);
    EXPECT_TRUE(bus.ok()) << bus.status();
    if (!bus.ok()) return nullptr;
    Config c;
    c.module_dirs = {dir_.path() / name / "modules"};
    c.data_dir = dir_.path() / name / "data";
    c.threads = 2;
    c.shutdown_deadline = 5000ms;
    c.tools.timeout = 3000ms;
    c.tools.policy = std::move(policy);
    c.llm = Json{{"providers", Json::object()}};
    c.module_config["ledger"] = Json{{"node", name}};
    auto nucleus = std::make_unique<Nucleus>(std::move(c), *std::move(bus));
    EXPECT_TRUE(nucleus->boot().ok());
    return nucleus;
  }

  static bool lists(const Nucleus& n, std::string_view tool) {
    return n.tools().find(tool) != nullptr;
  }

  static Json call(Nucleus& n, std::string tool, Json arguments) {
    llm::ToolCallRequest request;
    request.tool = std::move(tool);
    request.arguments = std::move(arguments);
    request.requested_by = "test";
    return testing::sync_wait(n.bus().executor(), n.tool_broker()->call(std::move(request)))
        .to_json();
  }

  testing::RedisServer server_;
  testing::TempDir dir_;
};

TEST_F(NodeToolsTest, AnotherNodesToolsAreListedAndCalledThroughThisNodesPolicy) {
  // B allows everything; A denies ledger.wipe. A starts first, B joins later,
  // so A learns of B's tools from B's announcement.
  auto a = node("a", {{"ledger.wipe", "deny"}});
  ASSERT_TRUE(a);
  auto b = node("b", {{"ledger.*", "allow"}});
  ASSERT_TRUE(b);
  ASSERT_TRUE(eventually([&] { return lists(*a, "ledger.add") && lists(*a, "ledger__wipe"); }));

  auto add = a->tools().find("ledger.add");
  EXPECT_EQ(add->node, "b");
  EXPECT_EQ(add->description, "Add two integers");
  EXPECT_EQ(add->parameters["required"], Json({"a", "b"}));
  EXPECT_EQ(add->risk, llm::ToolRisk::kLow);
  EXPECT_EQ(a->tools().find("ledger.wipe")->risk, llm::ToolRisk::kHigh);  // from file.write
  EXPECT_TRUE(b->tools().find("ledger.add")->node.empty());               // B's own

  // Called from A, run on B.
  Json sum = call(*a, "ledger__add", {{"a", 2}, {"b", 3}});
  EXPECT_EQ(sum["ok"], true) << sum.dump();
  EXPECT_EQ(sum["result"], 5);
  EXPECT_EQ(ledger_calls.load(), 1);
  // Checked against the schema on A: nothing reaches B.
  Json bad = call(*a, "ledger.add", {{"a", "two"}});
  EXPECT_EQ(bad["ok"], false);
  EXPECT_THAT(bad["error"].get<std::string>(), HasSubstr("invalid arguments"));
  // A's policy, not B's, decides.
  Json wipe = call(*a, "ledger.wipe", Json::object());
  EXPECT_EQ(wipe["ok"], false);
  EXPECT_EQ(wipe["denied"], true) << wipe.dump();
  EXPECT_EQ(ledger_calls.load(), 1);
  // On B its own policy allows it.
  EXPECT_EQ(call(*b, "ledger.wipe", Json::object())["ok"], true);
  EXPECT_EQ(ledger_calls.load(), 2);

  // The tool list as the reasoning engine asks for it on A comes from A's
  // broker alone (A's decisions), and a call over the bus from A runs once.
  Event list_request = Event::make("cognition.tools", "test", Json::object());
  auto listing =
      testing::sync_wait(a->bus().executor(), a->bus().request(std::move(list_request), 3s));
  ASSERT_TRUE(listing.ok()) << listing.status();
  std::map<std::string, std::string> decisions;
  for (const Json& t : (*listing)->data["tools"]) {
    decisions[t["qualified"].get<std::string>()] = t["decision"].get<std::string>();
  }
  EXPECT_EQ(decisions["ledger.add"], "allow");
  EXPECT_EQ(decisions["ledger.wipe"], "deny");
  Event call_request =
      Event::make("cognition.tool_call", "test",
                  Json{{"tool", "ledger.add"}, {"arguments", {{"a", 1}, {"b", 1}}}});
  auto called =
      testing::sync_wait(a->bus().executor(), a->bus().request(std::move(call_request), 3s));
  ASSERT_TRUE(called.ok()) << called.status();
  EXPECT_EQ((*called)->data["result"], 2) << (*called)->data.dump();
  std::this_thread::sleep_for(300ms);  // a second broker's run would land by now
  EXPECT_EQ(ledger_calls.load(), 3);
  EXPECT_EQ(b->tool_broker()->stats().calls, 1u);  // only its own call above

  // B leaves: A stops offering its tools.
  ASSERT_TRUE(b->shutdown().ok());
  EXPECT_TRUE(eventually([&] { return !lists(*a, "ledger.add"); }));
  EXPECT_EQ(a->tools().list()->size(), 0u);
}

// What B's ledger module offers MCP clients besides tools (a static
// resource, a template its module serves, a prompt) is served on A as well:
// A's MCP server lists it, and reading the template asks B's module over the
// bus. When B leaves it goes, and A says so each time.
TEST_F(NodeToolsTest, AnotherNodesModulesResourcesAndPromptsAreServedHere) {
  auto a = node("a");
  ASSERT_TRUE(a);
  std::atomic<int> content_changes{0};
  Subscriber tap;
  tap.tap = [&](const EventPtr&) { content_changes.fetch_add(1); };
  ASSERT_TRUE(a->bus().subscribe("system.node_content_changed", {}, tap).ok());
  auto ledger_here = [&] {
    auto manifests = a->mcp_manifests();
    return std::any_of(manifests.begin(), manifests.end(),
                       [](const Manifest& m) { return m.name == "ledger"; });
  };
  EXPECT_FALSE(ledger_here());
  auto b = node("b");
  ASSERT_TRUE(b);
  ASSERT_TRUE(eventually(ledger_here));
  EXPECT_TRUE(eventually([&] { return content_changes.load() == 1; }));

  mcp::ModuleContent content(
      a->bus(), [&] { return a->mcp_manifests(); }, nullptr);
  std::vector<std::string> uris;
  for (const Json& r : content.resources()) uris.push_back(r["uri"]);
  EXPECT_EQ(uris, std::vector<std::string>{"ledger://summary"});
  EXPECT_EQ(content.resource_templates()[0]["uriTemplate"], "ledger://pages/{id}");
  EXPECT_EQ(content.resource_templates()[0].count("channel"), 0u);  // where, not what
  auto summary = testing::sync_wait(a->bus().executor(), content.read_resource("ledger://summary"));
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ((*summary)[0]["text"], "the ledger");
  auto page = testing::sync_wait(a->bus().executor(), content.read_resource("ledger://pages/7"));
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ((*page)[0]["text"], "page 7 from b");
  EXPECT_EQ(content.prompts()[0]["name"], "ledger_help");
  auto prompt =
      testing::sync_wait(a->bus().executor(), content.get_prompt("ledger_help", Json::object()));
  ASSERT_TRUE(prompt.ok()) << prompt.status();
  EXPECT_EQ((*prompt)["messages"][0]["content"]["text"], "How do I add to the ledger?");

  ASSERT_TRUE(b->shutdown().ok());
  EXPECT_TRUE(eventually([&] { return !ledger_here(); }));
  EXPECT_TRUE(eventually([&] { return content_changes.load() == 2; }));
  EXPECT_TRUE(content.resources().empty());
}

// A module without tools reloads with a second prompt: the other nodes hear
// of it now, not at the next refresh (30 s).
TEST_F(NodeToolsTest, AReloadedModulesNewMcpContentReachesTheOtherNodes) {
  const fs::path manifest = dir_.path() / "b" / "modules" / "handbook" / "manifest.yaml";
  fs::create_directories(manifest.parent_path());
  std::ofstream(manifest) << kHandbookManifest;
  auto a = node("a");
  ASSERT_TRUE(a);
  auto b = node("b");
  ASSERT_TRUE(b);
  auto prompts_on_a = [&] {
    for (const Manifest& m : a->mcp_manifests()) {
      if (m.name == "handbook") return m.mcp.prompts.size();
    }
    return size_t{0};
  };
  ASSERT_TRUE(eventually([&] { return prompts_on_a() == 1; }));
  std::ofstream(manifest) << kHandbookManifest
                          << "    - name: second\n      messages:\n"
                             "        - {role: user, content: {type: text, text: two}}\n";
  ASSERT_TRUE(b->reload_module("handbook").ok());
  EXPECT_TRUE(eventually([&] { return prompts_on_a() == 2; }, 5s));
}

// The ledger module runs on nodes a and b; c has none. A tool call from c
// runs once, on a or b in turns; one from a runs on a. The same holds for a
// plain request answered by the module's handler, and for a call published
// without reply_to (carried out by one of the nodes that run the tool).
TEST_F(NodeToolsTest, AToolOnTwoNodesRunsOncePerCall) {
  fs::create_directories(dir_.path() / "a" / "modules" / "ledger");
  std::ofstream(dir_.path() / "a" / "modules" / "ledger" / "manifest.yaml") << kLedgerManifest;
  fs::create_directories(dir_.path() / "c" / "modules");
  auto a = node("a");
  ASSERT_TRUE(a);
  auto b = node("b");
  ASSERT_TRUE(b);
  auto c = node("c");
  ASSERT_TRUE(c);
  auto& bus_c = static_cast<RedisBus&>(c->bus());
  ASSERT_TRUE(eventually([&] {
    return lists(*c, "ledger.add") && bus_c.known_receivers("tool.ledger.add") == 2 &&
           bus_c.known_receivers("ledger.ping") == 2 &&
           a->tools().nodes_offering("ledger.add") == std::vector<std::string>{"b"} &&
           b->tools().nodes_offering("ledger.add") == std::vector<std::string>{"a"};
  }));
  auto runs = [] {
    std::lock_guard lock(runs_mutex);
    return runs_by_node;
  };
  using Runs = std::map<std::string, int>;

  for (int i = 0; i < 10; ++i) {
    Json sum = call(*c, "ledger.add", {{"a", i}, {"b", 1}});
    ASSERT_EQ(sum["ok"], true) << sum.dump();
    EXPECT_EQ(sum["result"], i + 1);
  }
  std::this_thread::sleep_for(300ms);  // a second run of any call would land by now
  EXPECT_EQ(ledger_calls.load(), 10);
  EXPECT_EQ(runs(), (Runs{{"a", 5}, {"b", 5}}));

  for (int i = 0; i < 4; ++i) EXPECT_EQ(call(*a, "ledger.add", {{"a", 1}, {"b", 1}})["ok"], true);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(runs(), (Runs{{"a", 9}, {"b", 5}})) << "a runs its own module";

  // A plain request on the module's subscription: one handler run, one reply.
  std::map<std::string, int> answered;
  for (int i = 0; i < 6; ++i) {
    auto reply = testing::sync_wait(
        c->bus().executor(),
        c->bus().request(Event::make("ledger.ping", "test", Json::object()), 3s));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ++answered[(*reply)->data["node"].get<std::string>()];
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(answered, (Runs{{"a", 3}, {"b", 3}}));
  EXPECT_EQ(runs(), (Runs{{"a", 12}, {"b", 8}}));

  // A call that wants no answer: each broker that runs the tool sees it, and
  // one of them carries it out.
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(
        c->bus()
            .publish(Event::make("cognition.tool_call", "test",
                                 Json{{"tool", "ledger.add"}, {"arguments", {{"a", 1}, {"b", 2}}}}))
            .ok());
  }
  ASSERT_TRUE(eventually([&] { return ledger_calls.load() == 22; }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(ledger_calls.load(), 22);
}

TEST_F(NodeToolsTest, ANodeThatJoinsLaterLearnsTheTools) {
  auto b = node("b");
  ASSERT_TRUE(b);
  auto a = node("a");  // joins after B announced: asks for the tools
  ASSERT_TRUE(a);
  ASSERT_TRUE(eventually([&] { return lists(*a, "ledger.add"); }));
  EXPECT_EQ(a->tools().find("ledger.add")->node, "b");

  ASSERT_TRUE(b->shutdown().ok());
  EXPECT_TRUE(eventually([&] { return !lists(*a, "ledger.add"); }));
}

TEST_F(NodeToolsTest, ASilentNodesToolsGoWhenItIsDeclaredGone) {
  auto a = node("a");
  ASSERT_TRUE(a);
  // A node that heartbeats once, announces a tool, then dies without a word
  // (written straight to Redis, as a node killed with -9 leaves things).
  Json beat = {{"node", "ghost"},
               {"op", "heartbeat"},
               {"patterns", {"tool.spooky.*"}},
               {"taps", Json::array()}};
  server_.command({"PUBLISH", "lotus:ctl:nodes", beat.dump()});
  Event announcement = Event::make("system.tools", "nucleus",
                                   Json{{"node", "ghost"},
                                        {"ask", false},
                                        {"tools",
                                         {{{"module", "spooky"},
                                           {"tool", "boo"},
                                           {"description", "Says boo"},
                                           {"parameters", {{"type", "object"}}},
                                           {"permissions", {"network.http"}}},
                                          {{"module", "bad name"}, {"tool", "x"}}}}});
  announcement.id = EventId::generate();
  announcement.timestamp = now_seconds();
  server_.command({"PUBLISH", "lotus:ev:system.tools", to_json(announcement).dump()});
  ASSERT_TRUE(eventually([&] { return lists(*a, "spooky.boo"); }));
  EXPECT_EQ(a->tools().list()->size(), 1u);  // the malformed entry is skipped
  EXPECT_EQ(a->tools().find("spooky__boo")->risk, llm::ToolRisk::kMedium);
  // Silent for longer than node_timeout: declared gone, its tools with it.
  EXPECT_TRUE(eventually([&] { return !lists(*a, "spooky.boo"); }, 10s));
}

}  // namespace
}  // namespace lotus
