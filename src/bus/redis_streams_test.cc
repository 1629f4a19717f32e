// Durable channels on RedisBus: XADD with retention, consumer groups,
// acknowledgement only after the handler succeeded, reclaiming a dead
// consumer's pending entries, splitting a group's work across two nodes, and
// deduplication of redelivered events.
#include "bus/redis_streams.h"

#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bus/redis_bus.h"
#include "lotus/strings.h"
#include "testing/redis_server.h"

namespace lotus {
namespace {

using namespace std::chrono_literals;

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// A module's mailbox that records each handled n; `fail` decides, per
// attempt, whether the handler fails. The record is shared with the handler,
// so it outlives this object while the node still delivers.
struct Worker {
  struct Record {
    std::mutex mutex;
    std::map<int, int> attempts;  // n -> times the handler ran
    std::function<bool(int n, int attempt)> fail = [](int, int) { return false; };
  };
  std::shared_ptr<Record> record = std::make_shared<Record>();
  std::shared_ptr<Mailbox> mailbox;

  Worker(Bus& bus, std::string module) {
    mailbox =
        std::make_shared<Mailbox>(Mailbox::Options{.owner = std::move(module)}, bus.executor());
    mailbox->set_dispatch([r = record](const Delivery& d) -> Task<Status> {
      const int n = d.event->data.value("n", -1);
      if (n < 0) co_return absl::OkStatus();  // not a test event (system.*)
      int attempt = 0;
      {
        std::lock_guard lock(r->mutex);
        attempt = ++r->attempts[n];
      }
      if (r->fail(n, attempt)) co_return absl::InternalError("handler failed on purpose");
      co_return absl::OkStatus();
    });
  }
  std::map<int, int> attempts() {
    std::lock_guard lock(record->mutex);
    return record->attempts;
  }
  size_t distinct() { return attempts().size(); }
  int total() {
    int sum = 0;
    for (const auto& [n, count] : attempts()) sum += count;
    return sum;
  }
};

class RedisStreamsTest : public ::testing::Test {
 protected:
  std::unique_ptr<RedisBus> node(std::string id, RedisBusOptions options = {}) {
    options.url = server_.url();
    options.node_id = std::move(id);
    options.threads = 2;
    options.stream_channels.push_back("jobs.queue");
    auto bus = RedisBus::connect(options);
    EXPECT_TRUE(bus.ok()) << bus.status();
    return bus.ok() ? std::move(*bus) : nullptr;
  }
  long long pending(const std::string& stream, const std::string& group) {
    auto reply = server_.command({"XPENDING", stream, group});
    return reply.elements.empty() ? -1 : reply.elements[0].integer;
  }

