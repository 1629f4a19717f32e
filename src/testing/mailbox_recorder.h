// MailboxRecorder: a mailbox whose handler records what it handled, for bus
// and mailbox tests to wait on (by count) and inspect (channels, and the
// "n" of events made with numbered()).
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bus/bus.h"

namespace lotus::testing {

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
  bool wait_for(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return channels.size() >= count; });
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return channels.size();
  }
};

// A mailbox on `bus`'s pool that hands everything it handles to `recorder`.
inline std::shared_ptr<Mailbox> recording_mailbox(Bus& bus, Recorder& recorder,
                                                  Mailbox::Options options = {}) {
  if (options.owner.empty()) options.owner = "test";
  auto mailbox = std::make_shared<Mailbox>(options, bus.executor());
  mailbox->set_dispatch([&recorder](const Delivery& d) -> Task<Status> {
    recorder.add(*d.event);
    co_return absl::OkStatus();
  });
  return mailbox;
}

// An event on `channel` carrying {"n": n}.
inline Event numbered(std::string channel, int n) {
  return Event::make(std::move(channel), "tester", Json{{"n", n}});
}

}  // namespace lotus::testing
