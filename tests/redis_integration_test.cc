// Several lotus processes on one redis-server the test starts: events cross
// processes, a tool on one node is called from another (listed by the other
// node's API and MCP server, decided by its policy), two instances of a
// module split a stream's work, a node killed with -9 under load loses
// nothing (its pending entries are reclaimed by the survivors), and Redis
// killed with -9 and restarted on its append-only file loses no
// acknowledged entry while the processes run on.
#include <signal.h>

#include <map>
#include <mutex>
#include <regex>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/api_client.h"
#include "bus/redis_bus.h"
#include "lotus/strings.h"
#include "support/mcp_process.h"
#include "support/test_env.h"
#include "testing/redis_server.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// What the counter modules report on test.counted: how often each event
// (by its "n") was handled. Declared before the bus it listens on, since
// the bus's tap may fire until the bus stops.
class CountedReports {
 public:
  bool listen(Bus& bus) {
    Subscriber tap;
    tap.tap = [this](const EventPtr& e) {
      std::lock_guard lock(mutex_);
      ++counted_[e->data.value("n", -1)];
    };
    return bus.subscribe("test.counted", {}, std::move(tap)).ok();
  }
  size_t handled() {
    std::lock_guard lock(mutex_);
    return counted_.size();
  }
  int handled_twice() {
    std::lock_guard lock(mutex_);
    int twice = 0;
    for (const auto& [n, reports] : counted_) twice += reports - 1;
    return twice;
  }

 private:
  std::mutex mutex_;
  std::map<int, int> counted_;  // n -> reports
};

class RedisNodesTest : public ::testing::Test {
 protected:
  // A lotus process on the Redis bus: `lotus events PATTERN` boots the
  // modules in its folder and prints what matches.
  std::unique_ptr<testing::Child> start_node(const std::string& name, bool with_counter,
                                             const std::string& pattern) {
    const auto home = dir_.path() / name;
    std::filesystem::create_directories(home / "modules");
    if (with_counter) {
      testing::copy_folder(std::filesystem::path(LOTUS_TEST_MODULES_DIR) / "counter",
                           home / "modules" / "counter");
    }
    testing::write_file(home / "config.yaml", config_);
    std::map<std::string, std::string> env = {{"HOME", home.string()},
                                              {"XDG_CONFIG_HOME", (home / "cfg").string()},
                                              {"LOTUS_DATA_DIR", (home / "data").string()},
                                              {"LOTUS_MODULE_PATH", (home / "modules").string()},
                                              {"LOTUS_BUS", server_.url()}};
    return std::make_unique<testing::Child>(
        std::vector<std::string>{LOTUS_BINARY, "--config", (home / "config.yaml").string(),
                                 "events", pattern, "--json"},
        env, home / "out.txt");
  }

  // `lotus serve` as a node without modules of its own: the API of a node
  // that publishes and lists/calls other nodes' tools. `tools` goes into its
  // config (e.g. a policy).
  struct Daemon {
    std::unique_ptr<testing::Child> child;
    std::unique_ptr<api::ApiClient> client;
  };
  Daemon start_daemon(const std::string& name, const std::string& tools = {}) {
    const auto home = dir_.path() / name;
    std::filesystem::create_directories(home / "modules");
    testing::write_file(home / "config.yaml", config_ + tools);
    std::map<std::string, std::string> env = {{"HOME", home.string()},
                                              {"XDG_CONFIG_HOME", (home / "cfg").string()},
                                              {"XDG_DATA_HOME", (home / "xdg").string()},
                                              {"LOTUS_DATA_DIR", (home / "data").string()},
                                              {"LOTUS_MODULE_PATH", (home / "modules").string()},
                                              {"LOTUS_BUS", server_.url()}};
    Daemon daemon;
    daemon.child = std::make_unique<testing::Child>(
        std::vector<std::string>{LOTUS_BINARY, "--config", (home / "config.yaml").string(), "serve",
                                 "--port", "0"},
        env, home / "out.txt");
    if (!daemon.child->wait_for_output("Ctrl-C stops", 30s)) {
      ADD_FAILURE() << daemon.child->output();
      return daemon;
    }
    std::smatch match;
    const std::string output = daemon.child->output();
    if (!std::regex_search(output, match,
                           std::regex("serving on http://127\\.0\\.0\\.1:([0-9]+)"))) {
      ADD_FAILURE() << output;
      return daemon;
    }
    daemon.client =
        std::make_unique<api::ApiClient>("127.0.0.1", static_cast<uint16_t>(std::stoi(match[1])));
    std::string token;
    for (const auto& file : {home / "api-token", home / "cfg" / "lotus" / "api-token"}) {
      if (std::filesystem::exists(file)) token = testing::read_file(file).substr(0, 64);
    }
    EXPECT_EQ(token.size(), 64u) << output;
    daemon.client->set_token(token);
    return daemon;
  }
  // The qualified names GET /api/tools lists, with the node each runs on.
  static std::map<std::string, std::string> listed_tools(const api::ApiClient& client) {
    std::map<std::string, std::string> out;
    auto reply = client.get("/api/tools");
    Json body = reply.json();
    if (reply.status != 200 || !body.is_object()) return out;
    for (const Json& tool : body["tools"]) {
      out[tool.value("qualified", "")] = tool.value("node", "");
    }
    return out;
  }

