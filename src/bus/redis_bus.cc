#include "bus/redis_bus.h"

#include <unistd.h>

#include <algorithm>
#include <future>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "bus/event_text.h"
#include "bus/redis_streams.h"
#include "lotus/strings.h"

namespace lotus {
namespace {

constexpr std::chrono::seconds kCommandWait{5};

bool id_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }

std::string sanitize_id(std::string_view text) {
  std::string out;
  for (char c : text) out.push_back(id_char(c) ? c : '-');
  return out;
}

std::string default_node_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device random;
  char suffix[8];
  std::snprintf(suffix, sizeof suffix, "%06x", random() & 0xffffff);
  return sanitize_id(cat(host[0] != '\0' ? host : "node", "-", getpid(), "-", suffix));
}

Result<int64_t> read_ms(const Json& section, const char* key, int64_t min, int64_t max) {
  const Json& value = section[key];
  if (!value.is_number_integer() || value.get<int64_t>() < min || value.get<int64_t>() > max) {
    return absl::InvalidArgumentError(cat("redis.", key, ": expected an integer from ", min, " to ",
                                          max, ", got ", value.dump()));
  }
  return value.get<int64_t>();
}

}  // namespace

Result<RedisBusOptions> RedisBusOptions::from_config(std::string url, const Json& section) {
  RedisBusOptions options;
  options.url = std::move(url);
  if (section.is_null()) return options;
  if (!section.is_object()) {
    return absl::InvalidArgumentError(cat("redis: expected a mapping, got ", section.dump()));
  }
  constexpr int64_t kDay = 24LL * 3600 * 1000;
  for (const auto& [key, value] : section.items()) {
    if (key == "prefix" || key == "node_id") {
      if (!value.is_string() || value.get<std::string>().empty() ||
          sanitize_id(value.get<std::string>()) != value.get<std::string>()) {
        return absl::InvalidArgumentError(
            cat("redis.", key, ": expected letters, digits, '-' or '_', got ", value.dump()));
      }
      (key == "prefix" ? options.prefix : options.node_id) = value.get<std::string>();
    } else if (key == "heartbeat_ms") {
      auto ms = read_ms(section, "heartbeat_ms", 10, kDay);
      if (!ms.ok()) return ms.status();
      options.heartbeat = std::chrono::milliseconds(*ms);
    } else if (key == "node_timeout_ms") {
      auto ms = read_ms(section, "node_timeout_ms", 50, kDay);
      if (!ms.ok()) return ms.status();
      options.node_timeout = std::chrono::milliseconds(*ms);
    } else if (key == "connect_timeout_ms") {
      auto ms = read_ms(section, "connect_timeout_ms", 1, kDay);
      if (!ms.ok()) return ms.status();
      options.connect_timeout = std::chrono::milliseconds(*ms);
    } else if (key == "max_buffered") {
      auto n = read_ms(section, "max_buffered", 0, 1LL << 32);
      if (!n.ok()) return n.status();
      options.max_buffered = static_cast<size_t>(*n);
    } else if (key == "streams") {
      // A list of channel names (consumed per module, the default), or a
      // mapping channel -> {group: shared | per_node}.
      auto bind = [&](const Json& channel) -> Status {
        if (!channel.is_string() || !validate_channel(channel.get<std::string>()).ok()) {
          return absl::InvalidArgumentError(
              cat("redis.streams: not a channel name: ", channel.dump()));
        }
        const std::string name = channel.get<std::string>();
        if (std::find(options.stream_channels.begin(), options.stream_channels.end(), name) ==
            options.stream_channels.end()) {
          options.stream_channels.push_back(name);
        }
        return absl::OkStatus();
      };
      if (value.is_array()) {
        for (const auto& channel : value) {
          if (Status s = bind(channel); !s.ok()) return s;
        }
      } else if (value.is_object()) {
        for (const auto& [channel, spec] : value.items()) {
          if (Status s = bind(Json(channel)); !s.ok()) return s;
          if (spec.is_null()) continue;
          const std::string where = cat("redis.streams.", channel);
          if (!spec.is_object()) {
            return absl::InvalidArgumentError(
                cat(where, ": expected a mapping like {group: per_node}, got ", spec.dump()));
          }
          for (const auto& [field, setting] : spec.items()) {
            if (field != "group") {
              return absl::InvalidArgumentError(
                  cat(where, ".", field, ": unknown key; expected group"));
            }
            if (setting == "per_node") {
              options.per_node_streams.insert(channel);
            } else if (setting == "shared") {
              options.per_node_streams.erase(channel);
            } else {
              return absl::InvalidArgumentError(
                  cat(where,
                      ".group: expected shared (the instances of a module share the "
                      "entries) or per_node (every node's module reads every entry), got ",
                      setting.dump()));
            }
          }
        }
      } else {
        return absl::InvalidArgumentError(
            cat("redis.streams: expected a list of channel names or a mapping channel -> "
                "{group: shared | per_node}, got ",
                value.dump()));
      }
    } else if (key == "stream_maxlen") {
      auto n = read_ms(section, "stream_maxlen", 0, 1LL << 40);
      if (!n.ok()) return n.status();
      options.stream_maxlen = *n;
    } else if (key == "stream_max_age_ms") {
      auto ms = read_ms(section, "stream_max_age_ms", 0, 3650 * kDay);
      if (!ms.ok()) return ms.status();
      options.stream_max_age = std::chrono::milliseconds(*ms);
    } else if (key == "claim_idle_ms") {
      auto ms = read_ms(section, "claim_idle_ms", 10, kDay);
      if (!ms.ok()) return ms.status();
      options.claim_idle = std::chrono::milliseconds(*ms);
    } else if (key == "read_count") {
      auto n = read_ms(section, "read_count", 1, 100000);
      if (!n.ok()) return n.status();
      options.read_count = static_cast<size_t>(*n);
    } else {
      return absl::InvalidArgumentError(
          cat("redis.", key,
              ": unknown key; expected prefix, node_id, heartbeat_ms, node_timeout_ms, "
              "connect_timeout_ms, max_buffered, streams, stream_maxlen, stream_max_age_ms, "
              "claim_idle_ms or read_count"));
    }
  }
  return options;
}

