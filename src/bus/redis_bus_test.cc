// RedisBus beyond the shared conformance suite: pattern-to-glob mapping,
// several nodes on one Redis (cross-node delivery, requests to another
// node's module, announcements, a silent node declared gone), and a clear
// error when Redis cannot be reached.
#include "bus/redis_bus.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lotus/strings.h"
#include "testing/redis_server.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 5s) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// Events seen by a tap, for assertions.
struct Seen {
  std::mutex mutex;
  std::vector<EventPtr> events;
  Subscriber tap() {
    Subscriber s;
    s.tap = [this](const EventPtr& e) {
      std::lock_guard lock(mutex);
      events.push_back(e);
    };
    return s;
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return events.size();
  }
  // The first event on `channel` whose data.node is `node`, or null.
  EventPtr find(std::string_view channel, std::string_view node) {
    std::lock_guard lock(mutex);
    for (const auto& e : events) {
      if (e->channel == channel && e->data.value("node", "") == node) return e;
    }
    return nullptr;
  }
  EventPtr at(size_t i) {
    std::lock_guard lock(mutex);
    return events.at(i);
  }
  std::vector<std::string> channels() {
    std::lock_guard lock(mutex);
    std::vector<std::string> out;
    for (const auto& e : events) out.push_back(e->channel);
    return out;
  }
};

class RedisBusTest : public ::testing::Test {
 protected:
  std::unique_ptr<RedisBus> node(std::string id, RedisBusOptions options = {}) {
    options.url = server_.url();
    options.node_id = std::move(id);
    options.threads = 2;
    if (options.heartbeat == RedisBusOptions{}.heartbeat) options.heartbeat = 50ms;
    if (options.node_timeout == RedisBusOptions{}.node_timeout) options.node_timeout = 400ms;
    auto bus = RedisBus::connect(options);
    EXPECT_TRUE(bus.ok()) << bus.status();
    return bus.ok() ? std::move(*bus) : nullptr;
  }

  // A node that is no bus here, only its heartbeat: module `module` handles
  // `pattern` on node `name`.
  void fake_heartbeat(const std::string& name, const std::string& module,
                      const std::string& pattern) {
    Json heartbeat = {{"node", name},
                      {"op", "heartbeat"},
                      {"patterns", {pattern}},
                      {"handlers", {{module, {pattern}}}}};
    server_.command({"PUBLISH", "lotus:ctl:nodes", heartbeat.dump()});
  }

  testing::RedisServer server_;
};

TEST_F(RedisBusTest, DeliversAcrossNodes) {
  // Declared before the nodes: taps may fire until a node stops.
  Seen seen;
  auto a = node("a");
  auto b = node("b");
  ASSERT_TRUE(b->subscribe("perception.**", {}, seen.tap()).ok());
  // a learns of b's pattern from its announcement
  ASSERT_TRUE(eventually([&] { return a->known_receivers("perception.x") == 1; }));
  EXPECT_EQ(a->peers(), std::vector<std::string>{"b"});
  ASSERT_EQ(*a->publish(Event::make("perception.x", "m")), 1u);
  ASSERT_TRUE(eventually([&] { return seen.size() >= 1; }));
  EXPECT_EQ(seen.channels()[0], "perception.x");
  EXPECT_EQ(seen.at(0)->source, "m");
}

