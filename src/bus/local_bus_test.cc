#include "bus/local_bus.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/steady_timer.hpp>

#include "lotus/strings.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

// Collects what a mailbox handled, and lets a test wait for a count.
struct Recorder {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> channels;
  std::vector<int> sequence;

  void add(const Event& event) {
    std::lock_guard lock(mutex);
    channels.push_back(event.channel);
    if (event.data.contains("n")) sequence.push_back(event.data["n"].get<int>());
    changed.notify_all();
  }
  bool wait_for(size_t count, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return channels.size() >= count; });
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return channels.size();
  }
};

std::shared_ptr<Mailbox> recording_mailbox(LocalBus& bus, Recorder& recorder,
                                           Mailbox::Options options = {}) {
  if (options.owner.empty()) options.owner = "test";
  auto mailbox = std::make_shared<Mailbox>(options, bus.executor());
  mailbox->set_dispatch([&recorder](const Delivery& d) -> Task<Status> {
    recorder.add(*d.event);
    co_return absl::OkStatus();
  });
  return mailbox;
}

Event numbered(std::string channel, int n) {
  return Event::make(std::move(channel), "tester", Json{{"n", n}});
}

TEST(LocalBusTest, DeliversByPatternAndCountsUnrouted) {
  LocalBus bus(2);
  Recorder recorder;
  auto mailbox = recording_mailbox(bus, recorder);
  ASSERT_TRUE(bus.subscribe("perception.*", {}, Subscriber{mailbox, 0, nullptr}).ok());
  ASSERT_TRUE(bus.publish(numbered("perception.user_input", 1)).ok());
  ASSERT_TRUE(bus.publish(numbered("perception.file.changed", 2)).ok());  // two segments: no
  ASSERT_TRUE(bus.publish(numbered("cognition.decision", 3)).ok());
  ASSERT_TRUE(recorder.wait_for(1));
  std::this_thread::sleep_for(20ms);
  EXPECT_THAT(recorder.channels, ElementsAre("perception.user_input"));
  BusStats stats = bus.stats();
  EXPECT_EQ(stats.published, 3u);
  EXPECT_EQ(stats.delivered, 1u);
  EXPECT_EQ(stats.unrouted, 2u);
}

TEST(LocalBusTest, RejectsInvalidEventsWithReason) {
  LocalBus bus(1);
  auto result = bus.publish(Event::make("bad..channel", "tester"));
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(message_of(result.status())), HasSubstr("\"channel\""));
  auto no_source = bus.publish(Event::make("system.boot", ""));
  ASSERT_FALSE(no_source.ok());
  EXPECT_THAT(std::string(message_of(no_source.status())), HasSubstr("source"));
  EXPECT_FALSE(bus.subscribe("a.b*", {}, Subscriber{nullptr, 0, [](const EventPtr&) {}}).ok());
}

TEST(LocalBusTest, AppliesSubscriptionFilters) {
  LocalBus bus(2);
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
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(recorder.size(), 1u);
  EXPECT_EQ(bus.stats().filtered, 2u);
}

TEST(LocalBusTest, OneMailboxRunsHandlersInOrderAndNeverConcurrently) {
  LocalBus bus(4);
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
  ASSERT_TRUE(done.wait_for(lock, 10s, [&] { return seen.size() == kEvents; }));
  EXPECT_FALSE(overlapped.load());
  for (int i = 0; i < kEvents; ++i) ASSERT_EQ(seen[i], i);
}