  // Every one of `events` on the test.count stream handled, and none left
  // pending in the counter group.
  void expect_stream_drained(CountedReports& reports, size_t events, const std::string& output) {
    ASSERT_TRUE(eventually([&] { return reports.handled() == events; }, 60s))
        << reports.handled() << " of " << events << " handled\n"
        << output;
    ASSERT_TRUE(eventually(
        [&] {
          auto p = server_.command({"XPENDING", "lotus:stream:test.count", "counter"});
          return !p.elements.empty() && p.elements[0].integer == 0;
        },
        20s));
  }

  // This test process as a node of its own, to publish and observe.
  std::unique_ptr<RedisBus> tester(RedisBusOptions options = {}) {
    options.url = server_.url();
    options.node_id = "tester";
    auto bus = RedisBus::connect(options);
    EXPECT_TRUE(bus.ok()) << bus.status();
    return bus.ok() ? std::move(*bus) : nullptr;
  }

  testing::RedisServer server_;
  testing::TempDir dir_;
  std::string config_ = "redis: {heartbeat_ms: 200, node_timeout_ms: 1500}\n";
};

TEST_F(RedisNodesTest, EventsCrossProcessesAndToolsAreCallableFromAnotherNode) {
  auto worker = start_node("worker", true, "system.**");
  auto watcher = start_node("watcher", false, "test.counted");
  auto bus = tester();
  ASSERT_TRUE(bus);
  ASSERT_TRUE(eventually([&] { return bus->known_receivers("test.count") >= 1; }, 20s))
      << worker->output();
  ASSERT_TRUE(eventually([&] { return bus->known_receivers("test.counted") >= 1; }, 20s))
      << watcher->output();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(bus->publish(Event::make("test.count", "tester", Json{{"n", i}})).ok());
  }
  // The counter on the worker handled them; the watcher process printed its reports.
  ASSERT_TRUE(watcher->wait_for_output("\"n\":2", 10s)) << watcher->output();
  EXPECT_THAT(watcher->output(), HasSubstr("\"channel\":\"test.counted\""));
  auto reply = testing::sync_wait(bus->executor(),
                                  bus->request(Event::make("tool.counter.get_count", "tester",
                                                           Json{{"arguments", Json::object()}}),
                                               5s));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ((*reply)->data["ok"], true) << (*reply)->data.dump();
  EXPECT_EQ((*reply)->data["result"]["handled"], 3);
  // The watcher leaves; the worker, subscribed to system.**, sees it go.
  watcher->signal(SIGTERM);
  EXPECT_EQ(watcher->wait(20s).exit_code, 0);
  EXPECT_TRUE(worker->wait_for_output("system.node_left", 10s)) << worker->output();
  EXPECT_THAT(worker->output(), HasSubstr("\"reason\":\"shutdown\""));
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(20s).exit_code, 0);
}

