// RedisBus: the bus over Redis, for several LOTUS processes (nodes) on one
// Redis; modules see the same Bus contract as with LocalBus.
//
// Events go out with PUBLISH on "<prefix>:ev:<channel>" over a pipelined
// command connection. Each subscription pattern maps to a Redis glob that
// matches a superset of its channels (PSUBSCRIBE, reference-counted); the
// local TopicTrie then decides exactly, so "*" and "**" mean what they mean
// in-process. A pmessage is delivered only to the routes of the glob it came
// through, so overlapping globs never deliver twice. Every node delivers its
// own events through Redis too: one path, one order.
//
// Nodes announce themselves (system.node_joined), heartbeat on
// "<prefix>:ctl:nodes" with their subscription patterns, and are declared
// gone (system.node_left) on leave or silence. The patterns tell a publisher
// whether anyone anywhere subscribes, which is what lets a request to a tool
// on another node be routed, and a request nobody handles fail fast.
//
// A request runs once per module, not once per node: the caller picks, for
// each module whose handlers match the channel, one node (its own when it
// runs the module, else the least recently used of the nodes announcing it)
// and names the choice in metadata.route ({module: node}); other nodes'
// instances skip it. If a chosen node leaves or goes silent before the
// reply, the request fails at once (Unavailable, naming the node) instead of
// at its timeout: it is not sent again, since it may have run there.
//
// Redis I/O runs on two io threads of its own: commands on one, the
// subscriber connection (delivery, which may wait for a full mailbox) on the
// other; handlers run on the bus's pool and never block either.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "bus/bus.h"
#include "bus/io_thread.h"
#include "bus/pending_requests.h"
#include "bus/redis_connection.h"
#include "bus/topic_trie.h"
#include "bus/worker_threads.h"
#include "core/periodic_timer.h"

namespace lotus {

class RedisStreams;

struct RedisBusOptions {
  std::string url = "redis://127.0.0.1:6379";
  size_t threads = 0;  // handler threads; 0 = one per hardware thread
  std::chrono::microseconds idle_spin = kDefaultIdleSpin;  // see bus/worker_threads.h
  std::string prefix = "lotus";
  std::string node_id;  // empty: <hostname>-<pid>-<random>
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds node_timeout{5000};  // silent this long: declared gone
  std::chrono::milliseconds connect_timeout{2000};
  size_t max_buffered = 100000;  // commands held while Redis is unreachable

  // Channels bound to streams, and how streams are kept and consumed.
  std::vector<std::string> stream_channels = {"conversation_stream", "action_log",
                                              "memory_updates"};
  // Stream channels every node reads in full: a module's consumer group is
  // per node ("<module>@<node>"), not shared by its instances. memory_updates
  // is one, so each node's memory keeps its index in step. Config:
  // `redis.streams: {<channel>: {group: per_node | shared}}`.
  std::set<std::string> per_node_streams = {"memory_updates"};
  int64_t stream_maxlen = 1'000'000;            // XADD MAXLEN ~ (0: no length cap)
  std::chrono::milliseconds stream_max_age{0};  // XADD MINID ~ now - age (0: off)
  std::chrono::milliseconds claim_idle{30000};  // reclaim pending entries idle this long
  size_t read_count = 256;                      // entries per XREADGROUP
  std::chrono::hours dedupe_ttl{24};            // how long handled ids are remembered

  // Parses the `redis:` config section (JSON object); unknown keys are errors.
  static Result<RedisBusOptions> from_config(std::string url, const Json& section);
};

struct RedisBusStats {
  uint64_t publish_failed = 0;    // PUBLISH/XADD that Redis did not accept
  uint64_t bad_messages = 0;      // payloads that were not a valid event
  uint64_t routed_elsewhere = 0;  // requests skipped here: another node's instance runs them
  uint64_t stream_added = 0;
  uint64_t stream_add_failed = 0;
  uint64_t stream_handled = 0;
  uint64_t stream_acked = 0;
  uint64_t stream_failed = 0;      // handler failed or delivery refused: left pending
  uint64_t stream_duplicates = 0;  // redeliveries of an id already handled: acked, skipped
  uint64_t stream_claimed = 0;     // entries taken over from an idle consumer
  size_t peers = 0;
  RedisConnectionStats commands;
  RedisConnectionStats subscriber;
};

class RedisBus final : public Bus {
 public:
  // The metadata key naming which node handles a request, per module.
  static constexpr const char* kRouteKey = "route";

  // Connects and joins; the error names the URL when Redis is unreachable.
  static Result<std::unique_ptr<RedisBus>> connect(RedisBusOptions options);
  ~RedisBus() override;

