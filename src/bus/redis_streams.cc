#include "bus/redis_streams.h"

#include <charconv>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bus/redis_bus.h"
#include "bus/topic_trie.h"
#include "lotus/strings.h"

namespace lotus {
namespace {

constexpr size_t kRememberedIds = 100000;  // handled ids kept in memory per group
constexpr const char* kBlockMs = "1000";

}  // namespace

class RedisStreams::Group : public std::enable_shared_from_this<Group> {
 public:
  struct Route {
    std::string pattern;
    SubscriptionFilter filter;
    Subscriber subscriber;
    std::vector<std::string> streams;
  };

  // `per_node`: this node's own group ("<module>@<node>"), made at the
  // stream's end; otherwise the module's group shared by its instances,
  // made at the start of what the stream retains.
  Group(RedisStreams& owner, std::string name, bool own)
      : owner_(owner),
        name_(std::move(name)),
        start_id_(own ? "$" : "0"),
        per_node_(own),
        retry_timer_(owner.bus_.command_io_.context()) {}

  const std::string& name() const { return name_; }
  bool per_node() const { return per_node_; }
  std::vector<std::string> stream_keys() {
    std::lock_guard lock(mutex_);
    return {streams_.begin(), streams_.end()};
  }

  Status start() {
    RedisBus& bus = owner_.bus_;
    RedisConnection::Options options;
    options.address = bus.command_->address();
    options.connect_timeout = bus.options_.connect_timeout;
    options.client_name = cat("lotus-", bus.node_id_, "-group-", name_);
    reader_ = RedisConnection::create(bus.command_io_.context(), options);
    if (Status s = reader_->connect(); !s.ok()) return s;
    const auto interval = std::max(std::chrono::milliseconds(50), bus.options_.claim_idle / 2);
    auto weak = std::weak_ptr<Group>(shared_from_this());
    claim_timer_ = PeriodicTimer::start(bus.pool_.get_executor(), interval, [weak] {
      if (auto self = weak.lock()) self->claim();
    });
    return absl::OkStatus();
  }

  // Creates the group on each new stream (a shared group from the start of
  // what the stream retains, so nothing written before the first subscriber
  // is missed).
  void add_route(SubscriptionId id, Route route) {
    std::vector<std::string> fresh;
    {
      std::lock_guard lock(mutex_);
      for (const auto& stream : route.streams) {
        if (streams_.insert(stream).second) fresh.push_back(stream);
      }
      routes_.emplace(id, std::move(route));
    }
    RedisBus& bus = owner_.bus_;
    for (const auto& stream : fresh) {
      Status s =
          bus.wait_for(*bus.command_, {"XGROUP", "CREATE", stream, name_, start_id_, "MKSTREAM"});
      if (!s.ok() && message_of(s).find("BUSYGROUP") == std::string_view::npos) {
        spdlog::warn("creating consumer group {} on {}: {}", name_, stream, message_of(s));
      }
    }
    bool start_reading = false;
    {
      std::lock_guard lock(mutex_);
      if (!reading_ && !stopped_) {
        reading_ = true;
        start_reading = true;
      }
    }
    if (start_reading) {
      auto self = shared_from_this();
      boost::asio::post(bus.command_io_.context(), [self] { self->read(); });
    }
  }

  // Returns true when the group has no routes left.
  bool remove_route(SubscriptionId id) {
    std::lock_guard lock(mutex_);
    routes_.erase(id);
    return routes_.empty();
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    if (claim_timer_) claim_timer_->stop();
    if (reader_) reader_->close();
    auto self = shared_from_this();
    boost::asio::post(owner_.bus_.command_io_.context(), [self] { self->retry_timer_.cancel(); });
  }

 private:
  void read() {
    std::vector<std::string> streams;
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      if (outstanding_ >= owner_.bus_.options_.read_count) {
        reading_ = false;  // resumed by finish() once the window opens
        return;
      }
      streams.assign(streams_.begin(), streams_.end());
    }
    RedisBus& bus = owner_.bus_;
    RedisConnection::Args args = {"XREADGROUP", "GROUP",  name_,
                                  bus.node_id_, "COUNT",  std::to_string(bus.options_.read_count),
                                  "BLOCK",      kBlockMs, "STREAMS"};
    for (const auto& s : streams) args.push_back(s);
    for (size_t i = 0; i < streams.size(); ++i) args.push_back(">");
    auto self = shared_from_this();
    reader_->send(args, [self](Result<RedisReply> reply) {
      if (!reply.ok()) {
        if (message_of(reply.status()).find("NOGROUP") != std::string_view::npos) {
          self->recreate_groups();
        }
        if (reply.status().code() == absl::StatusCode::kCancelled) return;  // closed
        // Link down (the retry waits in the connection's buffer until it is
        // back) or a Redis error: try again shortly rather than spin.
        self->retry_timer_.expires_after(std::chrono::milliseconds(100));
        self->retry_timer_.async_wait([self](boost::system::error_code ec) {
          if (!ec) self->read();
        });
        return;
      }
      if (reply->is_array()) {
        for (auto& stream : reply->elements) {
          if (stream.elements.size() != 2) continue;
          self->handle_entries(stream.elements[0].str, stream.elements[1].elements, false);
        }
      }
      self->read();
    });
  }

