// The bus conformance suite: every Bus backend must pass it unchanged.
// Pattern semantics, filters, per-module ordering, overflow policies and
// request/reply, run against the in-process LocalBus and against RedisBus on
// a redis-server the test starts. Tests only rely on what the contract
// promises: delivery may be asynchronous, so they wait, never sleep-and-hope.
#include <atomic>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/steady_timer.hpp>

#include "bus/local_bus.h"
#include "bus/redis_bus.h"
#include "lotus/strings.h"
#include "testing/mailbox_recorder.h"
#include "testing/redis_server.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

struct LocalBackend {
  std::unique_ptr<Bus> make(size_t threads) { return std::make_unique<LocalBus>(threads); }
};

struct RedisBackend {
  std::unique_ptr<testing::RedisServer> server;
  std::unique_ptr<Bus> make(size_t threads) {
    if (!server) server = std::make_unique<testing::RedisServer>();
    RedisBusOptions options;
    options.url = server->url();
    options.threads = threads;
    auto bus = RedisBus::connect(options);
    EXPECT_TRUE(bus.ok()) << bus.status();
    return bus.ok() ? std::unique_ptr<Bus>(std::move(*bus)) : nullptr;
  }
};

template <class Backend>
class BusConformanceTest : public ::testing::Test {
 protected:
  Bus& make_bus(size_t threads) {
    bus_ = backend_.make(threads);
    if (!bus_) throw std::runtime_error("no bus");
    return *bus_;
  }
  void TearDown() override {
    if (bus_) bus_->stop();
  }

  // Publishes a marker and waits until a tap sees it: everything published
  // before has then been routed (delivery is in publish order).
  void flush(Bus& bus) {
    std::mutex mutex;
    std::condition_variable seen_cv;
    bool seen = false;
    Subscriber tap;
    tap.tap = [&](const EventPtr&) {
      std::lock_guard lock(mutex);
      seen = true;
      seen_cv.notify_all();
    };
    auto id = bus.subscribe("test.flush", {}, tap);
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(bus.publish(Event::make("test.flush", "tester")).ok());
    std::unique_lock lock(mutex);
    ASSERT_TRUE(seen_cv.wait_for(lock, 5s, [&] { return seen; }));
    lock.unlock();
    bus.unsubscribe(*id);
  }

  Backend backend_;
  std::unique_ptr<Bus> bus_;
};

using Backends = ::testing::Types<LocalBackend, RedisBackend>;
class BackendNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, LocalBackend> ? "Local" : "Redis";
  }
};
TYPED_TEST_SUITE(BusConformanceTest, Backends, BackendNames);

using testing::numbered;
using testing::Recorder;
using testing::recording_mailbox;

TYPED_TEST(BusConformanceTest, DeliversByPatternAndCountsUnrouted) {
  Bus& bus = this->make_bus(2);
  Recorder recorder;
  auto mailbox = recording_mailbox(bus, recorder);
  ASSERT_TRUE(bus.subscribe("perception.*", {}, Subscriber{mailbox, 0, nullptr}).ok());
  const BusStats before = bus.stats();
  ASSERT_TRUE(bus.publish(numbered("perception.user_input", 1)).ok());
  ASSERT_TRUE(bus.publish(numbered("perception.file.changed", 2)).ok());  // two segments: no
  ASSERT_TRUE(bus.publish(numbered("cognition.decision", 3)).ok());
  ASSERT_TRUE(recorder.wait_for(1));
  this->flush(bus);
  EXPECT_THAT(recorder.channels, ElementsAre("perception.user_input"));
  BusStats stats = bus.stats();
  EXPECT_EQ(stats.published - before.published, 4u);  // with the flush marker
  EXPECT_EQ(stats.delivered - before.delivered, 2u);  // the event and the marker
  EXPECT_EQ(stats.unrouted - before.unrouted, 2u);
}

