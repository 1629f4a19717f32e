// ApiOptions: the api section read once, each bad value named with its key.
#include "api/api_options.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lotus::api {
namespace {

using ::testing::HasSubstr;

Result<ApiOptions> read(Json api) {
  Config config;
  config.config_dir = "/tmp/lotus-config";
  config.api = std::move(api);
  return ApiOptions::from_config(config);
}

TEST(ApiOptionsTest, DefaultsWhenTheSectionIsAbsent) {
  auto options = read(Json());
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->host, "127.0.0.1");
  EXPECT_EQ(options->port, 7777);
  EXPECT_EQ(options->request_timeout, std::chrono::milliseconds(60'000));
  EXPECT_EQ(options->token_file, std::filesystem::path("/tmp/lotus-config/api-token"));
}

TEST(ApiOptionsTest, ValuesAreReadAndBadOnesNamedWithTheirKey) {
  auto options = read(Json{{"port", 0}, {"request_timeout_ms", 2500}, {"max_body_bytes", 4096}});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->port, 0);
  EXPECT_EQ(options->request_timeout, std::chrono::milliseconds(2500));
  EXPECT_EQ(options->max_body_bytes, 4096u);

  auto too_short = read(Json{{"request_timeout_ms", 5}});
  ASSERT_FALSE(too_short.ok());
  EXPECT_THAT(std::string(too_short.status().message()),
              HasSubstr("api.request_timeout_ms: expected an integer from 100"));
  auto not_a_number = read(Json{{"request_timeout_ms", "1m"}});
  EXPECT_FALSE(not_a_number.ok());
  auto unknown = read(Json{{"request_timeout", 100}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("request_timeout_ms"));
  auto host = read(Json{{"host", "example.com"}});
  ASSERT_FALSE(host.ok());
  EXPECT_THAT(std::string(host.status().message()), HasSubstr("api.host"));
}

}  // namespace
}  // namespace lotus::api