  void recreate_groups() {
    std::vector<std::string> streams;
    {
      std::lock_guard lock(mutex_);
      streams.assign(streams_.begin(), streams_.end());
    }
    for (const auto& stream : streams) {
      owner_.bus_.command_->send({"XGROUP", "CREATE", stream, name_, start_id_, "MKSTREAM"},
                                 nullptr);
    }
  }

  void claim() {
    std::vector<std::string> streams;
    {
      std::lock_guard lock(mutex_);
      if (stopped_ || outstanding_ >= owner_.bus_.options_.read_count) return;
      streams.assign(streams_.begin(), streams_.end());
    }
    for (const auto& stream : streams) claim_from(stream, "0-0", 0);
  }

  void claim_from(const std::string& stream, const std::string& start, int round) {
    RedisBus& bus = owner_.bus_;
    auto self = shared_from_this();
    bus.command_->send(
        {"XAUTOCLAIM", stream, name_, bus.node_id_, std::to_string(bus.options_.claim_idle.count()),
         start, "COUNT", std::to_string(bus.options_.read_count)},
        [self, stream, round](Result<RedisReply> reply) {
          if (!reply.ok() || !reply->is_array() || reply->elements.size() < 2) return;
          const std::string next = reply->elements[0].str;
          if (!reply->elements[1].elements.empty()) {
            self->handle_entries(stream, reply->elements[1].elements, true);
          }
          if (next != "0-0" && round < 16) self->claim_from(stream, next, round + 1);
        });
  }

  void handle_entries(const std::string& stream, std::vector<RedisReply>& entries,
                      bool redelivery) {
    for (auto& entry : entries) handle_entry(stream, entry, redelivery);
  }