TYPED_TEST(BusConformanceTest, StarIsOneSegmentAndDoubleStarIsAnyNumber) {
  Bus& bus = this->make_bus(2);
  struct Case {
    const char* pattern;
    Recorder recorder;
  };
  std::vector<std::unique_ptr<Case>> cases;
  std::vector<std::shared_ptr<Mailbox>> mailboxes;
  for (const char* pattern : {"a.*", "a.**", "**", "a.*.c", "**.c", "a.b.c", "*"}) {
    auto c = std::make_unique<Case>();
    c->pattern = pattern;
    auto mailbox = recording_mailbox(bus, c->recorder, {.owner = pattern});
    ASSERT_TRUE(bus.subscribe(pattern, {}, Subscriber{mailbox, 0, nullptr}).ok());
    mailboxes.push_back(mailbox);
    cases.push_back(std::move(c));
  }
  for (const char* channel : {"a", "a.b", "a.b.c", "x.c", "ab.c", "a.b.c.d"}) {
    ASSERT_TRUE(bus.publish(Event::make(channel, "tester")).ok());
  }
  this->flush(bus);
  auto expect = [&](size_t i, std::vector<std::string> channels) {
    ASSERT_TRUE(cases[i]->recorder.wait_for(channels.size()));
    this->flush(bus);
    std::lock_guard lock(cases[i]->recorder.mutex);
    std::vector<std::string> got = cases[i]->recorder.channels;
    std::erase(got, "test.flush");
    EXPECT_EQ(got, channels) << cases[i]->pattern;
  };
  expect(0, {"a.b"});
  expect(1, {"a", "a.b", "a.b.c", "a.b.c.d"});
  expect(2, {"a", "a.b", "a.b.c", "x.c", "ab.c", "a.b.c.d"});
  expect(3, {"a.b.c"});
  expect(4, {"a.b.c", "x.c", "ab.c"});
  expect(5, {"a.b.c"});
  expect(6, {"a"});
  bus.stop();  // before the recorders go: "**" also takes the flush markers
}

TYPED_TEST(BusConformanceTest, RejectsInvalidEventsWithReason) {
  Bus& bus = this->make_bus(1);
  auto result = bus.publish(Event::make("bad..channel", "tester"));
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(message_of(result.status())), HasSubstr("\"channel\""));
  auto no_source = bus.publish(Event::make("system.boot", ""));
  ASSERT_FALSE(no_source.ok());
  EXPECT_THAT(std::string(message_of(no_source.status())), HasSubstr("source"));
  EXPECT_FALSE(bus.subscribe("a.b*", {}, Subscriber{nullptr, 0, [](const EventPtr&) {}}).ok());
}

TYPED_TEST(BusConformanceTest, AppliesSubscriptionFilters) {
  Bus& bus = this->make_bus(2);
  Recorder recorder;
  auto mailbox = recording_mailbox(bus, recorder);
  auto filter = SubscriptionFilter::parse(Json("*.py"));
  ASSERT_TRUE(filter.ok());
  ASSERT_TRUE(
      bus.subscribe("perception.file_changed", *filter, Subscriber{mailbox, 0, nullptr}).ok());
  bus.publish(Event::make("perception.file_changed", "watcher", Json{{"path", "/src/a.cc"}}))
      .IgnoreError();
  bus.publish(Event::make("perception.file_changed", "watcher", Json{{"path", "/src/b.py"}}))
      .IgnoreError();
  bus.publish(Event::make("perception.file_changed", "watcher", Json{{"size", 3}})).IgnoreError();
  ASSERT_TRUE(recorder.wait_for(1));
  this->flush(bus);
  EXPECT_EQ(recorder.size(), 1u);
  EXPECT_EQ(bus.stats().filtered, 2u);
}

TYPED_TEST(BusConformanceTest, UnsubscribedRoutesGetNothingMore) {
  Bus& bus = this->make_bus(2);
  Recorder recorder;
  auto mailbox = recording_mailbox(bus, recorder);
  auto id = bus.subscribe("news.*", {}, Subscriber{mailbox, 0, nullptr});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(bus.publish(numbered("news.a", 1)).ok());
  ASSERT_TRUE(recorder.wait_for(1));
  EXPECT_TRUE(bus.unsubscribe(*id));
  EXPECT_FALSE(bus.unsubscribe(*id));
  ASSERT_TRUE(bus.publish(numbered("news.b", 2)).ok());
  this->flush(bus);
  EXPECT_EQ(recorder.size(), 1u);
}