Result<std::unique_ptr<RedisBus>> RedisBus::connect(RedisBusOptions options) {
  auto address = parse_redis_url(options.url);
  if (!address.ok()) return address.status();
  std::unique_ptr<RedisBus> bus(new RedisBus(std::move(options)));
  if (Status s = bus->start(); !s.ok()) {
    bus->stop();
    return s;
  }
  return bus;
}

RedisBus::RedisBus(RedisBusOptions options)
    : options_(std::move(options)),
      node_id_(options_.node_id.empty() ? default_node_id() : options_.node_id),
      pool_(options_.threads, options_.idle_spin) {}

RedisBus::~RedisBus() { stop(); }

std::string RedisBus::event_key(std::string_view channel) const {
  return cat(options_.prefix, ":ev:", channel);
}

std::string RedisBus::glob_for(std::string_view pattern) const {
  // The literal segments before the first wildcard, then one Redis '*': a
  // superset of the pattern's channels. "a.**" also matches "a", hence "a*".
  std::string glob = event_key("");
  const auto segments = split_channel(pattern);
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string_view segment = segments[i];
    if (segment == "*") return glob + "*";
    if (segment == "**") {
      if (!glob.empty() && glob.back() == '.') glob.pop_back();
      return glob + "*";
    }
    glob.append(segment);
    if (i + 1 < segments.size()) glob.push_back('.');
  }
  return glob;
}

Status RedisBus::wait_for(RedisConnection& connection, const RedisConnection::Args& args) {
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  connection.send(args,
                  [promise](Result<RedisReply> reply) { promise->set_value(reply.status()); });
  if (future.wait_for(kCommandWait) != std::future_status::ready) {
    return absl::DeadlineExceededError(cat("redis ", connection.address().display,
                                           ": no answer to ", args[0], " within ",
                                           kCommandWait.count(), " s"));
  }
  return future.get();
}