  testing::RedisServer server_;
};

TEST_F(RedisStreamsTest, DurableChannelsGoThroughAStreamAndAreAcknowledged) {
  auto a = node("a");
  Worker auditor(*a, "auditor");
  ASSERT_TRUE(a->subscribe("action_log", {}, Subscriber{auditor.mailbox, 0, nullptr}).ok());
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(a->publish(Event::make("action_log", "tester", Json{{"n", i}})).ok());
  }
  ASSERT_TRUE(eventually([&] { return a->redis_stats().stream_acked == 200; }));
  EXPECT_EQ(auditor.distinct(), 200u);
  EXPECT_EQ(auditor.total(), 200);
  EXPECT_EQ(server_.command({"XLEN", "lotus:stream:action_log"}).integer, 200);
  EXPECT_EQ(pending("lotus:stream:action_log", "auditor"), 0);
  EXPECT_EQ(a->redis_stats().stream_duplicates, 0u);
}

TEST_F(RedisStreamsTest, AFailedHandlerLeavesTheEntryPendingUntilItIsRetried) {
  RedisBusOptions options;
  options.claim_idle = 300ms;
  auto a = node("a", options);
  Worker worker(*a, "worker");
  worker.record->fail = [](int n, int attempt) { return n == 5 && attempt == 1; };
  ASSERT_TRUE(a->subscribe("jobs.queue", {}, Subscriber{worker.mailbox, 0, nullptr}).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(a->publish(Event::make("jobs.queue", "tester", Json{{"n", i}})).ok());
  }
  ASSERT_TRUE(eventually([&] { return a->redis_stats().stream_acked == 9; }));
  EXPECT_EQ(pending("lotus:stream:jobs.queue", "worker"), 1) << "not acknowledged after failing";
  ASSERT_TRUE(eventually([&] { return a->redis_stats().stream_acked == 10; }));
  EXPECT_EQ(pending("lotus:stream:jobs.queue", "worker"), 0);
  EXPECT_EQ(worker.attempts()[5], 2);
  EXPECT_GE(a->redis_stats().stream_claimed, 1u);
}

TEST_F(RedisStreamsTest, TwoInstancesOfAModuleShareTheWorkEachEventOnce) {
  auto a = node("a");
  auto b = node("b");
  auto producer = node("p");
  Worker on_a(*a, "worker");
  Worker on_b(*b, "worker");
  Worker other(*b, "archiver");  // another module: gets everything
  ASSERT_TRUE(a->subscribe("jobs.*", {}, Subscriber{on_a.mailbox, 0, nullptr}).ok());
  ASSERT_TRUE(b->subscribe("jobs.queue", {}, Subscriber{on_b.mailbox, 0, nullptr}).ok());
  ASSERT_TRUE(b->subscribe("**", {}, Subscriber{other.mailbox, 0, nullptr}).ok());
  constexpr int kEvents = 2000;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(producer->publish(Event::make("jobs.queue", "tester", Json{{"n", i}})).ok());
  }
  ASSERT_TRUE(eventually([&] { return on_a.total() + on_b.total() == kEvents; }));
  ASSERT_TRUE(eventually([&] { return other.distinct() == kEvents; }));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(on_a.total() + on_b.total(), kEvents);
  std::set<int> seen;
  for (auto* w : {&on_a, &on_b}) {
    for (const auto& [n, count] : w->attempts()) {
      EXPECT_EQ(count, 1);
      EXPECT_TRUE(seen.insert(n).second) << n << " handled on both nodes";
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEvents));
  EXPECT_GT(on_a.total(), 0);
  EXPECT_GT(on_b.total(), 0);
  EXPECT_TRUE(eventually([&] { return pending("lotus:stream:jobs.queue", "worker") == 0; }));
}

// A consumer that read entries and died: its pending entries go to a live
// node once idle; one it had already finished (its id is recorded as
// handled) is acknowledged without running again.
TEST_F(RedisStreamsTest, ADeadConsumersPendingEntriesAreReclaimedAndDeduplicated) {
  const std::string stream = "lotus:stream:jobs.queue";
  server_.command({"XGROUP", "CREATE", stream, "worker", "0", "MKSTREAM"});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    Event e = Event::make("jobs.queue", "tester", Json{{"n", i}});
    e.timestamp = now_seconds();
    ids.push_back(e.id.to_string());
    server_.command({"XADD", stream, "*", "event", to_json(e).dump()});
  }
  auto read = server_.command(
      {"XREADGROUP", "GROUP", "worker", "dead", "COUNT", "5", "STREAMS", stream, ">"});
  ASSERT_EQ(read.elements.size(), 1u);
  server_.command({"SET", "lotus:done:worker:" + ids[2], "1"});  // finished before dying
  EXPECT_EQ(pending(stream, "worker"), 5);

  RedisBusOptions options;
  options.claim_idle = 200ms;
  auto a = node("a", options);
  Worker worker(*a, "worker");
  ASSERT_TRUE(a->subscribe("jobs.queue", {}, Subscriber{worker.mailbox, 0, nullptr}).ok());
  ASSERT_TRUE(eventually([&] { return pending(stream, "worker") == 0; }));
  EXPECT_EQ(worker.distinct(), 4u);
  EXPECT_EQ(worker.attempts().count(2), 0u);
  EXPECT_EQ(a->redis_stats().stream_duplicates, 1u);
  EXPECT_EQ(a->redis_stats().stream_claimed, 5u);
}

TEST_F(RedisStreamsTest, RetentionCapsTheStream) {
  RedisBusOptions options;
  options.stream_maxlen = 100;
  auto a = node("a", options);
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(a->publish(Event::make("memory_updates", "tester", Json{{"n", i}})).ok());
  }
  ASSERT_TRUE(eventually([&] { return a->redis_stats().stream_added == 2000; }));
  // MAXLEN ~ trims whole macro nodes: never below the cap, never far above.
  const long long length = server_.command({"XLEN", "lotus:stream:memory_updates"}).integer;
  EXPECT_GE(length, 100);
  EXPECT_LE(length, 300);
}