TYPED_TEST(BusConformanceTest, OneMailboxRunsHandlersInOrderAndNeverConcurrently) {
  Bus& bus = this->make_bus(4);
  std::atomic<int> running{0};
  std::atomic<bool> overlapped{false};
  std::vector<int> seen;
  std::mutex seen_mutex;
  std::condition_variable done;
  constexpr int kEvents = 20000;
  auto mailbox = std::make_shared<Mailbox>(Mailbox::Options{.owner = "ordered", .capacity = 100000},
                                           bus.executor());
  mailbox->set_dispatch([&](const Delivery& d) -> Task<Status> {
    if (running.fetch_add(1) != 0) overlapped = true;
    int n = d.event->data["n"].get<int>();
    running.fetch_sub(1);
    std::lock_guard lock(seen_mutex);
    seen.push_back(n);
    if (seen.size() == kEvents) done.notify_all();
    co_return absl::OkStatus();
  });
  ASSERT_TRUE(bus.subscribe("load.**", {}, Subscriber{mailbox, 0, nullptr}).ok());
  for (int i = 0; i < kEvents; ++i) ASSERT_TRUE(bus.publish(numbered("load.test", i)).ok());
  std::unique_lock lock(seen_mutex);
  ASSERT_TRUE(done.wait_for(lock, 20s, [&] { return seen.size() == kEvents; }));
  EXPECT_FALSE(overlapped.load());
  for (int i = 0; i < kEvents; ++i) ASSERT_EQ(seen[i], i);
}

TYPED_TEST(BusConformanceTest, HandlerThatSuspendsHoldsBackTheNextEvent) {
  Bus& bus = this->make_bus(4);
  std::mutex mutex;
  std::vector<std::string> log;
  std::condition_variable changed;
  auto mailbox = std::make_shared<Mailbox>(Mailbox::Options{.owner = "slow"}, bus.executor());
  auto executor = bus.executor();
  mailbox->set_dispatch([&, executor](const Delivery& d) -> Task<Status> {
    int n = d.event->data["n"].get<int>();
    {
      std::lock_guard lock(mutex);
      log.push_back(cat("begin ", n));
    }
    auto timer = std::make_shared<boost::asio::steady_timer>(executor, 30ms);
    auto awaiter = resume_with<bool>([timer](auto resume) {
      timer->async_wait([timer, resume](boost::system::error_code) { resume(true); });
    });
    co_await awaiter;
    std::lock_guard lock(mutex);
    log.push_back(cat("end ", n));
    changed.notify_all();
    co_return absl::OkStatus();
  });
  ASSERT_TRUE(bus.subscribe("work.item", {}, Subscriber{mailbox, 0, nullptr}).ok());
  bus.publish(numbered("work.item", 1)).IgnoreError();
  bus.publish(numbered("work.item", 2)).IgnoreError();
  std::unique_lock lock(mutex);
  ASSERT_TRUE(changed.wait_for(lock, 5s, [&] { return log.size() == 4; }));
  EXPECT_THAT(log, ElementsAre("begin 1", "end 1", "begin 2", "end 2"));
}