Status RedisBus::start() {
  const RedisAddress address = *parse_redis_url(options_.url);
  RedisConnection::Options options;
  options.address = address;
  options.connect_timeout = options_.connect_timeout;
  options.max_buffered = options_.max_buffered;
  options.client_name = cat("lotus-", node_id_, "-cmd");
  command_ = RedisConnection::create(command_io_.context(), options);
  if (Status s = command_->connect(); !s.ok()) return s;
  streams_ = std::make_unique<RedisStreams>(*this);

  options.client_name = cat("lotus-", node_id_, "-sub");
  subscriber_ = RedisConnection::create(subscriber_io_.context(), options);
  subscriber_->set_push_handler([this](RedisReply&& message) { on_push(std::move(message)); });
  subscriber_->set_connect_hook([this] {
    std::vector<RedisConnection::Args> commands;
    commands.push_back({"PSUBSCRIBE", cat(options_.prefix, ":ctl:*")});
    std::shared_lock lock(routes_mutex_);
    for (const auto& [glob, count] : globs_) commands.push_back({"PSUBSCRIBE", glob});
    return commands;
  });
  subscriber_->set_state_handler([this](bool connected) {
    if (connected) announce_soon();
  });
  if (Status s = subscriber_->connect(); !s.ok()) return s;

  reply_channel_ = cat("reply.", sanitize_id(EventId::generate().to_string()));
  Subscriber tap;
  tap.tap = [this](const EventPtr& event) { on_reply(event); };
  auto id = subscribe(reply_channel_, SubscriptionFilter(), std::move(tap));
  if (!id.ok()) return id.status();
  reply_subscription_ = *id;

  // Learn who is already here, so the first requests know their peers.
  {
    auto promise = std::make_shared<std::promise<Result<RedisReply>>>();
    auto future = promise->get_future();
    command_->send({"SMEMBERS", cat(options_.prefix, ":nodes")},
                   [promise](Result<RedisReply> reply) { promise->set_value(std::move(reply)); });
    if (future.wait_for(kCommandWait) == std::future_status::ready) {
      auto members = future.get();
      if (members.ok()) {
        for (const auto& member : members->elements) {
          if (member.str == node_id_) continue;
          auto info = std::make_shared<std::promise<Result<RedisReply>>>();
          auto got = info->get_future();
          command_->send({"GET", cat(options_.prefix, ":node:", member.str)},
                         [info](Result<RedisReply> reply) { info->set_value(std::move(reply)); });
          if (got.wait_for(kCommandWait) != std::future_status::ready) continue;
          auto value = got.get();
          if (value.ok() && value->type == RedisReply::Type::kString) {
            on_control(value->str);
          } else {
            command_->send({"SREM", cat(options_.prefix, ":nodes"), member.str}, nullptr);
          }
        }
      }
    }
  }
  heartbeat();
  Event joined = Event::make("system.node_joined", "nucleus", announcement("join"));
  joined.data.erase("op");
  publish(std::move(joined)).IgnoreError();
  heartbeat_timer_ =
      PeriodicTimer::start(pool_.get_executor(), options_.heartbeat, [this] { heartbeat(); });
  spdlog::info("joined the Redis bus at {} as node {}", address.display, node_id_);
  return absl::OkStatus();
}

Json RedisBus::announcement(std::string_view op) const {
  // Every pattern, and apart the taps': a durable channel is published
  // (besides its XADD) only when some tap wants it live.
  // And per module, its handlers' patterns: where a request may be routed.
  Json patterns = Json::array();
  Json taps = Json::array();
  Json handlers = Json::object();
  {
    std::shared_lock lock(routes_mutex_);
    std::set<std::string> unique;
    std::set<std::string> unique_taps;
    std::map<std::string, std::set<std::string>> by_module;
    for (const auto& [id, route] : by_id_) {
      unique.insert(route->pattern);
      if (route->subscriber.tap) {
        unique_taps.insert(route->pattern);
      } else {
        by_module[route->subscriber.mailbox->owner()].insert(route->pattern);
      }
    }
    for (const auto& p : unique) patterns.push_back(p);
    for (const auto& p : unique_taps) taps.push_back(p);
    for (const auto& [module, list] : by_module) handlers[module] = list;
  }
  return Json{{"node", node_id_},
              {"op", op},
              {"pid", getpid()},
              {"started", now_seconds()},
              // A generated id is never used again: the node's per-node
              // stream groups can go with it.
              {"generated_id", options_.node_id.empty()},
              {"patterns", std::move(patterns)},
              {"taps", std::move(taps)},
              {"handlers", std::move(handlers)}};
}

