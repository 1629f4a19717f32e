#include "bus/redis_admin.h"

#include <algorithm>

#include "bus/io_thread.h"
#include "lotus/strings.h"

namespace lotus {
namespace {

// XINFO replies are flat [name, value, name, value, ...] arrays.
const RedisReply* field(const RedisReply& map, std::string_view name) {
  for (size_t i = 0; i + 1 < map.elements.size(); i += 2) {
    if (map.elements[i].str == name) return &map.elements[i + 1];
  }
  return nullptr;
}

Json value_of(const RedisReply* reply) {
  if (reply == nullptr || reply->is_nil()) return nullptr;
  if (reply->type == RedisReply::Type::kInteger) return reply->integer;
  return reply->str;
}

}  // namespace

Result<Json> describe_streams(const RedisBusOptions& options) {
  auto address = parse_redis_url(options.url);
  if (!address.ok()) return address.status();
  IoThread io;
  RedisConnection::Options connection_options;
  connection_options.address = *address;
  connection_options.connect_timeout = options.connect_timeout;
  connection_options.reconnect = false;
  connection_options.client_name = "lotus-streams";
  auto redis = RedisConnection::create(io.context(), connection_options);
  if (Status s = redis->connect(); !s.ok()) return s;

  Json out = {{"url", address->display}, {"nodes", Json::array()}, {"streams", Json::array()}};
  auto nodes = redis->send_and_wait({"SMEMBERS", cat(options.prefix, ":nodes")});
  if (!nodes.ok()) return nodes.status();
  std::vector<std::string> node_names;
  for (const auto& n : nodes->elements) node_names.push_back(n.str);
  std::sort(node_names.begin(), node_names.end());
  for (const auto& n : node_names) out["nodes"].push_back(n);

  const std::string prefix = cat(options.prefix, ":stream:");
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    auto page = redis->send_and_wait(
        {"SCAN", cursor, "MATCH", prefix + "*", "COUNT", "1000", "TYPE", "stream"});
    if (!page.ok()) return page.status();
    if (page->elements.size() != 2) break;
    cursor = page->elements[0].str;
    for (const auto& key : page->elements[1].elements) keys.push_back(key.str);
  } while (cursor != "0");
  std::sort(keys.begin(), keys.end());

  for (const auto& key : keys) {
    Json stream = {{"channel", key.substr(prefix.size())}, {"key", key}, {"groups", Json::array()}};
    auto length = redis->send_and_wait({"XLEN", key});
    if (!length.ok()) return length.status();
    stream["length"] = length->integer;
    auto groups = redis->send_and_wait({"XINFO", "GROUPS", key});
    if (!groups.ok()) return groups.status();
    for (const auto& group : groups->elements) {
      const std::string name = value_of(field(group, "name")).get<std::string>();
      Json g = {{"name", name},
                {"pending", value_of(field(group, "pending"))},
                {"lag", value_of(field(group, "lag"))},
                {"last_delivered", value_of(field(group, "last-delivered-id"))},
                {"consumers", Json::array()}};
      auto consumers = redis->send_and_wait({"XINFO", "CONSUMERS", key, name});
      if (!consumers.ok()) return consumers.status();
      for (const auto& consumer : consumers->elements) {
        g["consumers"].push_back({{"name", value_of(field(consumer, "name"))},
                                  {"pending", value_of(field(consumer, "pending"))},
                                  {"idle_ms", value_of(field(consumer, "idle"))}});
      }
      stream["groups"].push_back(std::move(g));
    }
    out["streams"].push_back(std::move(stream));
  }
  redis->close();
  return out;
}

}  // namespace lotus