TYPED_TEST(BusConformanceTest, DropNewestRefusesAndCounts) {
  Bus& bus = this->make_bus(1);
  Recorder recorder;
  auto mailbox = recording_mailbox(
      bus, recorder, {.owner = "dn", .capacity = 4, .overflow = OverflowPolicy::kDropNewest});
  std::vector<std::string> dropped;
  std::mutex dropped_mutex;
  mailbox->set_drop_observer([&](const Delivery& d, std::string_view why) {
    std::lock_guard lock(dropped_mutex);
    dropped.push_back(cat(d.event->data["n"].get<int>(), ": ", why));
  });
  testing::sync_wait(bus.executor(), mailbox->pause());
  ASSERT_TRUE(bus.subscribe("q.x", {}, Subscriber{mailbox, 0, nullptr}).ok());
  for (int i = 0; i < 10; ++i) bus.publish(numbered("q.x", i)).IgnoreError();
  this->flush(bus);
  MailboxStats stats = mailbox->stats();
  EXPECT_EQ(stats.depth, 4u);
  EXPECT_EQ(stats.dropped_newest, 6u);
  EXPECT_EQ(bus.stats().refused, 6u);
  {
    std::lock_guard lock(dropped_mutex);
    ASSERT_EQ(dropped.size(), 6u);
    EXPECT_THAT(dropped[0], HasSubstr("4: mailbox full (policy drop_newest)"));
  }
  mailbox->resume();
  ASSERT_TRUE(recorder.wait_for(4));
  EXPECT_THAT(recorder.sequence, ElementsAre(0, 1, 2, 3));
}

TYPED_TEST(BusConformanceTest, DropOldestKeepsTheNewest) {
  Bus& bus = this->make_bus(1);
  Recorder recorder;
  auto mailbox = recording_mailbox(
      bus, recorder, {.owner = "do", .capacity = 3, .overflow = OverflowPolicy::kDropOldest});
  std::atomic<int> evicted{0};
  mailbox->set_drop_observer([&](const Delivery&, std::string_view) { ++evicted; });
  testing::sync_wait(bus.executor(), mailbox->pause());
  ASSERT_TRUE(bus.subscribe("q.x", {}, Subscriber{mailbox, 0, nullptr}).ok());
  for (int i = 0; i < 10; ++i) bus.publish(numbered("q.x", i)).IgnoreError();
  this->flush(bus);
  EXPECT_EQ(mailbox->stats().dropped_oldest, 7u);
  EXPECT_EQ(evicted.load(), 7);
  mailbox->resume();
  ASSERT_TRUE(recorder.wait_for(3));
  EXPECT_THAT(recorder.sequence, ElementsAre(7, 8, 9));
}

// With "wait", a full mailbox holds delivery back (the publisher in-process,
// the delivery thread with Redis) instead of dropping; nothing is lost.
TYPED_TEST(BusConformanceTest, WaitPolicyHoldsDeliveryUntilThereIsRoom) {
  Bus& bus = this->make_bus(2);
  Recorder recorder;
  auto mailbox = recording_mailbox(
      bus, recorder,
      {.owner = "w", .capacity = 2, .overflow = OverflowPolicy::kWait, .wait_timeout = 5s});
  testing::sync_wait(bus.executor(), mailbox->pause());
  ASSERT_TRUE(bus.subscribe("q.x", {}, Subscriber{mailbox, 0, nullptr}).ok());
  std::thread publisher([&] {
    for (int i = 0; i < 5; ++i) bus.publish(numbered("q.x", i)).IgnoreError();
  });
  auto end = std::chrono::steady_clock::now() + 5s;
  while (mailbox->stats().waited == 0 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(mailbox->stats().depth, 2u);
  EXPECT_GE(mailbox->stats().waited, 1u);
  mailbox->resume();
  publisher.join();
  ASSERT_TRUE(recorder.wait_for(5));
  EXPECT_THAT(recorder.sequence, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(mailbox->stats().dropped_newest, 0u);
}

// A responder module: answers every request with the doubled number.
std::shared_ptr<Mailbox> doubling_responder(Bus& bus) {
  auto mailbox = std::make_shared<Mailbox>(Mailbox::Options{.owner = "math"}, bus.executor());
  mailbox->set_dispatch([&bus](const Delivery& d) -> Task<Status> {
    int n = d.event->data["n"].get<int>();
    co_return bus.reply(*d.event, "math", Json{{"doubled", 2 * n}}).status();
  });
  return mailbox;
}

TYPED_TEST(BusConformanceTest, RequestReplyRoundTrip) {
  Bus& bus = this->make_bus(2);
  auto responder = doubling_responder(bus);
  ASSERT_TRUE(bus.subscribe("math.double", {}, Subscriber{responder, 0, nullptr}).ok());
  for (int i = 0; i < 100; ++i) {
    auto reply = testing::sync_wait(bus.executor(), bus.request(numbered("math.double", i), 2s));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ((*reply)->data["doubled"], 2 * i);
    EXPECT_EQ((*reply)->source, "math");
  }
  EXPECT_EQ(bus.stats().pending_requests, 0u);
}

TYPED_TEST(BusConformanceTest, RequestTimesOutWhenNobodyAnswers) {
  Bus& bus = this->make_bus(2);
  auto silent = std::make_shared<Mailbox>(Mailbox::Options{.owner = "silent"}, bus.executor());
  silent->set_dispatch([](const Delivery&) -> Task<Status> { co_return absl::OkStatus(); });
  ASSERT_TRUE(bus.subscribe("math.double", {}, Subscriber{silent, 0, nullptr}).ok());
  auto begin = std::chrono::steady_clock::now();
  auto reply = testing::sync_wait(bus.executor(), bus.request(numbered("math.double", 1), 50ms));
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 45ms);
  ASSERT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(message_of(reply.status())),
              HasSubstr("no reply to \"math.double\" within 50 ms"));
}