// Redis killed with -9 and restarted on its append-only file (appendfsync
// always) while events flow: publishes made meanwhile wait in the bounded
// buffer and go out after reconnecting, and no entry whose XADD Redis
// acknowledged is lost: every one is handled and acknowledged.
TEST(RedisRestartTest, NoAcknowledgedEntryIsLostAcrossARestartWithAof) {
  testing::RedisServer server(testing::RedisServer::Options{.appendonly = true});
  RedisBusOptions options;
  options.url = server.url();
  options.node_id = "a";
  options.threads = 2;
  options.claim_idle = 500ms;
  options.stream_channels.push_back("jobs.queue");
  auto bus = RedisBus::connect(options);
  ASSERT_TRUE(bus.ok()) << bus.status();
  RedisBus& a = **bus;
  Worker worker(a, "worker");
  ASSERT_TRUE(a.subscribe("jobs.queue", {}, Subscriber{worker.mailbox, 0, nullptr}).ok());
  constexpr int kEvents = 2000;
  for (int i = 0; i < kEvents / 2; ++i) {
    ASSERT_TRUE(a.publish(Event::make("jobs.queue", "tester", Json{{"n", i}})).ok());
  }
  // Killed while the first half is still being written and consumed.
  ASSERT_TRUE(eventually([&] { return a.redis_stats().stream_added >= 300; }));
  server.kill_now();
  // Commands written before the drop is noticed fail (in flight, never
  // acknowledged); from then on they wait in the buffer.
  ASSERT_TRUE(eventually([&] { return !a.redis_stats().commands.connected; }));
  for (int i = kEvents / 2; i < kEvents; ++i) {
    ASSERT_TRUE(a.publish(Event::make("jobs.queue", "tester", Json{{"n", i}})).ok());
  }
  EXPECT_GT(a.redis_stats().commands.buffered, 0u) << "held while Redis is down";
  server.start();
  ASSERT_TRUE(eventually(
      [&] {
        auto s = a.redis_stats();
        return s.stream_added + s.stream_add_failed == kEvents && s.commands.buffered == 0 &&
               worker.distinct() >= s.stream_added;
      },
      30s))
      << worker.distinct() << " handled";
  const auto stats = a.redis_stats();
  std::cout << "[ stats    ] " << stats.stream_added << " XADDs acknowledged, "
            << stats.stream_add_failed << " in flight when Redis died, " << worker.distinct()
            << " handled, " << stats.commands.reconnects << " reconnects\n";
  EXPECT_GE(worker.distinct(), stats.stream_added) << "an acknowledged entry was lost";
  EXPECT_GE(stats.stream_added, static_cast<uint64_t>(kEvents / 2)) << "the buffered half";
  EXPECT_GE(stats.commands.reconnects, 1u);
  EXPECT_EQ(stats.commands.dropped, 0u);
  EXPECT_TRUE(eventually([&] {
    auto p = server.command({"XPENDING", "lotus:stream:jobs.queue", "worker"});
    return !p.elements.empty() && p.elements[0].integer == 0;
  }));
  a.stop();
}