TEST_F(RedisBusTest, OverlappingPatternsDeliverOnceEach) {
  // Declared before the nodes: taps may fire until a node stops.
  Seen one;
  Seen two;
  Seen three;
  auto a = node("a");
  ASSERT_TRUE(a->subscribe("a.b", {}, one.tap()).ok());
  ASSERT_TRUE(a->subscribe("a.*", {}, two.tap()).ok());
  ASSERT_TRUE(a->subscribe("**", {}, three.tap()).ok());
  ASSERT_EQ(*a->publish(Event::make("a.b", "m")), 3u);
  ASSERT_TRUE(eventually([&] { return three.size() >= 1 && one.size() >= 1 && two.size() >= 1; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(one.size(), 1u);
  EXPECT_EQ(two.size(), 1u);
  EXPECT_THAT(three.channels(), Contains("a.b"));
}

// A module on node b answers; node a's request reaches it through Redis and
// the reply comes back to a alone. This is how a tool on another node is called.
TEST_F(RedisBusTest, RequestReachesAModuleOnAnotherNode) {
  auto a = node("a");
  auto b = node("b");
  auto mailbox = std::make_shared<Mailbox>(Mailbox::Options{.owner = "math"}, b->executor());
  RedisBus* responder = b.get();
  mailbox->set_dispatch([responder](const Delivery& d) -> Task<Status> {
    co_return responder
        ->reply(*d.event, "math", Json{{"doubled", 2 * d.event->data["n"].get<int>()}})
        .status();
  });
  ASSERT_TRUE(b->subscribe("tool.math.*", {}, Subscriber{mailbox, 0, nullptr}).ok());
  ASSERT_TRUE(eventually([&] { return a->known_receivers("tool.math.double") == 1; }));
  auto reply = testing::sync_wait(
      a->executor(), a->request(Event::make("tool.math.double", "t", Json{{"n", 21}}), 5s));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ((*reply)->data["doubled"], 42);
  EXPECT_EQ((*reply)->source, "math");
  auto missing =
      testing::sync_wait(a->executor(), a->request(Event::make("tool.nobody.here", "t"), 5s));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(message_of(missing.status())),
              HasSubstr("no module on any node handles \"tool.nobody.here\""));
}

// A module that counts its runs and (unless it only watches) answers
// requests with the node it runs on.
struct Responder {
  Responder(RedisBus& bus, std::string module, std::string pattern, bool answers = true) {
    mailbox =
        std::make_shared<Mailbox>(Mailbox::Options{.owner = std::move(module)}, bus.executor());
    RedisBus* on = &bus;
    std::atomic<int>* count = &runs;
    mailbox->set_dispatch([on, count, answers](const Delivery& d) -> Task<Status> {
      count->fetch_add(1);
      if (!answers || d.event->metadata.reply_to.empty()) co_return absl::OkStatus();
      co_return on->reply(*d.event, "math", Json{{"node", on->node_id()}}).status();
    });
    EXPECT_TRUE(bus.subscribe(pattern, {}, Subscriber{mailbox, 0, nullptr}).ok());
  }
  std::shared_ptr<Mailbox> mailbox;
  std::atomic<int> runs{0};
};

// The same module on nodes a and b: a request from c runs on one of them
// (taking turns), a request from a runs on a; a module that also matches
// the channel (an audit on b) gets each request once as well.
TEST_F(RedisBusTest, ARequestRunsOncePerModuleWhenSeveralNodesRunIt) {
  auto a = node("a");
  auto b = node("b");
  auto c = node("c");
  Responder math_a(*a, "math", "tool.math.*");
  Responder math_b(*b, "math", "tool.math.*");
  Responder audit_b(*b, "audit", "tool.**", /*answers=*/false);
  ASSERT_TRUE(eventually([&] {
    return c->known_receivers("tool.math.double") == 3 && a->known_receivers("tool.math.x") == 3;
  }));
  std::map<std::string, int> answered_by;
  for (int i = 0; i < 10; ++i) {
    auto reply =
        testing::sync_wait(c->executor(), c->request(Event::make("tool.math.double", "t"), 5s));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ++answered_by[(*reply)->data["node"].get<std::string>()];
  }
  EXPECT_EQ(answered_by, (std::map<std::string, int>{{"a", 5}, {"b", 5}}));
  ASSERT_TRUE(eventually([&] { return audit_b.runs.load() == 10; }));
  for (int i = 0; i < 10; ++i) {
    auto reply =
        testing::sync_wait(a->executor(), a->request(Event::make("tool.math.double", "t"), 5s));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ((*reply)->data["node"], "a") << "a runs the module itself";
  }
  ASSERT_TRUE(eventually([&] { return audit_b.runs.load() == 20; }));
  std::this_thread::sleep_for(200ms);  // a second run of any request would land by now
  EXPECT_EQ(math_a.runs.load(), 15);
  EXPECT_EQ(math_b.runs.load(), 5);
  EXPECT_EQ(audit_b.runs.load(), 20);
  EXPECT_EQ(b->redis_stats().routed_elsewhere, 15u);  // math's share that a ran
  // A plain publish is still broadcast to every instance.
  ASSERT_TRUE(c->publish(Event::make("tool.math.note", "t")).ok());
  EXPECT_TRUE(eventually([&] { return math_a.runs.load() == 16 && math_b.runs.load() == 6; }));
  for (auto* bus : {a.get(), b.get(), c.get()}) bus->stop();
}

// A request routed to a node that then goes silent (killed) fails as soon as
// the node is declared gone, naming it, rather than at its timeout.
TEST_F(RedisBusTest, ARequestToANodeThatDiesFailsNamingTheNode) {
  auto a = node("a");
  fake_heartbeat("ghost", "spooky", "tool.spooky.*");
  ASSERT_TRUE(eventually([&] { return a->known_receivers("tool.spooky.boo") == 1; }));
  const auto begin = std::chrono::steady_clock::now();
  auto reply =
      testing::sync_wait(a->executor(), a->request(Event::make("tool.spooky.boo", "t"), 30s));
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 5s);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
  EXPECT_THAT(std::string(message_of(reply.status())),
              HasSubstr("node ghost, chosen to handle \"tool.spooky.boo\", went silent"));
  // A node that leaves says so: the request fails at once.
  fake_heartbeat("leaver", "slow", "tool.slow.*");
  ASSERT_TRUE(eventually([&] { return a->known_receivers("tool.slow.op") == 1; }));
  std::thread leave([&] {
    std::this_thread::sleep_for(100ms);
    server_.command(
        {"PUBLISH", "lotus:ctl:nodes", Json{{"node", "leaver"}, {"op", "leave"}}.dump()});
  });
  auto left = testing::sync_wait(a->executor(), a->request(Event::make("tool.slow.op", "t"), 30s));
  leave.join();
  EXPECT_EQ(left.status().code(), absl::StatusCode::kUnavailable) << left.status();
  EXPECT_THAT(std::string(message_of(left.status())), HasSubstr("left the bus before replying"));
}

TEST_F(RedisBusTest, NodesAnnounceJoiningAndLeaving) {
  // Declared before the nodes: taps may fire until a node stops.
  Seen seen;
  auto a = node("a");
  ASSERT_TRUE(a->subscribe("system.*", {}, seen.tap()).ok());
  auto b = node("b");
  ASSERT_TRUE(eventually([&] { return seen.find("system.node_joined", "b") != nullptr; }));
  ASSERT_TRUE(eventually([&] { return a->peers().size() == 1; }));
  b->stop();
  ASSERT_TRUE(eventually([&] { return seen.find("system.node_left", "b") != nullptr; }));
  EXPECT_EQ(seen.find("system.node_left", "b")->data["reason"], "shutdown");
  EXPECT_TRUE(eventually([&] { return a->peers().empty(); }));
}

TEST_F(RedisBusTest, ASilentNodeIsDeclaredGoneOnce) {
  // Declared before the nodes: taps may fire until a node stops.
  Seen seen_a;
  Seen seen_c;
  auto a = node("a");
  auto c = node("c");
  ASSERT_TRUE(a->subscribe("system.node_left", {}, seen_a.tap()).ok());
  ASSERT_TRUE(c->subscribe("system.node_left", {}, seen_c.tap()).ok());
  // A node that joined and then went silent, like a process killed with -9:
  // its registration is written by hand, and nothing refreshes it.
  Json ghost = {{"node", "ghost"}, {"op", "heartbeat"}, {"patterns", {"ghost.*"}}};
  server_.command({"PUBLISH", "lotus:ctl:nodes", ghost.dump()});
  ASSERT_TRUE(eventually([&] { return a->peers().size() == 2 && c->peers().size() == 2; }));
  ASSERT_TRUE(eventually([&] { return seen_a.size() >= 1; }, 5s));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(seen_a.size(), 1u) << "one node_left for the ghost, whoever noticed first";
  EXPECT_EQ(seen_c.size(), 1u);
  ASSERT_NE(seen_a.find("system.node_left", "ghost"), nullptr);
  EXPECT_EQ(seen_a.find("system.node_left", "ghost")->data["reason"], "timeout");
}

TEST_F(RedisBusTest, UsesTheDatabaseFromTheUrl) {
  RedisBusOptions options;
  options.url = server_.url(3);
  options.node_id = "d";
  auto bus = RedisBus::connect(options);
  ASSERT_TRUE(bus.ok()) << bus.status();
  // The registration is written asynchronously, into database 3.
  EXPECT_TRUE(eventually([&] {
    return server_.command({"INFO", "keyspace"}).text.find("db3:keys=") != std::string::npos;
  }));
  EXPECT_TRUE(server_.command({"GET", "lotus:node:d"}).nil);
  (*bus)->stop();
}

TEST(RedisBusStartTest, UnreachableRedisIsAClearError) {
  int port = 0;
  {
    testing::RedisServer gone;
    port = gone.port();
  }
  RedisBusOptions options;
  options.url = cat("redis://127.0.0.1:", port);
  options.connect_timeout = 500ms;
  auto bus = RedisBus::connect(options);
  ASSERT_FALSE(bus.ok());
  EXPECT_THAT(std::string(message_of(bus.status())),
              HasSubstr(cat("cannot reach Redis at redis://127.0.0.1:", port)));
}

TEST(RedisBusOptionsTest, ReadsTheConfigSectionAndNamesBadKeys) {
  auto options = RedisBusOptions::from_config("redis://h", Json{{"streams", {"audit.trail"}},
                                                                {"claim_idle_ms", 500},
                                                                {"stream_maxlen", 1000},
                                                                {"heartbeat_ms", 200}});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->claim_idle, 500ms);
  EXPECT_EQ(options->stream_maxlen, 1000);
  EXPECT_THAT(options->stream_channels, Contains("audit.trail"));
  EXPECT_THAT(options->stream_channels, Contains("memory_updates"));
  auto bad = RedisBusOptions::from_config("redis://h", Json{{"claim_idle", 5}});
  EXPECT_THAT(std::string(message_of(bad.status())), HasSubstr("redis.claim_idle: unknown key"));
  auto wrong = RedisBusOptions::from_config("redis://h", Json{{"heartbeat_ms", "x"}});
  EXPECT_THAT(std::string(message_of(wrong.status())), HasSubstr("redis.heartbeat_ms"));
}

