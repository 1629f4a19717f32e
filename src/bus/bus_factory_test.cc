// make_bus(): the config picks the backend; an unreachable Redis is an error
// naming the URL unless redis.fallback_local asks for the embedded bus.
#include "bus/bus_factory.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lotus/strings.h"
#include "testing/redis_server.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;

TEST(BusFactoryTest, PicksTheBackendTheConfigNames) {
  testing::RedisServer server;
  Config config;
  auto local = make_bus(config);
  ASSERT_TRUE(local.ok());
  EXPECT_TRUE((*local)->backend_health().empty());
  (*local)->stop();
  config.bus = server.url();
  auto redis = make_bus(config);
  ASSERT_TRUE(redis.ok()) << redis.status();
  EXPECT_EQ((*redis)->backend_health()["backend"], "redis");
  (*redis)->stop();
}

TEST(BusFactoryTest, UnreachableRedisFailsOrFallsBackAsConfigured) {
  int port = 0;
  {
    testing::RedisServer gone;
    port = gone.port();
  }
  Config config;
  config.bus = cat("redis://127.0.0.1:", port, "/1");
  config.redis = Json{{"connect_timeout_ms", 500}};
  auto failed = make_bus(config);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(std::string(message_of(failed.status())),
              HasSubstr(cat("cannot reach Redis at redis://127.0.0.1:", port, "/1")));
  config.redis["fallback_local"] = true;
  auto fallback = make_bus(config);
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  EXPECT_TRUE((*fallback)->backend_health().empty()) << "the embedded bus";
  (*fallback)->stop();
  config.redis = Json{{"claim_idle", 5}};
  EXPECT_THAT(std::string(message_of(make_bus(config).status())),
              HasSubstr("redis.claim_idle: unknown key"));
}

}  // namespace
}  // namespace lotus
