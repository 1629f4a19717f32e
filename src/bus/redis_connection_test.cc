#include "bus/redis_connection.h"

#include <atomic>
#include <future>
#include <mutex>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bus/io_thread.h"
#include "lotus/strings.h"
#include "testing/redis_server.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Sends and waits: the blocking shape tests want.
Result<RedisReply> run(RedisConnection& connection, const RedisConnection::Args& args) {
  std::promise<Result<RedisReply>> promise;
  auto future = promise.get_future();
  connection.send(args,
                  [&promise](Result<RedisReply> reply) { promise.set_value(std::move(reply)); });
  if (future.wait_for(5s) != std::future_status::ready) {
    return absl::DeadlineExceededError("no reply within 5 s");
  }
  return future.get();
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 5s) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

class RedisConnectionTest : public ::testing::Test {
 protected:
  std::shared_ptr<RedisConnection> open(RedisConnection::Options options = {}) {
    if (options.address.display.empty()) options.address = *parse_redis_url(server_.url());
    auto connection = RedisConnection::create(io_.context(), options);
    Status status = connection->connect();
    EXPECT_TRUE(status.ok()) << status;
    connections_.push_back(connection);
    return connection;
  }
  void TearDown() override {
    for (auto& c : connections_) c->close();
    io_.stop();
  }

  testing::RedisServer server_;
  IoThread io_;
  std::vector<std::shared_ptr<RedisConnection>> connections_;
};

TEST(RedisUrlTest, ParsesEveryPartAndMasksThePassword) {
  auto a = parse_redis_url("redis://user:secret@example.org:6380/3");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "example.org");
  EXPECT_EQ(a->port, 6380);
  EXPECT_EQ(a->db, 3);
  EXPECT_EQ(a->user, "user");
  EXPECT_EQ(a->password, "secret");
  EXPECT_EQ(a->display, "redis://user:****@example.org:6380/3");
  auto b = parse_redis_url("redis://localhost");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->port, 6379);
  EXPECT_EQ(b->db, 0);
  auto c = parse_redis_url("redis://[::1]:7000");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 7000);
  EXPECT_THAT(std::string(message_of(parse_redis_url("redis://h:99999").status())),
              HasSubstr("port must be a number"));
  EXPECT_FALSE(parse_redis_url("http://h").ok());
}

TEST_F(RedisConnectionTest, RoundTripsCommandsAndBinaryValues) {
  auto c = open();
  std::string binary("a\0b\r\nc", 6);
  ASSERT_TRUE(run(*c, {"SET", "k", binary}).ok());
  auto got = run(*c, {"GET", "k"});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->type, RedisReply::Type::kString);
  EXPECT_EQ(got->str, binary);
  auto missing = run(*c, {"GET", "nothing"});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->is_nil());
  auto bad = run(*c, {"INCR", "k"});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(message_of(bad.status())), HasSubstr("not an integer"));
  auto list = run(*c, {"RPUSH", "l", "x", "y"});
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->integer, 2);
  auto range = run(*c, {"LRANGE", "l", "0", "-1"});
  ASSERT_TRUE(range.ok());
  ASSERT_EQ(range->elements.size(), 2u);
  EXPECT_EQ(range->elements[1].str, "y");
}

TEST_F(RedisConnectionTest, PipelinesManyCommandsFromManyThreadsInOrderPerThread) {
  auto c = open();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::atomic<int> ok{0};
  std::atomic<bool> out_of_order{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto last = std::make_shared<std::atomic<long long>>(0);
      for (int i = 0; i < kPerThread; ++i) {
        c->send({"INCR", cat("counter", t)}, [&, last](Result<RedisReply> reply) {
          if (!reply.ok()) return;
          if (reply->integer != last->load() + 1) out_of_order = true;
          last->store(reply->integer);
          ++ok;
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(eventually([&] { return ok.load() == kThreads * kPerThread; }));
  EXPECT_FALSE(out_of_order.load());
  EXPECT_EQ(server_.command({"GET", "counter3"}).text, std::to_string(kPerThread));
}

TEST_F(RedisConnectionTest, AwaitableCallResumesOnTheGivenExecutor) {
  auto c = open();
  IoThread other;
  auto task = c->call({"ECHO", "hello"}, other.context().get_executor());
  auto reply = testing::sync_wait(other.context().get_executor(), std::move(task));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->str, "hello");
}

TEST_F(RedisConnectionTest, SubscriberModeHandsMessagesToThePushHandler) {
  RedisConnection::Options options;
  options.address = *parse_redis_url(server_.url());
  auto sub = RedisConnection::create(io_.context(), options);
  std::mutex mutex;
  std::vector<std::string> got;
  sub->set_push_handler([&](RedisReply&& message) {
    std::lock_guard lock(mutex);
    // ["pmessage", pattern, channel, payload]
    got.push_back(cat(message.elements[2].str, "=", message.elements[3].str));
  });
  ASSERT_TRUE(sub->connect().ok());
  connections_.push_back(sub);
  ASSERT_TRUE(run(*sub, {"PSUBSCRIBE", "news.*"}).ok());
  auto pub = open();
  auto receivers = run(*pub, {"PUBLISH", "news.today", "sunny"});
  ASSERT_TRUE(receivers.ok());
  EXPECT_EQ(receivers->integer, 1);
  run(*pub, {"PUBLISH", "other", "x"}).IgnoreError();
  run(*pub, {"PUBLISH", "news.tomorrow", "rain"}).IgnoreError();
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mutex);
    return got.size() == 2;
  }));
  EXPECT_THAT(got, ::testing::ElementsAre("news.today=sunny", "news.tomorrow=rain"));
}