TEST(RedisBusOptionsTest, StreamsMayBeReadPerNode) {
  auto defaults = RedisBusOptions::from_config("redis://h", Json());
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->per_node_streams, std::set<std::string>{"memory_updates"});
  auto options = RedisBusOptions::from_config(
      "redis://h", Json::parse(R"({"streams": {"audit.trail": {"group": "per_node"},
                                               "memory_updates": {"group": "shared"},
                                               "jobs": null}})"));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->stream_channels, Contains("audit.trail"));
  EXPECT_THAT(options->stream_channels, Contains("jobs"));
  EXPECT_EQ(options->per_node_streams, std::set<std::string>{"audit.trail"});
  auto bad = RedisBusOptions::from_config(
      "redis://h", Json::parse(R"({"streams": {"audit.trail": {"group": "everyone"}}})"));
  EXPECT_THAT(std::string(message_of(bad.status())),
              HasSubstr("redis.streams.audit.trail.group: expected shared"));
  auto odd = RedisBusOptions::from_config(
      "redis://h", Json::parse(R"({"streams": {"audit.trail": {"mode": "per_node"}}})"));
  EXPECT_THAT(std::string(message_of(odd.status())),
              HasSubstr("redis.streams.audit.trail.mode: unknown key"));
}

}  // namespace
}  // namespace lotus
