// RedisStreams: the durable half of RedisBus. Channels bound to a stream
// ("<prefix>:stream:<channel>") are written with XADD (MAXLEN ~ or MINID ~
// retention) and consumed through consumer groups: one group per module
// (the mailbox owner), one consumer per node, so two instances of a module
// on two nodes share the work and different modules each get everything.
//
// An entry is acknowledged (XACK) only after every handler it went to
// succeeded; a failed or dropped one stays pending. Pending entries idle for
// claim_idle (a dead consumer's, or a failed handler's) are taken over with
// XAUTOCLAIM and delivered again. Handled ids are remembered (in this node
// and in Redis, for dedupe_ttl), so a redelivered entry whose handler already
// finished is acknowledged without running it twice, and counted.
//
// Reading is windowed: a group reads its next batch only when fewer than
// read_count entries are still with its handlers, so a slow module slows its
// reads instead of filling its mailbox or blocking the io thread.
//
// A channel the options name per-node (memory_updates by default) is read
// by a group per module and node ("<module>@<node>"), so every node's module
// sees every entry; such a group starts at the stream's end when first made
// (a new node reads what comes after it joined), and goes away with a node
// whose id was generated (it never comes back).
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "bus/bus.h"
#include "bus/redis_connection.h"
#include "core/periodic_timer.h"

namespace lotus {

class RedisBus;

class RedisStreams {
 public:
  struct Counters {
    std::atomic<uint64_t> added{0};
    std::atomic<uint64_t> add_failed{0};  // XADD not acknowledged (link dropped meanwhile)
    std::atomic<uint64_t> handled{0};
    std::atomic<uint64_t> acked{0};
    std::atomic<uint64_t> failed{0};
    std::atomic<uint64_t> duplicates{0};
    std::atomic<uint64_t> claimed{0};
  };

  explicit RedisStreams(RedisBus& bus);
  ~RedisStreams();

  std::string stream_key(std::string_view channel) const;
  // XADD of a validated event to its channel's stream.
  void add(const Event& event, std::string_view payload);

  // A mailbox route on a pattern that matches stream channels: its module's
  // group starts reading them. The route is keyed by the bus's subscription id.
  void attach(SubscriptionId id, std::string_view pattern, const SubscriptionFilter& filter,
              const Subscriber& subscriber);
  void detach(SubscriptionId id);
  // Stops reading; with `destroy_per_node` also removes this node's
  // per-node groups from Redis. Safe to call twice.
  void stop(bool destroy_per_node = false);
  // Removes the per-node groups of `node` (gone for good) from Redis.
  void destroy_node_groups(const std::string& node);

  const Counters& counters() const { return counters_; }

 private:
  class Group;

  RedisBus& bus_;
  Counters counters_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Group>> groups_;  // by module name
  std::map<SubscriptionId, std::vector<std::string>> group_of_;
  bool stopped_ = false;
};

}  // namespace lotus
