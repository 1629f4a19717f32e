// What only the in-process bus and the mailbox promise; the behaviour every
// backend shares is in bus_conformance_test.cc.
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

}  // namespace
}  // namespace lotus