TEST(LocalBusTest, HandlerThatSuspendsHoldsBackTheNextEvent) {
  LocalBus bus(4);
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

TEST(MailboxTest, DropNewestRefusesAndCounts) {
  LocalBus bus(1);
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
  MailboxStats stats = mailbox->stats();
  EXPECT_EQ(stats.depth, 4u);
  EXPECT_EQ(stats.dropped_newest, 6u);
  EXPECT_EQ(bus.stats().refused, 6u);
  ASSERT_EQ(dropped.size(), 6u);
  EXPECT_THAT(dropped[0], HasSubstr("4: mailbox full (policy drop_newest)"));
  mailbox->resume();
  ASSERT_TRUE(recorder.wait_for(4));
  EXPECT_THAT(recorder.sequence, ElementsAre(0, 1, 2, 3));
}

TEST(MailboxTest, DropOldestKeepsTheNewest) {
  LocalBus bus(1);
  Recorder recorder;
  auto mailbox = recording_mailbox(
      bus, recorder, {.owner = "do", .capacity = 3, .overflow = OverflowPolicy::kDropOldest});
  std::atomic<int> evicted{0};
  mailbox->set_drop_observer([&](const Delivery&, std::string_view) { ++evicted; });
  testing::sync_wait(bus.executor(), mailbox->pause());
  ASSERT_TRUE(bus.subscribe("q.x", {}, Subscriber{mailbox, 0, nullptr}).ok());
  for (int i = 0; i < 10; ++i) bus.publish(numbered("q.x", i)).IgnoreError();
  EXPECT_EQ(mailbox->stats().dropped_oldest, 7u);
  EXPECT_EQ(evicted.load(), 7);
  mailbox->resume();
  ASSERT_TRUE(recorder.wait_for(3));
  EXPECT_THAT(recorder.sequence, ElementsAre(7, 8, 9));
}

TEST(MailboxTest, WaitPolicyBlocksThePublisherUntilThereIsRoom) {
  LocalBus bus(2);
  Recorder recorder;
  auto mailbox = recording_mailbox(
      bus, recorder,
      {.owner = "w", .capacity = 2, .overflow = OverflowPolicy::kWait, .wait_timeout = 5s});
  testing::sync_wait(bus.executor(), mailbox->pause());
  ASSERT_TRUE(bus.subscribe("q.x", {}, Subscriber{mailbox, 0, nullptr}).ok());
  std::atomic<int> published{0};
  std::thread publisher([&] {
    for (int i = 0; i < 5; ++i) {
      bus.publish(numbered("q.x", i)).IgnoreError();
      ++published;
    }
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(published.load(), 2) << "the third publish must wait for room";
  mailbox->resume();
  publisher.join();
  ASSERT_TRUE(recorder.wait_for(5));
  EXPECT_THAT(recorder.sequence, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_GE(mailbox->stats().waited, 1u);
  EXPECT_EQ(mailbox->stats().dropped_newest, 0u);
}

TEST(MailboxTest, WaitPolicyGivesUpAfterTheTimeoutAndSaysSo) {
  LocalBus bus(1);
  Recorder recorder;
  auto mailbox = recording_mailbox(
      bus, recorder,
      {.owner = "w", .capacity = 1, .overflow = OverflowPolicy::kWait, .wait_timeout = 30ms});
  std::string why;
  mailbox->set_drop_observer([&](const Delivery&, std::string_view reason) { why = reason; });
  testing::sync_wait(bus.executor(), mailbox->pause());
  EXPECT_TRUE(mailbox->push(Delivery{std::make_shared<Event>(numbered("q.x", 0)), 0}));
  EXPECT_FALSE(mailbox->push(Delivery{std::make_shared<Event>(numbered("q.x", 1)), 0}));
  EXPECT_EQ(mailbox->stats().dropped_newest, 1u);
  EXPECT_THAT(why, HasSubstr("wait_timeout"));
}

TEST(MailboxTest, DrainAndCloseHandlesWhatIsQueuedThenRefuses) {
  LocalBus bus(2);
  Recorder recorder;
  auto mailbox = recording_mailbox(bus, recorder);
  testing::sync_wait(bus.executor(), mailbox->pause());
  for (int i = 0; i < 50; ++i) {
    mailbox->push(Delivery{std::make_shared<Event>(numbered("q.x", i)), 0});
  }
  size_t left = testing::sync_wait(bus.executor(),
                                   mailbox->drain_and_close(std::chrono::steady_clock::now() + 5s));
  EXPECT_EQ(left, 0u);
  EXPECT_EQ(recorder.size(), 50u);
  EXPECT_FALSE(mailbox->push(Delivery{std::make_shared<Event>(numbered("q.x", 99)), 0}));
  EXPECT_EQ(mailbox->stats().dropped_newest, 1u);
}

TEST(MailboxTest, ParsesOverflowPolicies) {
  EXPECT_EQ(*parse_overflow_policy("drop_oldest"), OverflowPolicy::kDropOldest);
  EXPECT_EQ(to_string(OverflowPolicy::kWait), "wait");
  EXPECT_THAT(std::string(message_of(parse_overflow_policy("spill").status())),
              HasSubstr("expected wait, drop_oldest or drop_newest"));
}

// A responder module: answers every request with the doubled number.
std::shared_ptr<Mailbox> doubling_responder(LocalBus& bus) {
  auto mailbox = std::make_shared<Mailbox>(Mailbox::Options{.owner = "math"}, bus.executor());
  mailbox->set_dispatch([&bus](const Delivery& d) -> Task<Status> {
    int n = d.event->data["n"].get<int>();
    co_return bus.reply(*d.event, "math", Json{{"doubled", 2 * n}}).status();
  });
  return mailbox;
}

TEST(RequestReplyTest, RoundTrip) {
  LocalBus bus(2);
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

TEST(RequestReplyTest, TimesOutWhenNobodyAnswers) {
  LocalBus bus(2);
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

TEST(RequestReplyTest, FailsFastWhenNoModuleHandlesTheChannel) {
  LocalBus bus(2);
  auto reply = testing::sync_wait(bus.executor(), bus.request(numbered("math.triple", 1), 5s));
  ASSERT_EQ(reply.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(message_of(reply.status())),
              HasSubstr("no module handles \"math.triple\""));
}

TEST(RequestReplyTest, ReplyWithoutReplyToIsAnError) {
  LocalBus bus(1);
  EXPECT_EQ(bus.reply(numbered("math.double", 1), "math", Json::object()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(RequestReplyTest, ManyConcurrentRequestersGetTheirOwnReplies) {
  LocalBus bus(4);
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