// The counter module runs on the worker process only. The `lotus serve`
// node lists its tool (GET /api/tools, with the node it runs on) and calls it
// through its own broker; a `lotus mcp` node whose policy denies it lists it
// and refuses the call before it leaves. When the worker is killed with -9,
// its tool leaves the other nodes' lists.
TEST_F(RedisNodesTest, ToolsOfAnotherProcessAreListedCalledAndForgotten) {
  auto worker = start_node("worker", true, "system.tools");
  auto daemon = start_daemon("api");
  ASSERT_TRUE(daemon.client);
  ASSERT_TRUE(
      eventually([&] { return listed_tools(*daemon.client).count("counter.get_count"); }, 20s))
      << worker->output() << daemon.child->output();
  const std::string worker_node = listed_tools(*daemon.client)["counter.get_count"];
  EXPECT_FALSE(worker_node.empty()) << "a tool of another node says which";
  Json listing = daemon.client->get("/api/tools").json();
  for (const Json& tool : listing["tools"]) {
    if (tool["qualified"] != "counter.get_count") continue;
    EXPECT_EQ(tool["name"], "counter__get_count");
    EXPECT_EQ(tool["description"], "How many events this module has handled");
    EXPECT_EQ(tool["parameters"]["type"], "object");
    EXPECT_EQ(tool["decision"], "allow");
  }
  // Called on the API node, run on the worker.
  auto called =
      daemon.client->post("/api/tools/counter.get_count/call", Json{{"arguments", Json::object()}});
  ASSERT_EQ(called.status, 200) << called.body;
  EXPECT_EQ(called.json()["ok"], true) << called.body;
  EXPECT_EQ(called.json()["result"]["handled"], 0) << called.body;
  // (That a schema violation never leaves the calling node is checked in
  // src/core/node_tools_test.cc: get_count takes any object.)

  // `lotus mcp` on a third node, whose policy denies the counter's tools.
  const auto home = dir_.path() / "mcp";
  std::filesystem::create_directories(home / "modules");
  testing::write_file(home / "config.yaml", config_ + "tools:\n  policy: {\"counter.*\": deny}\n");
  testing::McpProcess mcp({LOTUS_BINARY, "--config", (home / "config.yaml").string(), "mcp"},
                          {{"HOME", home.string()},
                           {"XDG_CONFIG_HOME", (home / "cfg").string()},
                           {"XDG_DATA_HOME", (home / "xdg").string()},
                           {"LOTUS_DATA_DIR", (home / "data").string()},
                           {"LOTUS_MODULE_PATH", (home / "modules").string()},
                           {"LOTUS_BUS", server_.url()}},
                          home / "stderr.txt");
  Json init = mcp.request(0, "initialize",
                          {{"protocolVersion", "2025-06-18"},
                           {"capabilities", Json::object()},
                           {"clientInfo", {{"name", "test"}, {"version", "1"}}}});
  ASSERT_TRUE(init.contains("result")) << init.dump() << testing::read_file(home / "stderr.txt");
  mcp.send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  bool listed = eventually(
      [&] {
        Json tools = mcp.request(1, "tools/list");
        for (const Json& tool : tools["result"]["tools"]) {
          if (tool["name"] == "counter__get_count") return true;
        }
        return false;
      },
      20s);
  EXPECT_TRUE(listed) << testing::read_file(home / "stderr.txt");
  Json denied =
      mcp.request(2, "tools/call", {{"name", "counter__get_count"}, {"arguments", Json::object()}});
  EXPECT_EQ(denied["result"]["isError"], true) << denied.dump();
  EXPECT_THAT(denied.dump(), HasSubstr("not allowed"));
  mcp.close_stdin();
  EXPECT_EQ(mcp.wait(20s), 0);

  // The worker dies: once it is declared gone its tool is no longer offered.
  worker->signal(SIGKILL);
  EXPECT_TRUE(
      eventually([&] { return !listed_tools(*daemon.client).count("counter.get_count"); }, 20s))
      << daemon.child->output();
  daemon.child->signal(SIGTERM);
  EXPECT_EQ(daemon.child->wait(20s).exit_code, 0);
}