// Sends a request and hands its outcome to `outcome`.
Task<void> request_into(Bus& bus, Event event, std::chrono::milliseconds timeout,
                        std::shared_ptr<std::promise<absl::StatusCode>> outcome) {
  auto pending = bus.request(std::move(event), timeout);
  Result<EventPtr> reply = co_await std::move(pending);
  outcome->set_value(reply.status().code());
}

TYPED_TEST(BusConformanceTest, AShortTimeoutIsNotHeldUpByALongerOneSentBefore) {
  Bus& bus = this->make_bus(2);
  auto silent = std::make_shared<Mailbox>(Mailbox::Options{.owner = "silent"}, bus.executor());
  silent->set_dispatch([](const Delivery&) -> Task<Status> { co_return absl::OkStatus(); });
  ASSERT_TRUE(bus.subscribe("math.double", {}, Subscriber{silent, 0, nullptr}).ok());
  auto slow = std::make_shared<std::promise<absl::StatusCode>>();
  auto slow_outcome = slow->get_future();
  start_detached(request_into(bus, numbered("math.double", 1), 30s, slow),
                 [](std::exception_ptr) {});
  auto begin = std::chrono::steady_clock::now();
  auto reply = testing::sync_wait(bus.executor(), bus.request(numbered("math.double", 2), 50ms));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 5s) << "it waited for the 30 s request";
  EXPECT_EQ(slow_outcome.wait_for(0s), std::future_status::timeout) << "the 30 s one still waits";
  EXPECT_EQ(bus.stats().pending_requests, 1u);
}

TYPED_TEST(BusConformanceTest, RequestFailsFastWhenNoModuleHandlesTheChannel) {
  Bus& bus = this->make_bus(2);
  auto reply = testing::sync_wait(bus.executor(), bus.request(numbered("math.triple", 1), 5s));
  ASSERT_EQ(reply.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(message_of(reply.status())), HasSubstr("handles \"math.triple\""));
}

TYPED_TEST(BusConformanceTest, ReplyWithoutReplyToIsAnError) {
  Bus& bus = this->make_bus(1);
  EXPECT_EQ(bus.reply(numbered("math.double", 1), "math", Json::object()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TYPED_TEST(BusConformanceTest, ManyConcurrentRequestersGetTheirOwnReplies) {
  Bus& bus = this->make_bus(4);
  auto responder = doubling_responder(bus);
  ASSERT_TRUE(bus.subscribe("math.double", {}, Subscriber{responder, 0, nullptr}).ok());
  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        int n = t * 1000 + i;
        auto reply =
            testing::sync_wait(bus.executor(), bus.request(numbered("math.double", n), 5s));
        if (reply.ok() && (*reply)->data["doubled"] == 2 * n) ++correct;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(correct.load(), 800);
}

}  // namespace
}  // namespace lotus
