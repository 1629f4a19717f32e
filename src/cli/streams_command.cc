// `lotus streams`: the streams of the configured Redis bus, with length,
// consumer groups, consumers and pending counts. Reads Redis directly; it
// does not boot a node.
#include <algorithm>
#include <iomanip>
#include <iostream>

#include "bus/redis_admin.h"
#include "cli/commands.h"
#include "lotus/strings.h"

namespace lotus::cli {

int run_streams(const Config& config, bool json) {
  if (config.bus == "local") {
    std::cerr << "lotus streams: the bus is local (embedded), which keeps no streams; set bus: "
                 "redis://host:port/db (or LOTUS_BUS, --bus)\n";
    return 2;
  }
  Json section = config.redis.is_object() ? config.redis : Json::object();
  section.erase("fallback_local");
  auto options = RedisBusOptions::from_config(config.bus, section);
  if (!options.ok()) {
    std::cerr << "lotus streams: " << message_of(options.status()) << "\n";
    return 2;
  }
  auto described = describe_streams(*options);
  if (!described.ok()) {
    std::cerr << "lotus streams: " << message_of(described.status()) << "\n";
    return 1;
  }
  const Json& info = *described;
  if (json) {
    std::cout << info.dump(2) << "\n";
    return 0;
  }
  std::cout << "Redis " << info["url"].get<std::string>() << ", nodes: ";
  if (info["nodes"].empty()) std::cout << "none";
  for (size_t i = 0; i < info["nodes"].size(); ++i) {
    std::cout << (i > 0 ? ", " : "") << info["nodes"][i].get<std::string>();
  }
  std::cout << "\n";
  if (info["streams"].empty()) {
    std::cout << "no streams yet\n";
    return 0;
  }
  // Columns as wide as their longest entry: per-node group names
  // (module@host-pid-id) are longer than any fixed width would allow.
  size_t stream_width = 8, group_width = 7;
  for (const auto& stream : info["streams"]) {
    stream_width = std::max(stream_width, stream["channel"].get<std::string>().size() + 2);
    for (const auto& group : stream["groups"]) {
      group_width = std::max(group_width, group["name"].get<std::string>().size() + 2);
    }
  }
  const int sw = static_cast<int>(stream_width), gw = static_cast<int>(group_width);
  std::cout << std::left << std::setw(sw) << "STREAM" << std::setw(10) << "LENGTH" << std::setw(gw)
            << "GROUP" << std::setw(10) << "PENDING"
            << "CONSUMERS (pending, idle)\n";
  for (const auto& stream : info["streams"]) {
    const std::string channel = stream["channel"].get<std::string>();
    const std::string length = std::to_string(stream["length"].get<int64_t>());
    if (stream["groups"].empty()) {
      std::cout << std::setw(sw) << channel << std::setw(10) << length << "(no groups)\n";
      continue;
    }
    for (const auto& group : stream["groups"]) {
      std::string consumers;
      for (const auto& c : group["consumers"]) {
        consumers = cat(consumers, consumers.empty() ? "" : ", ", c["name"].get<std::string>(),
                        " (", c["pending"].dump(), ", ", c["idle_ms"].dump(), " ms)");
      }
      std::cout << std::setw(sw) << channel << std::setw(10) << length << std::setw(gw)
                << group["name"].get<std::string>() << std::setw(10) << group["pending"].dump()
                << consumers << "\n";
    }
  }
  return 0;
}

}  // namespace lotus::cli