  void handle_entry(const std::string& stream, RedisReply& entry, bool redelivery) {
    if (entry.elements.size() != 2) return;
    const std::string entry_id = entry.elements[0].str;
    const std::string* payload = nullptr;
    const auto& fields = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < fields.size(); i += 2) {
      if (fields[i].str == "event") payload = &fields[i + 1].str;
    }
    RedisBus& bus = owner_.bus_;
    if (payload == nullptr) {
      ack(stream, entry_id);  // trimmed away meanwhile, or not ours: nothing to run
      return;
    }
    auto parsed = event_from_json_text(*payload);
    if (!parsed.ok()) {
      bus.bad_messages_.fetch_add(1, std::memory_order_relaxed);
      ack(stream, entry_id);
      return;
    }
    auto event = std::make_shared<const Event>(*std::move(parsed));
    const std::string event_id = event->id.to_string();
    {
      std::lock_guard lock(mutex_);
      if (in_progress_.count(entry_id) > 0) return;  // still with a handler here
      if (remembered_.count(event_id) > 0) {
        owner_.counters_.duplicates.fetch_add(1, std::memory_order_relaxed);
        // Handled here already; the marker may have been lost with a Redis
        // crash (with the ack), so it is set again for the other nodes.
        mark_done(event_id);
        ack(stream, entry_id);
        return;
      }
      in_progress_.insert(entry_id);
      ++outstanding_;
    }
    if (!redelivery) {
      dispatch(stream, entry_id, event);
      return;
    }
    owner_.counters_.claimed.fetch_add(1, std::memory_order_relaxed);
    // Another node may have run it and died before acknowledging.
    auto self = shared_from_this();
    bus.command_->send({"EXISTS", done_key(event_id)},
                       [self, stream, entry_id, event](Result<RedisReply> reply) {
                         if (reply.ok() && reply->integer == 1) {
                           self->owner_.counters_.duplicates.fetch_add(1);
                           self->finish(stream, entry_id, event->id.to_string(), true, false);
                           return;
                         }
                         self->dispatch(stream, entry_id, event);
                       });
  }

  void dispatch(const std::string& stream, const std::string& entry_id, const EventPtr& event) {
    std::vector<Subscriber> targets;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [id, route] : routes_) {
        if (!pattern_matches(route.pattern, event->channel)) continue;
        if (!route.filter.empty() && !route.filter.matches(event->data)) continue;
        targets.push_back(route.subscriber);
      }
    }
    if (targets.empty()) {
      finish(stream, entry_id, event->id.to_string(), true, false);
      return;
    }
    struct Join {
      std::atomic<size_t> remaining;
      std::atomic<bool> failed{false};
    };
    auto join = std::make_shared<Join>();
    join->remaining = targets.size();
    auto self = shared_from_this();
    const std::string event_id = event->id.to_string();
    for (const auto& target : targets) {
      Delivery delivery{event, target.slot, nullptr};
      delivery.on_done = [self, join, stream, entry_id, event_id](const Status& status) {
        if (!status.ok()) join->failed = true;
        if (join->remaining.fetch_sub(1) == 1) {
          self->finish(stream, entry_id, event_id, !join->failed.load(), true);
        }
      };
      target.mailbox->push(std::move(delivery));
    }
  }

  // `ran`: a handler ran (false when skipped as a duplicate or unrouted).
  void finish(const std::string& stream, const std::string& entry_id, const std::string& event_id,
              bool ok, bool ran) {
    RedisBus& bus = owner_.bus_;
    bool resume = false;
    {
      std::lock_guard lock(mutex_);
      in_progress_.erase(entry_id);
      --outstanding_;
      if (ok) {
        if (remembered_.insert(event_id).second) {
          remembered_order_.push_back(event_id);
          if (remembered_order_.size() > kRememberedIds) {
            remembered_.erase(remembered_order_.front());
            remembered_order_.pop_front();
          }
        }
      }
      if (!reading_ && !stopped_ && outstanding_ < bus.options_.read_count) {
        reading_ = true;
        resume = true;
      }
    }
    if (ok) {
      if (ran) {
        owner_.counters_.handled.fetch_add(1, std::memory_order_relaxed);
        mark_done(event_id);
      }
      ack(stream, entry_id);
    } else {
      // Left pending: claimed again once idle for claim_idle.
      owner_.counters_.failed.fetch_add(1, std::memory_order_relaxed);
    }
    if (resume) {
      auto self = shared_from_this();
      boost::asio::post(bus.command_io_.context(), [self] { self->read(); });
    }
  }

  // Tells every node the event's handler finished (for dedupe_ttl).
  void mark_done(const std::string& event_id) {
    RedisBus& bus = owner_.bus_;
    const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(bus.options_.dedupe_ttl);
    bus.command_->send({"SET", done_key(event_id), "1", "PX", std::to_string(ttl.count())},
                       nullptr);
  }

  void ack(const std::string& stream, const std::string& entry_id) {
    auto* counters = &owner_.counters_;
    owner_.bus_.command_->send({"XACK", stream, name_, entry_id},
                               [counters](Result<RedisReply> reply) {
                                 if (reply.ok() && reply->integer == 1)
                                   counters->acked.fetch_add(1);
                               });
  }

  std::string done_key(const std::string& event_id) const {
    return cat(owner_.bus_.options_.prefix, ":done:", name_, ":", event_id);
  }

  RedisStreams& owner_;
  const std::string name_;
  const std::string start_id_;
  const bool per_node_;
  std::shared_ptr<RedisConnection> reader_;
  std::shared_ptr<PeriodicTimer> claim_timer_;
  boost::asio::steady_timer retry_timer_;  // command io thread only

  std::mutex mutex_;
  std::map<SubscriptionId, Route> routes_;
  std::set<std::string> streams_;
  std::set<std::string> in_progress_;  // entry ids with a handler now
  std::unordered_set<std::string> remembered_;
  std::deque<std::string> remembered_order_;
  size_t outstanding_ = 0;
  bool reading_ = false;
  bool stopped_ = false;
};

RedisStreams::RedisStreams(RedisBus& bus) : bus_(bus) {}

RedisStreams::~RedisStreams() { stop(); }

std::string RedisStreams::stream_key(std::string_view channel) const {
  return cat(bus_.options_.prefix, ":stream:", channel);
}