void RedisBus::heartbeat() {
  if (stopped_) return;
  const std::string payload = announcement("heartbeat").dump();
  command_->send({"SET", cat(options_.prefix, ":node:", node_id_), payload, "PX",
                  std::to_string(options_.node_timeout.count())},
                 nullptr);
  command_->send({"SADD", cat(options_.prefix, ":nodes"), node_id_}, nullptr);
  command_->send({"PUBLISH", cat(options_.prefix, ":ctl:nodes"), payload}, nullptr);
  // Peers silent for longer than node_timeout are gone.
  std::vector<std::string> silent;
  {
    std::lock_guard lock(peers_mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [node, peer] : peers_) {
      if (now - peer.last_seen > options_.node_timeout) silent.push_back(node);
    }
  }
  for (const auto& node : silent) forget_peer(node, "timeout");
}

void RedisBus::announce_soon() {
  if (stopped_ || announce_queued_.exchange(true)) return;
  boost::asio::post(pool_.get_executor(), [this] {
    announce_queued_ = false;
    if (stopped_) return;
    command_->send({"PUBLISH", cat(options_.prefix, ":ctl:nodes"), announcement("update").dump()},
                   nullptr);
  });
}

void RedisBus::forget_peer(const std::string& node, std::string_view reason) {
  bool generated_id = false;
  {
    std::lock_guard lock(peers_mutex_);
    auto it = peers_.find(node);
    if (it == peers_.end()) return;
    generated_id = it->second.info.value("generated_id", false);
    peers_.erase(it);
  }
  spdlog::warn("node {} is gone ({})", node, reason);
  fail_requests_to(node,
                   cat("went silent (no heartbeat for ", options_.node_timeout.count(), " ms)"));
  command_->send({"SREM", cat(options_.prefix, ":nodes"), node}, nullptr);
  // Every survivor notices; the one that wins this key tells the system.
  command_->send(
      {"SET", cat(options_.prefix, ":left:", node), node_id_, "NX", "PX", "60000"},
      [this, node, why = std::string(reason), generated_id](Result<RedisReply> reply) {
        if (!reply.ok() || reply->is_nil() || stopped_) return;
        if (generated_id && streams_) streams_->destroy_node_groups(node);
        publish(Event::make("system.node_left", "nucleus",
                            Json{{"node", node}, {"reason", why}, {"noticed_by", node_id_}}))
            .IgnoreError();
      });
}

