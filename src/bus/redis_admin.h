// Inspection of a Redis bus from outside a running node (`lotus streams`):
// every LOTUS stream with its length, consumer groups, their consumers and
// pending counts, and the nodes currently registered.
#pragma once

#include "bus/redis_bus.h"

namespace lotus {

// {"url", "nodes": [...], "streams": [{"channel", "key", "length", "groups":
// [{"name", "pending", "lag", "last_delivered", "consumers": [{"name",
// "pending", "idle_ms"}]}]}]}. The error names the URL when Redis is
// unreachable.
Result<Json> describe_streams(const RedisBusOptions& options);

}  // namespace lotus