void RedisStreams::add(const Event& event, std::string_view payload) {
  // Formatted straight into one buffer: this is the publish path.
  const RedisBusOptions& options = bus_.options_;
  std::string command;
  command.reserve(payload.size() + options.prefix.size() + event.channel.size() + 96);
  const bool by_age = options.stream_max_age.count() > 0;
  const bool by_length = !by_age && options.stream_maxlen > 0;
  RedisConnection::append_array_header(command, by_age || by_length ? 8 : 5);
  RedisConnection::append_argument(command, "XADD");
  {  // the key, "<prefix>:stream:<channel>", without a string of its own
    char header[24] = {'$'};
    const size_t size = options.prefix.size() + 8 + event.channel.size();
    char* end = std::to_chars(header + 1, header + sizeof header, size).ptr;
    command.append(header, end);
    command += "\r\n";
    command += options.prefix;
    command += ":stream:";
    command += event.channel;
    command += "\r\n";
  }
  if (by_age) {
    const auto cutoff =
        static_cast<int64_t>(event.timestamp * 1000) - options.stream_max_age.count();
    RedisConnection::append_argument(command, "MINID");
    RedisConnection::append_argument(command, "~");
    RedisConnection::append_argument(command, cat(std::max<int64_t>(cutoff, 0), "-0"));
  } else if (by_length) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, options.stream_maxlen).ptr;
    RedisConnection::append_argument(command, "MAXLEN");
    RedisConnection::append_argument(command, "~");
    RedisConnection::append_argument(command, std::string_view(digits, end - digits));
  }
  RedisConnection::append_argument(command, "*");
  RedisConnection::append_argument(command, "event");
  RedisConnection::append_argument(command, payload);
  RedisBus* bus = &bus_;
  Counters* counters = &counters_;
  bus_.command_->send_formatted(command, [bus, counters](Result<RedisReply> reply) {
    if (reply.ok()) {
      counters->added.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters->add_failed.fetch_add(1, std::memory_order_relaxed);
      bus->publish_failed_.fetch_add(1, std::memory_order_relaxed);
    }
  });
}

void RedisStreams::attach(SubscriptionId id, std::string_view pattern,
                          const SubscriptionFilter& filter, const Subscriber& subscriber) {
  if (!subscriber.mailbox) return;
  // The streams this route reads, by the group that reads them.
  const std::string module = subscriber.mailbox->owner();
  const std::string own = cat(module, "@", bus_.node_id_);
  std::map<std::string, std::vector<std::string>> by_group;
  for (const auto& channel : bus_.options_.stream_channels) {
    if (!pattern_matches(pattern, channel)) continue;
    by_group[bus_.is_per_node_stream(channel) ? own : module].push_back(stream_key(channel));
  }
  for (auto& [name, streams] : by_group) {
    std::shared_ptr<Group> group;
    bool fresh = false;
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      auto& slot = groups_[name];
      if (!slot) {
        slot = std::make_shared<Group>(*this, name, name == own);
        fresh = true;
      }
      group = slot;
      group_of_[id].push_back(name);
    }
    if (fresh) {
      if (Status s = group->start(); !s.ok()) {
        spdlog::error("stream consumer group {}: {}", name, message_of(s));
      }
    }
    group->add_route(id,
                     Group::Route{std::string(pattern), filter, subscriber, std::move(streams)});
  }
}

void RedisStreams::detach(SubscriptionId id) {
  std::vector<std::shared_ptr<Group>> emptied;
  {
    std::lock_guard lock(mutex_);
    auto it = group_of_.find(id);
    if (it == group_of_.end()) return;
    for (const std::string& name : it->second) {
      auto group = groups_.find(name);
      if (group != groups_.end() && group->second->remove_route(id)) {
        emptied.push_back(group->second);
        groups_.erase(group);
      }
    }
    group_of_.erase(it);
  }
  for (auto& group : emptied) group->stop();
}

void RedisStreams::stop(bool destroy_per_node) {
  std::map<std::string, std::shared_ptr<Group>> groups;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    groups.swap(groups_);
  }
  for (auto& [name, group] : groups) {
    group->stop();
    if (!destroy_per_node || !group->per_node()) continue;
    for (const std::string& stream : group->stream_keys()) {
      bus_.command_->send({"XGROUP", "DESTROY", stream, name}, nullptr);
    }
  }
}

void RedisStreams::destroy_node_groups(const std::string& node) {
  const std::string suffix = cat("@", node);
  for (const auto& channel : bus_.options_.per_node_streams) {
    const std::string stream = stream_key(channel);
    RedisConnection* command = bus_.command_.get();
    bus_.command_->send({"XINFO", "GROUPS", stream},
                        [command, stream, suffix](Result<RedisReply> reply) {
                          if (!reply.ok() || !reply->is_array()) return;  // no such stream
                          for (const auto& group : reply->elements) {
                            // A flat list of field, value pairs.
                            for (size_t i = 0; i + 1 < group.elements.size(); i += 2) {
                              if (group.elements[i].str != "name") continue;
                              const std::string& name = group.elements[i + 1].str;
                              if (name.size() > suffix.size() && name.ends_with(suffix)) {
                                command->send({"XGROUP", "DESTROY", stream, name}, nullptr);
                              }
                            }
                          }
                        });
  }
}

}  // namespace lotus
