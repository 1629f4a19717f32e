#include "bus/bus_factory.h"

#include <spdlog/spdlog.h>

#include "bus/local_bus.h"
#include "bus/redis_bus.h"
#include "lotus/strings.h"

namespace lotus {

Result<std::unique_ptr<Bus>> make_bus(const Config& config) {
  if (config.bus == "local")
    return std::unique_ptr<Bus>(std::make_unique<LocalBus>(config.threads, config.idle_spin));
  Json section = config.redis.is_object() ? config.redis : Json::object();
  const bool fallback = section.value("fallback_local", false);
  section.erase("fallback_local");
  auto options = RedisBusOptions::from_config(config.bus, section);
  if (!options.ok()) return options.status();
  options->threads = config.threads;
  options->idle_spin = config.idle_spin;
  auto bus = RedisBus::connect(*std::move(options));
  if (bus.ok()) return std::unique_ptr<Bus>(*std::move(bus));
  if (!fallback) return bus.status();
  spdlog::warn("{}; running on the embedded bus (redis.fallback_local is set)",
               message_of(bus.status()));
  return std::unique_ptr<Bus>(std::make_unique<LocalBus>(config.threads, config.idle_spin));
}

}  // namespace lotus