TEST_F(RedisConnectionTest, SelectsTheDatabaseFromTheUrl) {
  RedisConnection::Options options;
  options.address = *parse_redis_url(server_.url(5));
  auto c = open(options);
  ASSERT_TRUE(run(*c, {"SET", "where", "five"}).ok());
  EXPECT_TRUE(server_.command({"GET", "where"}).nil);
  EXPECT_EQ(server_.command({"SELECT", "5"}).text, "OK");
}

TEST(RedisConnectionStartTest, UnreachableServerIsAnErrorNamingTheUrl) {
  int port = 0;
  {
    testing::RedisServer server;  // a port that was free, now closed again
    port = server.port();
  }
  IoThread io;
  RedisConnection::Options options;
  options.address = *parse_redis_url(cat("redis://127.0.0.1:", port, "/2"));
  auto c = RedisConnection::create(io.context(), options);
  Status status = c->connect();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(message_of(status)),
              HasSubstr(cat("cannot reach Redis at redis://127.0.0.1:", port, "/2")));
  EXPECT_THAT(std::string(message_of(status)), HasSubstr("refused"));
  io.stop();
}

TEST_F(RedisConnectionTest, ReconnectsAfterARestartAndFlushesWhatWasBuffered) {
  RedisConnection::Options options;
  options.address = *parse_redis_url(server_.url());
  options.max_buffered = 10;
  options.backoff_initial = 20ms;
  options.backoff_max = 100ms;
  auto c = open(options);
  ASSERT_TRUE(run(*c, {"SET", "before", "1"}).ok());
  server_.kill_now();
  ASSERT_TRUE(eventually([&] { return !c->connected(); }));
  // While down: ten commands are held, the rest refused and counted.
  std::atomic<int> flushed{0};
  std::atomic<int> refused{0};
  for (int i = 0; i < 15; ++i) {
    c->send({"RPUSH", "during", std::to_string(i)}, [&](Result<RedisReply> reply) {
      if (reply.ok()) {
        ++flushed;
      } else if (reply.status().code() == absl::StatusCode::kResourceExhausted) {
        ++refused;
      }
    });
  }
  EXPECT_EQ(refused.load(), 5);
  EXPECT_EQ(c->stats().dropped, 5u);
  EXPECT_EQ(c->stats().buffered, 10u);
  server_.start();
  ASSERT_TRUE(eventually([&] { return flushed.load() == 10; }));
  EXPECT_TRUE(c->connected());
  EXPECT_GE(c->stats().reconnects, 1u);
  auto during = server_.command({"LRANGE", "during", "0", "-1"});
  ASSERT_EQ(during.elements.size(), 10u);
  EXPECT_EQ(during.elements[0].text, "0");
  EXPECT_EQ(during.elements[9].text, "9");
}

TEST_F(RedisConnectionTest, ConnectHookRunsAgainAfterReconnecting) {
  RedisConnection::Options options;
  options.address = *parse_redis_url(server_.url());
  options.backoff_initial = 20ms;
  auto sub = RedisConnection::create(io_.context(), options);
  std::atomic<int> messages{0};
  std::atomic<int> connects{0};
  sub->set_push_handler([&](RedisReply&&) { ++messages; });
  sub->set_connect_hook([&]() -> std::vector<RedisConnection::Args> {
    ++connects;
    return {{"PSUBSCRIBE", "t.*"}};
  });
  ASSERT_TRUE(sub->connect().ok());
  connections_.push_back(sub);
  auto pub = open();
  ASSERT_TRUE(eventually([&] { return server_.command({"PUBLISH", "t.x", "1"}).integer == 1; }));
  ASSERT_TRUE(eventually([&] { return messages.load() == 1; }));
  server_.kill_now();
  server_.start();
  ASSERT_TRUE(eventually([&] { return connects.load() == 2; }));
  ASSERT_TRUE(eventually([&] { return server_.command({"PUBLISH", "t.y", "2"}).integer == 1; }));
  EXPECT_TRUE(eventually([&] { return messages.load() >= 2; }));
}

}  // namespace
}  // namespace lotus

namespace lotus {
namespace {

// A sender faster than Redis waits for the writer once the unwritten bytes
// pass outbox_high_water, instead of growing the buffer; every command still
// goes out, in order, and the waits are counted.
TEST_F(RedisConnectionTest, AFastSenderWaitsForTheWriterAndLosesNothing) {
  RedisConnection::Options options;
  options.outbox_high_water = 256;
  auto connection = open(options);
  constexpr int kCommands = 20000;
  std::atomic<int> ok{0};
  std::atomic<int> in_order{0};
  std::atomic<long long> last{0};
  for (int i = 0; i < kCommands; ++i) {
    connection->send({"INCR", "fast"}, [&](Result<RedisReply> reply) {
      if (!reply.ok()) return;
      ok.fetch_add(1);
      if (reply->integer == last.load() + 1) in_order.fetch_add(1);
      last.store(reply->integer);
    });
  }
  ASSERT_TRUE(eventually([&] { return ok.load() == kCommands; }, 20s)) << ok.load();
  EXPECT_EQ(in_order.load(), kCommands);
  EXPECT_GT(connection->stats().waited, 0u);
  EXPECT_EQ(run(*connection, {"GET", "fast"})->str, std::to_string(kCommands));
}

}  // namespace
}  // namespace lotus