// The counter module runs in two processes. Requests to its tool from a
// third node run once each (one handler run, one reply), taking turns
// between the two; every run is reported on test.ticked with its process id.
TEST_F(RedisNodesTest, AToolServedByTwoProcessesRunsOncePerCall) {
  auto one = start_node("one", true, "system.tools");
  auto two = start_node("two", true, "system.tools");
  std::mutex mutex;
  std::map<int64_t, int> ticked;  // pid -> test.ticked events
  Subscriber tap;
  tap.tap = [&](const EventPtr& event) {
    std::lock_guard lock(mutex);
    ++ticked[event->data.value("pid", int64_t{0})];
  };
  auto bus = tester();
  ASSERT_TRUE(bus);
  ASSERT_TRUE(bus->subscribe("test.ticked", {}, tap).ok());
  ASSERT_TRUE(eventually([&] { return bus->known_receivers("tool.counter.tick") >= 2; }, 20s))
      << one->output() << two->output();
  constexpr int kCalls = 20;
  std::map<int64_t, int> replied;  // pid -> replies
  for (int i = 0; i < kCalls; ++i) {
    auto reply = testing::sync_wait(
        bus->executor(),
        bus->request(Event::make("tool.counter.tick", "tester", Json{{"arguments", {{"n", i}}}}),
                     5s));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ((*reply)->data["ok"], true) << (*reply)->data.dump();
    ++replied[(*reply)->data["result"]["pid"].get<int64_t>()];
  }
  // Both processes took calls, in turns.
  ASSERT_EQ(replied.size(), 2u);
  for (const auto& [pid, count] : replied) EXPECT_EQ(count, kCalls / 2) << "pid " << pid;
  // And ran each call once: the handler runs reported match the replies.
  ASSERT_TRUE(eventually(
      [&] {
        std::lock_guard lock(mutex);
        int total = 0;
        for (const auto& [pid, count] : ticked) total += count;
        return total >= kCalls;
      },
      10s));
  std::this_thread::sleep_for(500ms);  // a second run of any call would be reported by now
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(ticked, replied);
  }
  EXPECT_EQ(bus->redis_stats().routed_elsewhere, 0u);  // the tester runs no module
  bus->stop();
  for (auto* node : {one.get(), two.get()}) {
    node->signal(SIGTERM);
    EXPECT_EQ(node->wait(20s).exit_code, 0) << node->output();
  }
}

TEST_F(RedisNodesTest, UnreachableRedisAtStartNamesTheUrl) {
  const std::string url = server_.url(4);
  server_.kill_now();
  testing::Child child({LOTUS_BINARY, "--bus", url, "modules"},
                       {{"HOME", dir_.path().string()},
                        {"LOTUS_DATA_DIR", (dir_.path() / "data").string()},
                        {"LOTUS_MODULE_PATH", (dir_.path() / "none").string()}},
                       dir_.path() / "out.txt");
  auto result = child.wait(20s);
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("cannot reach Redis at " + url));
}

// Two instances of the counter module, in two processes, consume the
// test.count stream as one group. 10,000 events flow; one process is killed
// with -9 midway. Every event is handled and acknowledged; redeliveries
// (at least once) are counted and bounded by what was in flight.
TEST_F(RedisNodesTest, ConsumerGroupSplitSurvivesAKill9) {
  config_ =
      "redis: {heartbeat_ms: 200, node_timeout_ms: 1500, claim_idle_ms: 1000, "
      "streams: [test.count]}\n";
  auto first = start_node("first", true, "system.node_left");
  auto second = start_node("second", true, "system.node_left");
  CountedReports reports;
  RedisBusOptions options;
  options.stream_channels.push_back("test.count");
  auto bus = tester(options);
  ASSERT_TRUE(bus);
  ASSERT_TRUE(reports.listen(*bus));
  ASSERT_TRUE(eventually([&] { return bus->known_receivers("test.count") >= 2; }, 20s))
      << first->output() << second->output();
  constexpr int kEvents = 10000;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(bus->publish(Event::make("test.count", "tester", Json{{"n", i}})).ok());
    if (i == kEvents / 4) {
      ASSERT_TRUE(eventually([&] { return reports.handled() > 500; }, 20s));
      first->signal(SIGKILL);
    }
  }
  expect_stream_drained(reports, kEvents, second->output());
  const int duplicates = reports.handled_twice();
  std::cout << "[ stats    ] " << kEvents << " events, " << duplicates
            << " handled twice after the kill\n";
  EXPECT_LE(duplicates, 512) << "more redeliveries than one read window per stream";
  // The survivor noticed the dead node.
  EXPECT_TRUE(second->wait_for_output("system.node_left", 10s)) << second->output();
  EXPECT_THAT(second->output(), HasSubstr("timeout"));
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait(20s).exit_code, 0);

  // lotus streams shows the stream, its group and that nothing is pending.
  testing::Child streams(
      {LOTUS_BINARY, "--bus", server_.url(), "streams", "--json"},
      {{"HOME", dir_.path().string()}, {"LOTUS_DATA_DIR", (dir_.path() / "cli").string()}},
      dir_.path() / "streams.txt");
  auto listed = streams.wait(20s);
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  Json info = Json::parse(listed.output);
  bool found = false;
  for (const auto& stream : info["streams"]) {
    if (stream["channel"] != "test.count") continue;
    found = true;
    EXPECT_EQ(stream["length"], kEvents);
    ASSERT_EQ(stream["groups"].size(), 1u);
    EXPECT_EQ(stream["groups"][0]["name"], "counter");
    EXPECT_EQ(stream["groups"][0]["pending"], 0);
    EXPECT_EQ(stream["groups"][0]["consumers"].size(), 2u);
  }
  EXPECT_TRUE(found) << listed.output;
  // The same as a table, every column apart from the next.
  testing::Child table(
      {LOTUS_BINARY, "--bus", server_.url(), "streams"},
      {{"HOME", dir_.path().string()}, {"LOTUS_DATA_DIR", (dir_.path() / "cli").string()}},
      dir_.path() / "streams-table.txt");
  auto shown = table.wait(20s);
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_THAT(shown.output,
              ::testing::ContainsRegex(cat("test\\.count +", kEvents, " +counter +0 +")))
      << shown.output;
}