  Result<size_t> publish(Event event) override;
  Result<SubscriptionId> subscribe(std::string_view pattern, SubscriptionFilter filter,
                                   Subscriber subscriber) override;
  bool unsubscribe(SubscriptionId id) override;
  Task<Result<EventPtr>> request(Event event, std::chrono::milliseconds timeout) override;
  Result<size_t> reply(const Event& request, std::string source, Json reply_data) override;
  BusStats stats() const override;
  Json backend_health() const override;
  boost::asio::any_io_executor executor() override { return pool_.get_executor(); }
  void stop() override;

  RedisBusStats redis_stats() const;
  const std::string& node_id() const override { return node_id_; }
  bool replies_here(std::string_view reply_to) const override { return reply_to == reply_channel_; }
  const RedisBusOptions& options() const { return options_; }
  // Nodes this one currently knows of (itself excluded).
  std::vector<std::string> peers() const;
  bool is_stream_channel(std::string_view channel) const;
  bool is_per_node_stream(std::string_view channel) const {
    return options_.per_node_streams.count(std::string(channel)) > 0;
  }
  // Subscriptions matching `channel` on this node and, as last announced, on
  // its peers: what publish() returns.
  size_t known_receivers(std::string_view channel) const;

 private:
  friend class RedisStreams;
  struct Route {
    SubscriptionFilter filter;
    Subscriber subscriber;
    std::string glob;
    std::string pattern;
  };
  struct Peer {
    TopicTrie<std::string> handlers;  // module handler patterns, valued by module
    Json handler_list;                // as announced: {module: [patterns]}
    TopicTrie<int> patterns;
    std::vector<std::string> pattern_list;
    TopicTrie<int> taps;  // patterns of its taps (live tails), a subset
    std::vector<std::string> tap_list;
    std::chrono::steady_clock::time_point last_seen;
    Json info;
  };

  explicit RedisBus(RedisBusOptions options);
  Status start();
  std::string glob_for(std::string_view pattern) const;
  std::string event_key(std::string_view channel) const;
  void on_push(RedisReply&& message);
  // publish(); with `only_if_routed`, an event for a live channel that no
  // known subscription matches is not sent (counted unrouted, 0 returned).
  Result<size_t> send(Event event, bool only_if_routed);
  // known_receivers(); and with `tap_wanted`, whether a tap here or on a
  // peer matches `channel` (one pass for both, on every publish).
  size_t count_receivers(std::string_view channel, bool* tap_wanted) const;
  void deliver(const std::string& glob, const std::string& payload);
  void on_reply(const EventPtr& event);
  void on_control(const std::string& payload);
  Json announcement(std::string_view op) const;
  void heartbeat();
  void announce_soon();
  void forget_peer(const std::string& node, std::string_view reason);
  // For a request on `channel`: module -> the node chosen to handle it.
  std::map<std::string, std::string> choose_handlers(std::string_view channel);
  // Fails the pending requests routed to `node`, which is gone.
  void fail_requests_to(const std::string& node, std::string_view why);
  Status wait_for(RedisConnection& connection, const RedisConnection::Args& args);

  const RedisBusOptions options_;
  std::string node_id_;
  WorkerThreads pool_;
  IoThread command_io_;
  IoThread subscriber_io_;
  std::shared_ptr<RedisConnection> command_;
  std::shared_ptr<RedisConnection> subscriber_;
  std::unique_ptr<RedisStreams> streams_;

  mutable std::shared_mutex routes_mutex_;
  TopicTrie<std::shared_ptr<const Route>> routes_;
  std::unordered_map<SubscriptionId, std::shared_ptr<const Route>> by_id_;
  std::map<std::string, int> globs_;  // glob -> routes using it

  mutable std::mutex peers_mutex_;
  std::map<std::string, Peer> peers_;
  // When a module's instance on a node was last chosen for a request
  // ("module\nnode" -> tick), with peers_mutex_.
  std::unordered_map<std::string, uint64_t> last_chosen_;
  uint64_t choice_tick_ = 0;

  std::string reply_channel_;
  SubscriptionId reply_subscription_ = 0;
  PendingRequests pending_{pool_.get_executor()};

  std::shared_ptr<PeriodicTimer> heartbeat_timer_;
  std::atomic<bool> announce_queued_{false};
  std::atomic<bool> stopped_{false};

  // The last payload parsed by the delivery thread: one event that arrives
  // through several globs is parsed once.
  std::string last_payload_;
  EventPtr last_event_;

  BusCounters counters_;
  std::atomic<uint64_t> routed_elsewhere_{0};  // requests another node's instance handles
  std::atomic<uint64_t> publish_failed_{0};
  std::atomic<uint64_t> bad_messages_{0};
};

}  // namespace lotus
