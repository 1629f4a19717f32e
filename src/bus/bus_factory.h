// make_bus(): the bus a config asks for. "local" is the in-process bus;
// "redis://..." connects a RedisBus (its `redis:` section tunes it), and when
// Redis cannot be reached the error names the URL, unless redis.fallback_local
// says to run on the embedded bus instead.
#pragma once

#include <memory>

#include "bus/bus.h"
#include "core/config.h"

namespace lotus {

Result<std::unique_ptr<Bus>> make_bus(const Config& config);

}  // namespace lotus
