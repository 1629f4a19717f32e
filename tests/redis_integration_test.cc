// Several lotus processes on one redis-server the test starts: events cross
// processes, a tool on one node is called from another, two instances of a
// module split a stream's work, and a node killed with -9 under load loses
// nothing (its pending entries are reclaimed by the survivor).
#include <signal.h>

#include <map>
#include <mutex>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bus/redis_bus.h"
#include "lotus/strings.h"
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
  std::mutex mutex;            // before the node: its tap may fire until the node stops
  std::map<int, int> counted;  // n -> reports
  RedisBusOptions options;
  options.stream_channels.push_back("test.count");
  auto bus = tester(options);
  ASSERT_TRUE(bus);
  Subscriber tap;
  tap.tap = [&](const EventPtr& e) {
    std::lock_guard lock(mutex);
    ++counted[e->data.value("n", -1)];
  };
  ASSERT_TRUE(bus->subscribe("test.counted", {}, tap).ok());
  ASSERT_TRUE(eventually([&] { return bus->known_receivers("test.count") >= 2; }, 20s))
      << first->output() << second->output();
  auto handled = [&] {
    std::lock_guard lock(mutex);
    return counted.size();
  };
  constexpr int kEvents = 10000;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(bus->publish(Event::make("test.count", "tester", Json{{"n", i}})).ok());
    if (i == kEvents / 4) {
      ASSERT_TRUE(eventually([&] { return handled() > 500; }, 20s));
      first->signal(SIGKILL);
    }
  }
  ASSERT_TRUE(eventually([&] { return handled() == kEvents; }, 60s))
      << handled() << " of " << kEvents << " handled\n"
      << second->output();
  ASSERT_TRUE(eventually(
      [&] {
        auto p = server_.command({"XPENDING", "lotus:stream:test.count", "counter"});
        return !p.elements.empty() && p.elements[0].integer == 0;
      },
      20s));
  int duplicates = 0;
  {
    std::lock_guard lock(mutex);
    for (const auto& [n, reports] : counted) duplicates += reports - 1;
  }
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
}

}  // namespace
}  // namespace lotus