// memory_updates is read per node: each node's memory module sees every
// entry (its own group "memory@<node>"), while a shared channel's entries are
// split between the instances. A node whose id was generated takes its
// per-node groups along when it leaves.
TEST_F(RedisStreamsTest, PerNodeStreamsReachEveryNodesModule) {
  auto a = node("a");
  auto b = node("b");
  Worker memory_a(*a, "memory");
  Worker memory_b(*b, "memory");
  Worker jobs_a(*a, "jobs");
  Worker jobs_b(*b, "jobs");
  ASSERT_TRUE(a->subscribe("memory_updates", {}, Subscriber{memory_a.mailbox, 0, nullptr}).ok());
  ASSERT_TRUE(b->subscribe("memory_updates", {}, Subscriber{memory_b.mailbox, 0, nullptr}).ok());
  ASSERT_TRUE(a->subscribe("jobs.queue", {}, Subscriber{jobs_a.mailbox, 0, nullptr}).ok());
  ASSERT_TRUE(b->subscribe("jobs.queue", {}, Subscriber{jobs_b.mailbox, 0, nullptr}).ok());
  constexpr int kEvents = 500;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(a->publish(Event::make("memory_updates", "memory", Json{{"n", i}})).ok());
    ASSERT_TRUE(b->publish(Event::make("jobs.queue", "tester", Json{{"n", i}})).ok());
  }
  ASSERT_TRUE(eventually([&] {
    return memory_a.distinct() == kEvents && memory_b.distinct() == kEvents &&
           jobs_a.distinct() + jobs_b.distinct() >= kEvents;
  })) << memory_a.distinct()
      << " " << memory_b.distinct();
  EXPECT_EQ(memory_a.total(), kEvents);
  EXPECT_EQ(memory_b.total(), kEvents);
  EXPECT_EQ(jobs_a.total() + jobs_b.total(), kEvents) << "a shared group: each entry once";
  ASSERT_TRUE(eventually([&] {
    return pending("lotus:stream:memory_updates", "memory@a") == 0 &&
           pending("lotus:stream:memory_updates", "memory@b") == 0;
  }));
  auto groups = server_.command({"XINFO", "GROUPS", "lotus:stream:memory_updates"});
  EXPECT_EQ(groups.elements.size(), 2u);

  // A node with a generated id: its group goes when it stops; a node with a
  // configured one ("a", "b") keeps it, to resume where it stopped.
  RedisBusOptions options;
  options.url = server_.url();
  options.threads = 2;
  auto c = RedisBus::connect(options);
  ASSERT_TRUE(c.ok()) << c.status();
  Worker memory_c(**c, "memory");
  ASSERT_TRUE((*c)->subscribe("memory_updates", {}, Subscriber{memory_c.mailbox, 0, nullptr}).ok());
  EXPECT_EQ(server_.command({"XINFO", "GROUPS", "lotus:stream:memory_updates"}).elements.size(),
            3u);
  // Made at the end of the stream: a new node reads what comes after it joined.
  ASSERT_TRUE(a->publish(Event::make("memory_updates", "memory", Json{{"n", kEvents}})).ok());
  ASSERT_TRUE(eventually([&] { return memory_c.distinct() == 1; }));
  EXPECT_EQ(memory_c.attempts().begin()->first, kEvents);
  (*c)->stop();
  EXPECT_TRUE(eventually([&] {
    return server_.command({"XINFO", "GROUPS", "lotus:stream:memory_updates"}).elements.size() ==
           2u;
  }));
  b->stop();
  EXPECT_EQ(server_.command({"XINFO", "GROUPS", "lotus:stream:memory_updates"}).elements.size(),
            2u);
}

// A node with a generated id that dies without a word: the survivor that
// declares it gone removes its per-node groups (nobody else reads them); a
// node with a configured id keeps them, as it will come back to them.
TEST_F(RedisStreamsTest, ADeadNodesPerNodeGroupsGoWhenItsIdWasGenerated) {
  RedisBusOptions options;
  options.heartbeat = 100ms;
  options.node_timeout = 500ms;
  auto a = node("a", options);
  Worker memory(*a, "memory");
  ASSERT_TRUE(a->subscribe("memory_updates", {}, Subscriber{memory.mailbox, 0, nullptr}).ok());
  const std::string stream = "lotus:stream:memory_updates";
  for (const char* group : {"memory@ghost", "memory@keeper"}) {
    server_.command({"XGROUP", "CREATE", stream, group, "$", "MKSTREAM"});
  }
  // Each heartbeats once (as a node killed with -9 leaves things).
  for (auto [id, generated] : {std::pair{"ghost", true}, std::pair{"keeper", false}}) {
    Json beat = {{"node", id},
                 {"op", "heartbeat"},
                 {"patterns", Json::array()},
                 {"taps", Json::array()},
                 {"generated_id", generated}};
    server_.command({"PUBLISH", "lotus:ctl:nodes", beat.dump()});
  }
  auto groups = [&] {
    std::set<std::string> names;
    for (const auto& g : server_.command({"XINFO", "GROUPS", stream}).elements) {
      for (size_t i = 0; i + 1 < g.elements.size(); i += 2) {
        if (g.elements[i].text == "name") names.insert(g.elements[i + 1].text);
      }
    }
    return names;
  };
  ASSERT_EQ(groups(), (std::set<std::string>{"memory@a", "memory@ghost", "memory@keeper"}));
  EXPECT_TRUE(eventually([&] { return groups().count("memory@ghost") == 0; }));
  EXPECT_TRUE(groups().count("memory@keeper") == 1 && groups().count("memory@a") == 1);
}

TEST_F(RedisStreamsTest, TapsStillSeeDurableChannelsLive) {
  std::atomic<int> seen{0};  // before the node: its tap may fire until the node stops
  auto a = node("a");
  Subscriber tap;
  tap.tap = [&](const EventPtr&) { ++seen; };
  ASSERT_TRUE(a->subscribe("memory_updates", {}, tap).ok());
  ASSERT_TRUE(a->publish(Event::make("memory_updates", "tester", Json{{"n", 1}})).ok());
  EXPECT_TRUE(eventually([&] { return seen.load() == 1; }));
}

}  // namespace
}  // namespace lotus