void RedisBus::on_control(const std::string& payload) {
  Json message = Json::parse(payload, nullptr, false);
  if (!message.is_object() || !message["node"].is_string()) {
    bad_messages_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const std::string node = message["node"].get<std::string>();
  if (node == node_id_) return;
  const std::string op = message.value("op", "");
  if (op == "leave") {
    {
      std::lock_guard lock(peers_mutex_);
      peers_.erase(node);
    }
    fail_requests_to(node, "left the bus");
    return;
  }
  std::lock_guard lock(peers_mutex_);
  Peer& peer = peers_[node];
  peer.last_seen = std::chrono::steady_clock::now();
  auto update = [&](const char* key, TopicTrie<int>& trie, std::vector<std::string>& list) {
    std::vector<std::string> patterns;
    if (message[key].is_array()) {
      for (const auto& p : message[key]) {
        if (p.is_string() && validate_pattern(p.get<std::string>()).ok()) {
          patterns.push_back(p.get<std::string>());
        }
      }
    }
    if (patterns != list) {
      trie = TopicTrie<int>();
      for (const auto& p : patterns) trie.insert(p, 0);
      list = std::move(patterns);
    }
    message.erase(key);
  };
  update("patterns", peer.patterns, peer.pattern_list);
  update("taps", peer.taps, peer.tap_list);
  Json handlers = message["handlers"].is_object() ? std::move(message["handlers"]) : Json();
  message.erase("handlers");
  if (handlers != peer.handler_list) {
    peer.handlers = TopicTrie<std::string>();
    if (handlers.is_object()) {
      for (const auto& [module, list] : handlers.items()) {
        if (!list.is_array()) continue;
        for (const auto& p : list) {
          if (p.is_string() && validate_pattern(p.get<std::string>()).ok()) {
            peer.handlers.insert(p.get<std::string>(), module);
          }
        }
      }
    }
    peer.handler_list = std::move(handlers);
  }
  peer.info = std::move(message);
}

std::vector<std::string> RedisBus::peers() const {
  std::lock_guard lock(peers_mutex_);
  std::vector<std::string> out;
  for (const auto& [node, peer] : peers_) out.push_back(node);
  return out;
}

bool RedisBus::is_stream_channel(std::string_view channel) const {
  for (const auto& c : options_.stream_channels) {
    if (c == channel) return true;
  }
  return false;
}

size_t RedisBus::known_receivers(std::string_view channel) const {
  return count_receivers(channel, nullptr);
}

size_t RedisBus::count_receivers(std::string_view channel, bool* tap_wanted) const {
  size_t count = 0;
  bool taps = false;
  {
    std::shared_lock lock(routes_mutex_);
    routes_.match(channel, [&](const std::shared_ptr<const Route>& route) {
      ++count;
      if (route->subscriber.tap) taps = true;
    });
  }
  std::lock_guard lock(peers_mutex_);
  for (const auto& [node, peer] : peers_) {
    peer.patterns.match(channel, [&](int) { ++count; });
    if (tap_wanted != nullptr && !taps) peer.taps.match(channel, [&](int) { taps = true; });
  }
  if (tap_wanted != nullptr) *tap_wanted = taps;
  return count;
}

Result<size_t> RedisBus::publish(Event event) { return send(std::move(event), false); }

Result<size_t> RedisBus::send(Event event, bool only_if_routed) {
  if (event.id.is_nil()) event.id = EventId::generate();
  if (event.timestamp == 0.0) event.timestamp = now_seconds();
  if (Status s = validate_event(event); !s.ok()) return s;
  const bool durable = is_stream_channel(event.channel);
  bool tap_wanted = false;
  const size_t receivers = count_receivers(event.channel, durable ? &tap_wanted : nullptr);
  if (receivers == 0) counters_.unrouted.fetch_add(1, std::memory_order_relaxed);
  // A durable channel's stream keeps the event for modules yet to read it.
  if (receivers == 0 && only_if_routed && !durable) return receivers;
  counters_.published.fetch_add(1, std::memory_order_relaxed);
  const std::string payload = event_text(event);
  // A durable channel's modules read its stream; a PUBLISH would only serve
  // taps (live tails), so it is sent only when one wants the channel.
  if (durable) {
    streams_->add(event, payload);
    if (!tap_wanted) return receivers;
  }
  std::string command;
  command.reserve(payload.size() + options_.prefix.size() + event.channel.size() + 48);
  RedisConnection::append_array_header(command, 3);
  RedisConnection::append_argument(command, "PUBLISH");
  RedisConnection::append_argument(command, event_key(event.channel));
  RedisConnection::append_argument(command, payload);
  command_->send_formatted(command, [this](Result<RedisReply> reply) {
    if (!reply.ok()) publish_failed_.fetch_add(1, std::memory_order_relaxed);
  });
  return receivers;
}

void RedisBus::on_push(RedisReply&& message) {
  // ["pmessage", glob, channel, payload]
  if (message.elements.size() != 4) return;
  const std::string& glob = message.elements[1].str;
  if (glob.size() > options_.prefix.size() + 5 &&
      glob.compare(options_.prefix.size(), 5, ":ctl:") == 0) {
    on_control(message.elements[3].str);
    return;
  }
  deliver(glob, message.elements[3].str);
}

void RedisBus::deliver(const std::string& glob, const std::string& payload) {
  if (payload != last_payload_ || !last_event_) {
    auto parsed = event_from_json_text(payload);
    if (!parsed.ok()) {
      bad_messages_.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("redis bus: dropping a message that is not an event: {}",
                   message_of(parsed.status()));
      return;
    }
    last_payload_ = payload;
    last_event_ = std::make_shared<const Event>(*std::move(parsed));
  }
  const EventPtr event = last_event_;
  std::vector<std::shared_ptr<const Route>> targets;
  {
    std::shared_lock lock(routes_mutex_);
    routes_.match(event->channel, [&](const std::shared_ptr<const Route>& route) {
      if (route->glob == glob) targets.push_back(route);
    });
  }
  // Counted before each hand-over: whoever a tap or handler wakes may read
  // the stats at once.
  const bool durable = is_stream_channel(event->channel);
  // A request names the node each module runs it on; taps see it everywhere.
  const Json* chosen = nullptr;
  if (event->metadata.extra.is_object()) {
    auto it = event->metadata.extra.find(kRouteKey);
    if (it != event->metadata.extra.end() && it->is_object()) chosen = &*it;
  }
  for (const auto& route : targets) {
    if (durable && !route->subscriber.tap) continue;  // its module reads the stream
    if (chosen != nullptr && !route->subscriber.tap) {
      auto node = chosen->find(route->subscriber.mailbox->owner());
      if (node != chosen->end() && *node != node_id_) {
        routed_elsewhere_.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
    }
    if (!route->filter.empty() && !route->filter.matches(event->data)) {
      counters_.filtered.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const Subscriber& sub = route->subscriber;
    if (sub.tap) {
      counters_.delivered.fetch_add(1, std::memory_order_relaxed);
      sub.tap(event);
      continue;
    }
    counters_.delivered.fetch_add(1, std::memory_order_relaxed);
    if (!sub.mailbox->push(Delivery{event, sub.slot})) {
      counters_.delivered.fetch_sub(1, std::memory_order_relaxed);
      counters_.refused.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

Result<SubscriptionId> RedisBus::subscribe(std::string_view pattern, SubscriptionFilter filter,
                                           Subscriber subscriber) {
  if (Status s = validate_pattern(pattern); !s.ok()) return s;
  if (!subscriber.tap && !subscriber.mailbox) {
    return absl::InvalidArgumentError(
        cat("subscription to \"", pattern, "\" has neither a mailbox nor a tap"));
  }
  std::string glob = glob_for(pattern);
  auto route = std::make_shared<const Route>(
      Route{std::move(filter), std::move(subscriber), glob, std::string(pattern)});
  SubscriptionId id = 0;
  bool first = false;
  {
    std::unique_lock lock(routes_mutex_);
    id = routes_.insert(pattern, route);
    by_id_.emplace(id, route);
    first = ++globs_[glob] == 1;
  }
  if (streams_ && route->subscriber.mailbox) {
    streams_->attach(id, pattern, route->filter, route->subscriber);
  }
  if (first && subscriber_) {
    // Wait for Redis to confirm, so an event published right after this
    // returns is seen; unless Redis is down (the connect hook subscribes on
    // reconnect) or this is the delivery thread itself.
    if (subscriber_->connected() &&
        !subscriber_io_.context().get_executor().running_in_this_thread()) {
      if (Status s = wait_for(*subscriber_, {"PSUBSCRIBE", glob}); !s.ok()) {
        spdlog::warn("subscribing to {}: {}", glob, message_of(s));
      }
    } else {
      subscriber_->send({"PSUBSCRIBE", glob}, nullptr);
    }
  }
  announce_soon();
  return id;
}

bool RedisBus::unsubscribe(SubscriptionId id) {
  std::string glob;
  bool last = false;
  {
    std::unique_lock lock(routes_mutex_);
    auto found = by_id_.find(id);
    if (found == by_id_.end() || !routes_.remove(id)) return false;
    glob = found->second->glob;
    by_id_.erase(found);
    auto it = globs_.find(glob);
    if (it != globs_.end() && --it->second == 0) {
      globs_.erase(it);
      last = true;
    }
  }
  if (streams_) streams_->detach(id);
  if (last && subscriber_) subscriber_->send({"PUNSUBSCRIBE", glob}, nullptr);
  announce_soon();
  return true;
}

std::map<std::string, std::string> RedisBus::choose_handlers(std::string_view channel) {
  std::map<std::string, std::string> chosen;
  {
    std::shared_lock lock(routes_mutex_);
    routes_.match(channel, [&](const std::shared_ptr<const Route>& route) {
      if (!route->subscriber.tap) chosen[route->subscriber.mailbox->owner()] = node_id_;
    });
  }
  std::lock_guard lock(peers_mutex_);
  std::map<std::string, std::vector<const std::string*>> candidates;
  for (const auto& [node, peer] : peers_) {
    peer.handlers.match(channel, [&](const std::string& module) {
      if (chosen.count(module) > 0) return;  // run here
      auto& nodes = candidates[module];
      if (nodes.empty() || nodes.back() != &node) nodes.push_back(&node);
    });
  }
  for (const auto& [module, nodes] : candidates) {
    // The least recently chosen; a node never chosen before goes first.
    const std::string* best = nullptr;
    uint64_t best_tick = 0;
    for (const std::string* node : nodes) {
      auto it = last_chosen_.find(cat(module, "\n", *node));
      const uint64_t tick = it == last_chosen_.end() ? 0 : it->second;
      if (best == nullptr || tick < best_tick) {
        best = node;
        best_tick = tick;
      }
    }
    last_chosen_[cat(module, "\n", *best)] = ++choice_tick_;
    chosen[module] = *best;
  }
  return chosen;
}

void RedisBus::fail_requests_to(const std::string& node, std::string_view why) {
  pending_.fail_routed_to(node, [&](const std::string& channel) {
    return absl::UnavailableError(
        cat("node ", node, ", chosen to handle \"", channel, "\", ", why,
            " before replying; the request may or may not have run there"));
  });
}

Task<Result<EventPtr>> RedisBus::request(Event event, std::chrono::milliseconds timeout) {
  PendingRequests::Request request =
      pending_.begin(event, reply_channel_, timeout, "no module on any node handles");
  // Durable channels are split by their consumer groups already.
  if (!is_stream_channel(event.channel)) {
    auto chosen = choose_handlers(event.channel);
    if (!chosen.empty()) {
      Json route = Json::object();
      for (auto& [module, node] : chosen) {
        if (node != node_id_ &&
            std::find(request.nodes.begin(), request.nodes.end(), node) == request.nodes.end()) {
          request.nodes.push_back(node);
        }
        route[module] = std::move(node);
      }
      if (!event.metadata.extra.is_object()) event.metadata.extra = Json::object();
      event.metadata.extra[kRouteKey] = std::move(route);
    }
  }
  request.send = [this, nodes = request.nodes, event = std::move(event)]() mutable {
    // A chosen node may have gone between the choice and now.
    std::vector<std::string> gone;
    {
      std::lock_guard lock(peers_mutex_);
      for (const auto& node : nodes) {
        if (peers_.count(node) == 0) gone.push_back(node);
      }
    }
    // Known to nobody, it is not sent: a receiver this node has not heard of
    // yet (its subscriptions come with its next heartbeat) would run it while
    // the caller, told "nobody handles it", tries again and runs it twice.
    auto routed = send(std::move(event), true);
    for (const auto& node : gone) fail_requests_to(node, "left the bus");
    return routed;
  };
  auto waiting = pending_.wait(std::move(request));
  Result<EventPtr> result = co_await std::move(waiting);
  co_return result;
}

void RedisBus::on_reply(const EventPtr& event) { pending_.answer(event); }

Result<size_t> RedisBus::reply(const Event& request, std::string source, Json reply_data) {
  auto response = make_reply(request, std::move(source), std::move(reply_data));
  if (!response.ok()) return response.status();
  return publish(*std::move(response));
}

void RedisBus::stop() {
  if (stopped_.exchange(true)) return;
  if (heartbeat_timer_) heartbeat_timer_->stop();
  if (command_ && command_->connected()) {
    Json leave = announcement("leave");
    command_->send({"PUBLISH", cat(options_.prefix, ":ctl:nodes"), leave.dump()}, nullptr);
    command_->send({"DEL", cat(options_.prefix, ":node:", node_id_)}, nullptr);
    command_->send({"SREM", cat(options_.prefix, ":nodes"), node_id_}, nullptr);
    command_->send({"SET", cat(options_.prefix, ":left:", node_id_), node_id_, "PX", "60000"},
                   nullptr);
    // Reading stops here; groups only this node reads go when its id was
    // generated (it never comes back).
    if (streams_) streams_->stop(/*destroy_per_node=*/options_.node_id.empty());
    Event left = Event::make("system.node_left", "nucleus",
                             Json{{"node", node_id_}, {"reason", "shutdown"}});
    left.id = EventId::generate();
    left.timestamp = now_seconds();
    command_->send({"PUBLISH", event_key(left.channel), to_json(left).dump()}, nullptr);
    wait_for(*command_, {"PING"}).IgnoreError();
  }
  pending_.cancel_all(absl::CancelledError("the bus is shutting down"));
  if (streams_) streams_->stop();
  if (subscriber_) subscriber_->close();
  if (command_) command_->close();
  pool_.join();
  subscriber_io_.stop();
  command_io_.stop();
}

BusStats RedisBus::stats() const {
  BusStats s;
  counters_.copy_to(s);
  {
    std::shared_lock lock(routes_mutex_);
    s.subscriptions = routes_.size();
  }
  s.pending_requests = pending_.size();
  return s;
}

RedisBusStats RedisBus::redis_stats() const {
  RedisBusStats s;
  s.publish_failed = publish_failed_.load();
  s.bad_messages = bad_messages_.load();
  s.routed_elsewhere = routed_elsewhere_.load();
  {
    std::lock_guard lock(peers_mutex_);
    s.peers = peers_.size();
  }
  if (streams_) {
    const auto& c = streams_->counters();
    s.stream_added = c.added.load();
    s.stream_add_failed = c.add_failed.load();
    s.stream_handled = c.handled.load();
    s.stream_acked = c.acked.load();
    s.stream_failed = c.failed.load();
    s.stream_duplicates = c.duplicates.load();
    s.stream_claimed = c.claimed.load();
  }
  if (command_) s.commands = command_->stats();
  if (subscriber_) s.subscriber = subscriber_->stats();
  return s;
}

Json RedisBus::backend_health() const {
  RedisBusStats s = redis_stats();
  auto connection = [](const RedisConnectionStats& c) {
    return Json{{"connected", c.connected}, {"reconnects", c.reconnects},
                {"buffered", c.buffered},   {"dropped", c.dropped},
                {"failed", c.failed},       {"in_flight", c.in_flight},
                {"waited", c.waited}};
  };
  return Json{{"backend", "redis"},
              {"url", command_ ? command_->address().display : options_.url},
              {"node", node_id_},
              {"peers", peers()},
              {"publish_failed", s.publish_failed},
              {"streams",
               {{"added", s.stream_added},
                {"add_failed", s.stream_add_failed},
                {"handled", s.stream_handled},
                {"acked", s.stream_acked},
                {"failed", s.stream_failed},
                {"duplicates", s.stream_duplicates},
                {"claimed", s.stream_claimed}}},
              {"bad_messages", s.bad_messages},
              {"requests_routed_elsewhere", s.routed_elsewhere},
              {"commands", connection(s.commands)},
              {"subscriber", connection(s.subscriber)}};
}

}  // namespace lotus