// Three lotus processes on one fresh redis-server: `lotus serve` (A) takes
// the events over HTTP and publishes them; two processes (B, C) run the
// counter module, consuming the test.count stream as one group. C is killed
// with -9 under load: every event is handled and acknowledged by the
// survivor, redeliveries are counted and bounded, and B sees C leave.
TEST_F(RedisNodesTest, ThreeProcessesAndAKill9UnderStreamLoad) {
  config_ =
      "redis: {heartbeat_ms: 200, node_timeout_ms: 1500, claim_idle_ms: 1000, "
      "streams: [test.count]}\n";
  auto a = start_daemon("a");
  ASSERT_TRUE(a.client);
  auto b = start_node("b", true, "system.node_left");
  auto c = start_node("c", true, "system.node_left");
  CountedReports reports;
  auto bus = tester();
  ASSERT_TRUE(bus);
  ASSERT_TRUE(reports.listen(*bus));
  ASSERT_TRUE(eventually([&] { return bus->known_receivers("test.count") >= 2; }, 20s))
      << b->output() << c->output();
  constexpr int kEvents = 4000;
  for (int i = 0; i < kEvents; ++i) {
    auto sent =
        a.client->post("/api/events", Json{{"channel", "test.count"}, {"data", {{"n", i}}}});
    ASSERT_LT(sent.status, 300) << sent.status << " " << sent.body;
    if (i == kEvents / 4) {
      ASSERT_TRUE(eventually([&] { return reports.handled() > 300; }, 20s));
      c->signal(SIGKILL);
    }
  }
  expect_stream_drained(reports, kEvents, b->output());
  const int duplicates = reports.handled_twice();
  std::cout << "[ stats    ] 3 processes, " << kEvents << " events published on A, " << duplicates
            << " handled twice after the kill -9 of C\n";
  EXPECT_LE(duplicates, 512) << "more redeliveries than one read window per stream";
  EXPECT_EQ(server_.command({"XLEN", "lotus:stream:test.count"}).integer, kEvents);
  EXPECT_TRUE(b->wait_for_output("system.node_left", 10s)) << b->output();
  EXPECT_THAT(b->output(), HasSubstr("timeout"));
  for (auto* child : {b.get(), a.child.get()}) {
    child->signal(SIGTERM);
    EXPECT_EQ(child->wait(20s).exit_code, 0);
  }
}

