// What only the in-process bus and the mailbox promise; the behaviour every
// backend shares is in bus_conformance_test.cc.
#include "bus/local_bus.h"

#include <array>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bus/continuation.h"
#include "lotus/strings.h"
#include "testing/mailbox_recorder.h"
#include "testing/sync_wait.h"

namespace lotus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

using testing::numbered;
using testing::Recorder;
using testing::recording_mailbox;

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

// A request sent from a pool thread that allows continuations (it will only
// wait for the reply) is handled on that thread after it returns, and the
// reply resumes the sender there too: no other thread is woken.
// Services skip records nobody would read (the tool broker's audit events):
// the bus says whether anything, a pattern included, subscribes now.
TEST(LocalBusTest, HasAnAudienceOnlyWhileSomethingSubscribes) {
  LocalBus bus(1);
  EXPECT_FALSE(bus.has_audience("action_log"));
  Subscriber tap;
  tap.tap = [](const EventPtr&) {};
  auto id = bus.subscribe("action.*", SubscriptionFilter(), tap);
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(bus.has_audience("action.tool_result"));
  EXPECT_FALSE(bus.has_audience("action_log"));
  EXPECT_FALSE(bus.has_audience("perception.tool_result"));
  ASSERT_TRUE(bus.unsubscribe(*id));
  EXPECT_FALSE(bus.has_audience("action.tool_result"));
}

TEST(ContinuationTest, RequestAndReplyStayOnTheSendersThread) {
  // Idle threads sleep at once here: a thread still awake in its idle window
  // may take a continuation over (no wake-up to save then), so the thread a
  // continuation runs on is only certain without the window.
  LocalBus bus(4, std::chrono::microseconds(0));
  std::mutex mutex;
  std::thread::id handled_on;
  auto mailbox = std::make_shared<Mailbox>(Mailbox::Options{.owner = "echo"}, bus.executor());
  mailbox->set_dispatch([&](const Delivery& d) -> Task<Status> {
    {
      std::lock_guard lock(mutex);
      handled_on = std::this_thread::get_id();
    }
    co_return bus.reply(*d.event, "echo", d.event->data).status();
  });
  Subscriber subscriber;
  subscriber.mailbox = mailbox;
  ASSERT_TRUE(bus.subscribe("svc.echo", SubscriptionFilter(), subscriber).ok());

  // The first rounds may meet pool threads still starting (a thread that
  // enters its loop takes whatever is queued): they run, but are not judged.
  constexpr int kWarmUp = 2;
  for (int round = -kWarmUp; round < 20; ++round) {
    std::promise<std::array<std::thread::id, 3>> threads;
    boost::asio::post(bus.executor(), [&] {
      ContinuationScope scope;
      start_detached(
          [](LocalBus* b, std::promise<std::array<std::thread::id, 3>>* out, std::mutex* m,
             std::thread::id* handled) -> Task<void> {
            const std::thread::id sender = std::this_thread::get_id();
            auto pending = b->request(Event::make("svc.echo", "tester", Json{{"n", 1}}), 5s);
            Result<EventPtr> reply = co_await std::move(pending);
            EXPECT_TRUE(reply.ok()) << reply.status();
            std::lock_guard lock(*m);
            out->set_value({sender, *handled, std::this_thread::get_id()});
          }(&bus, &threads, &mutex, &handled_on),
          [](std::exception_ptr) {});
    });
    auto got = threads.get_future();
    ASSERT_EQ(got.wait_for(5s), std::future_status::ready) << "round " << round;
    auto [sender, handler, resumed] = got.get();
    if (round < 0) continue;
    EXPECT_EQ(handler, sender) << "round " << round;
    EXPECT_EQ(resumed, sender) << "round " << round;
  }
}

// A thread whose continuation is a mailbox's drain cannot wait for that
// mailbox to make room (the drain starts only once the thread returns): its
// deliveries are admitted past capacity and counted, not stalled and dropped.
TEST(ContinuationTest, AThreadHoldingTheDrainIsNotMadeToWaitForRoom) {
  LocalBus bus(2);
  Recorder recorder;
  Mailbox::Options options;
  options.capacity = 4;
  options.wait_timeout = 3s;
  auto mailbox = recording_mailbox(bus, recorder, options);
  std::promise<double> pushed;
  boost::asio::post(bus.executor(), [&] {
    ContinuationScope scope;
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 12; ++i) {
      EXPECT_TRUE(mailbox->push(Delivery{std::make_shared<Event>(numbered("t", i)), 0}));
    }
    pushed.set_value(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  });
  auto took = pushed.get_future();
  ASSERT_EQ(took.wait_for(10s), std::future_status::ready);
  EXPECT_LT(took.get(), 1.0);
  ASSERT_TRUE(recorder.wait_for(12));
  std::lock_guard lock(recorder.mutex);
  EXPECT_EQ(recorder.sequence, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_GE(mailbox->stats().over_capacity, 8u);
}

TEST(MailboxTest, ParsesOverflowPolicies) {
  EXPECT_EQ(*parse_overflow_policy("drop_oldest"), OverflowPolicy::kDropOldest);
  EXPECT_EQ(to_string(OverflowPolicy::kWait), "wait");
  EXPECT_THAT(std::string(message_of(parse_overflow_policy("spill").status())),
              HasSubstr("expected wait, drop_oldest or drop_newest"));
}

}  // namespace
}  // namespace lotus
