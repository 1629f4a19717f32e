#include "llm/provider_http.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "llm/provider_test_support.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, GrowsExponentiallyWithJitterUpToTheCap) {
  RetryPolicy policy;
  policy.initial_backoff = milliseconds(100);
  policy.max_backoff = milliseconds(1000);
  std::mt19937_64 rng(42);
  for (int i = 0; i < 50; ++i) {
    auto first = backoff_delay(policy, 1, rng);
    EXPECT_GE(first.count(), 50);
    EXPECT_LE(first.count(), 100);
    auto third = backoff_delay(policy, 3, rng);
    EXPECT_GE(third.count(), 200);
    EXPECT_LE(third.count(), 400);
    auto capped = backoff_delay(policy, 20, rng);
    EXPECT_GE(capped.count(), 500);
    EXPECT_LE(capped.count(), 1000);
  }
}

TEST(RetryAfter, SecondsAndHttpDates) {
  auto now = std::chrono::system_clock::from_time_t(1'700'000'000);
  EXPECT_EQ(parse_retry_after("2", now), milliseconds(2000));
  EXPECT_EQ(parse_retry_after(" 0.5 ", now), milliseconds(500));
  // 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT.
  EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now), milliseconds(10'000));
  EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), milliseconds(0));
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
}

TEST(ApiKey, FromEnvironmentOrFileElseSaysWhatToSet) {
  KeySource source{"ANTHROPIC_API_KEY", "", true};
  auto key = resolve_api_key("anthropic", source, test::fake_env({{"ANTHROPIC_API_KEY", "k1"}}));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, "k1");

  auto missing = resolve_api_key("anthropic", source, test::fake_env({}));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(missing.status()));
  EXPECT_NE(message_of(missing.status()).find("ANTHROPIC_API_KEY"), std::string_view::npos);

  auto path = std::filesystem::temp_directory_path() / "lotus_llm_key_test.txt";
  std::ofstream(path) << "  file-key-123  \nignored\n";
  source.file = path.string();
  key = resolve_api_key("anthropic", source, test::fake_env({{"ANTHROPIC_API_KEY", "k1"}}));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, "file-key-123");
  std::filesystem::remove(path);
  missing = resolve_api_key("anthropic", source, test::fake_env({}));
  EXPECT_NE(message_of(missing.status()).find(path.string()), std::string_view::npos);

  KeySource optional{"OLLAMA_API_KEY", "", false};
  key = resolve_api_key("ollama", optional, test::fake_env({}));
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, "");
}

TEST(Redact, MasksTheKeyAndEchoedFragments) {
  std::string key = "sk-live-0123456789abcdefXYZ";
  EXPECT_EQ(redact("bad key " + key + "!", key), "bad key [redacted]!");
  std::string echoed = redact("Incorrect API key provided: sk-live-****bcdefXYZ", key);
  EXPECT_EQ(echoed.find("sk-live-"), std::string::npos);
  EXPECT_EQ(echoed.find("bcdefXYZ"), std::string::npos);
  EXPECT_EQ(redact("nothing", ""), "nothing");
}

TEST(ErrorText, ReadsEachProvidersErrorShape) {
  EXPECT_EQ(error_text(R"({"type":"error","error":{"type":"rate_limit_error","message":"slow"}})"),
            "rate_limit_error: slow");
  EXPECT_EQ(error_text(R"({"error":{"message":"bad model","type":null}})"), "bad model");
  EXPECT_EQ(error_text(R"({"error":"model 'x' not found"})"), "model 'x' not found");
  EXPECT_EQ(error_text("<html>\nBad Gateway</html>"), "<html> Bad Gateway</html>");
}

TEST(HttpErrors, AuthErrorsNameTheVariableToCheck) {
  HttpProviderOptions options;
  options.name = "openai";
  options.key.env_var = "OPENAI_API_KEY";
  Status s = http_error_status(options, 401, R"({"error":{"message":"Incorrect API key"}})");
  EXPECT_TRUE(absl::IsUnauthenticated(s));
  EXPECT_NE(message_of(s).find("check OPENAI_API_KEY"), std::string_view::npos);
  EXPECT_TRUE(absl::IsPermissionDenied(http_error_status(options, 403, "{}")));
  EXPECT_TRUE(absl::IsResourceExhausted(http_error_status(options, 429, "{}")));
  EXPECT_TRUE(absl::IsUnavailable(http_error_status(options, 529, "{}")));
  EXPECT_TRUE(absl::IsNotFound(http_error_status(options, 404, "{}")));
  EXPECT_TRUE(absl::IsInvalidArgument(http_error_status(options, 400, "{}")));
}

TEST(ToolNames, DottedNamesMapToAcceptedOnesAndBack) {
  ToolNameMap names({{"fs.read", "", {}}, {"fs_read", "", {}}, {"shell.run", "", {}}});
  EXPECT_EQ(names.to_wire("shell.run"), "shell_run");
  EXPECT_NE(names.to_wire("fs.read"), names.to_wire("fs_read"));
  EXPECT_EQ(names.from_wire(names.to_wire("fs.read")), "fs.read");
  EXPECT_EQ(names.from_wire(names.to_wire("fs_read")), "fs_read");
  EXPECT_EQ(names.from_wire("unknown"), "unknown");
}

TEST(Urls, JoinWithOneSlash) {
  EXPECT_EQ(join_url("http://h:1/v1/", "/chat/completions"), "http://h:1/v1/chat/completions");
  EXPECT_EQ(join_url("http://h:1", "api/chat"), "http://h:1/api/chat");
}

}  // namespace
}  // namespace lotus::llm