// Redis killed with -9 and restarted on its append-only file (appendfsync
// always) while three lotus processes run and events flow through A: the
// processes reconnect, what A took meanwhile is buffered and flushed, and no
// entry Redis acknowledged is lost: every one in the stream was handled
// (its done marker is set) and acknowledged.
TEST_F(RedisNodesTest, RedisRestartWithAofWhileProcessesRunLosesNothingAcknowledged) {
  server_.kill_now();
  testing::RedisServer aof(testing::RedisServer::Options{.appendonly = true});
  config_ =
      "redis: {heartbeat_ms: 200, node_timeout_ms: 5000, claim_idle_ms: 1000, "
      "streams: [test.count]}\n";
  // The helpers use server_'s URL: point it at the AOF server via LOTUS_BUS.
  const std::string url = aof.url();
  auto env_of = [&](const std::filesystem::path& home) {
    return std::map<std::string, std::string>{{"HOME", home.string()},
                                              {"XDG_CONFIG_HOME", (home / "cfg").string()},
                                              {"XDG_DATA_HOME", (home / "xdg").string()},
                                              {"LOTUS_DATA_DIR", (home / "data").string()},
                                              {"LOTUS_MODULE_PATH", (home / "modules").string()},
                                              {"LOTUS_BUS", url}};
  };
  std::vector<std::unique_ptr<testing::Child>> nodes;
  for (const char* name : {"b", "c"}) {
    const auto home = dir_.path() / name;
    testing::copy_folder(std::filesystem::path(LOTUS_TEST_MODULES_DIR) / "counter",
                         home / "modules" / "counter");
    testing::write_file(home / "config.yaml", config_);
    nodes.push_back(std::make_unique<testing::Child>(
        std::vector<std::string>{LOTUS_BINARY, "--config", (home / "config.yaml").string(),
                                 "events", "system.**", "--json"},
        env_of(home), home / "out.txt"));
  }
  const auto home = dir_.path() / "a";
  std::filesystem::create_directories(home / "modules");
  testing::write_file(home / "config.yaml", config_);
  testing::Child a(
      {LOTUS_BINARY, "--config", (home / "config.yaml").string(), "serve", "--port", "0"},
      env_of(home), home / "out.txt");
  ASSERT_TRUE(a.wait_for_output("Ctrl-C stops", 30s)) << a.output();
  std::smatch match;
  const std::string output = a.output();
  ASSERT_TRUE(
      std::regex_search(output, match, std::regex("serving on http://127\\.0\\.0\\.1:([0-9]+)")));
  api::ApiClient client("127.0.0.1", static_cast<uint16_t>(std::stoi(match[1])));
  client.set_token(testing::read_file(home / "api-token").substr(0, 64));
  auto stream_stats = [&] {
    Json health = client.get("/health").json();
    return health.is_object() ? health["bus"]["backend"]["streams"] : Json();
  };
  {
    // Both counters subscribed (a consumer shows in Redis only once it read).
    RedisBusOptions options;
    options.url = url;
    options.node_id = "tester";
    auto bus = RedisBus::connect(options);
    ASSERT_TRUE(bus.ok()) << bus.status();
    ASSERT_TRUE(eventually([&] { return (*bus)->known_receivers("test.count") >= 2; }, 20s))
        << nodes[0]->output() << nodes[1]->output();
    (*bus)->stop();
  }

  constexpr int kEvents = 3000;
  int accepted = 0;
  for (int i = 0; i < kEvents; ++i) {
    if (i == kEvents / 3) aof.kill_now();  // mid-stream, nothing waits for it
    if (i == 2 * kEvents / 3) aof.start();
    auto sent = client.post("/api/events", Json{{"channel", "test.count"}, {"data", {{"n", i}}}});
    if (sent.status < 300) ++accepted;
  }
  EXPECT_EQ(accepted, kEvents) << "A takes events while Redis is down (buffered)";
  // Every XADD A made was acknowledged or failed (in flight when Redis died).
  ASSERT_TRUE(eventually(
      [&] {
        Json s = stream_stats();
        return s.is_object() && s.value("added", 0) + s.value("add_failed", 0) == kEvents;
      },
      60s))
      << stream_stats().dump() << a.output();
  const Json stats = stream_stats();
  const long long added = stats.value("added", 0);
  // No acknowledged entry is missing from the stream, and every entry was
  // handled and acknowledged.
  EXPECT_GE(aof.command({"XLEN", "lotus:stream:test.count"}).integer, added);
  auto unhandled = [&] {
    auto entries = aof.command({"XRANGE", "lotus:stream:test.count", "-", "+"});
    int missing = 0;
    for (const auto& entry : entries.elements) {
      Json event = Json::parse(entry.elements[1].elements[1].text, nullptr, false);
      auto done = aof.command({"EXISTS", cat("lotus:done:counter:", event.value("id", ""))});
      if (done.integer != 1) ++missing;
    }
    return missing;
  };
  EXPECT_TRUE(eventually(
      [&] {
        auto p = aof.command({"XPENDING", "lotus:stream:test.count", "counter"});
        return !p.elements.empty() && p.elements[0].integer == 0 && unhandled() == 0;
      },
      60s))
      << unhandled() << " entries not handled";
  const long long entries = aof.command({"XLEN", "lotus:stream:test.count"}).integer;
  std::cout << "[ stats    ] " << kEvents << " events taken by A, " << added
            << " XADDs acknowledged, " << stats.value("add_failed", 0)
            << " in flight when Redis died, " << entries << " entries, all handled\n";
  EXPECT_GE(added, kEvents / 2) << "most of what was buffered got through";
  for (auto& node : nodes) {
    node->signal(SIGTERM);
    EXPECT_EQ(node->wait(20s).exit_code, 0) << node->output();
  }
  a.signal(SIGTERM);
  EXPECT_EQ(a.wait(20s).exit_code, 0) << a.output();
}

}  // namespace
}  // namespace lotus
