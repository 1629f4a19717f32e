#include "llm/provider_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "llm/anthropic_provider.h"
#include "llm/ollama_provider.h"
#include "llm/openai_provider.h"
#include "llm/provider_test_support.h"
#include "lotus/strings.h"
#include "testing/temp_dir.h"

namespace lotus::llm {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::HttpReplayServer;
using ::testing::Not;
using testing::ReplayResponse;

constexpr char kKey[] = "sk-ant-api03-abcdefghijklmnop0123456789SECRET";
constexpr milliseconds kTimeout{3000};

// The documented reply shapes of each model list endpoint.
constexpr char kAnthropicModels[] = R"({"data": [
    {"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
     "created_at": "2025-05-22T00:00:00Z"},
    {"type": "model", "id": "claude-opus-4-20250514", "display_name": "Claude Opus 4",
     "created_at": "2025-05-22T00:00:00Z"}],
  "has_more": false, "first_id": "claude-sonnet-4-20250514", "last_id": "claude-opus-4-20250514"})";
constexpr char kOpenAiModels[] = R"({"object": "list", "data": [
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
    {"id": "qwen2.5-7b-instruct", "object": "model", "created": 1700000000, "owned_by": "organization_owner"}]})";
constexpr char kOllamaTags[] = R"({"models": [
    {"name": "llama3.1:latest", "model": "llama3.1:latest", "modified_at": "2025-10-03T23:34:03.409490317-07:00",
     "size": 4920753328, "digest": "46e0c10c039e019119339687c3c1757cc81b9da49709a3b3924863ba87ca666e",
     "details": {"format": "gguf", "family": "llama", "families": ["llama"],
                 "parameter_size": "8.0B", "quantization_level": "Q4_K_M"}},
    {"name": "qwen3:4b", "model": "qwen3:4b", "modified_at": "2025-09-01T10:00:00Z",
     "size": 2497293918, "digest": "e55aed6fe643", "details": {"format": "gguf"}}]})";

template <typename Options>
void point_at(Options& options, const std::string& base_url,
              std::map<std::string, std::string> env) {
  options.http.base_url = base_url;
  options.http.env = test::fake_env(std::move(env));
}

AnthropicProvider anthropic(const std::string& base_url, std::map<std::string, std::string> env = {
                                                             {"ANTHROPIC_API_KEY", kKey}}) {
  AnthropicOptions options = AnthropicOptions::defaults();
  point_at(options, base_url, std::move(env));
  return AnthropicProvider(std::move(options));
}

OpenAiProvider openai(const std::string& base_url, std::map<std::string, std::string> env,
                      bool key_required = true) {
  OpenAiOptions options = OpenAiOptions::defaults();
  point_at(options, base_url, std::move(env));
  options.http.key.required = key_required;
  return OpenAiProvider(std::move(options));
}

OllamaProvider ollama(const std::string& base_url) {
  OllamaOptions options = OllamaOptions::defaults();
  point_at(options, base_url, {});
  return OllamaProvider(std::move(options));
}

// A base URL nothing listens on.
std::string closed_port_url() {
  HttpReplayServer gone;
  return gone.base_url();
}

TEST(ProviderProbe, AnthropicListsModelsWithItsHeaders) {
  HttpReplayServer server;
  server.enqueue(ReplayResponse::json(200, kAnthropicModels));
  ProbeReport report = anthropic(server.base_url()).probe(kTimeout);
  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_TRUE(report.network);
  EXPECT_TRUE(report.reachable);
  EXPECT_EQ(report.http_status, 200);
  EXPECT_EQ(report.url, server.base_url() + "/v1/models?limit=1000");
  ASSERT_TRUE(report.models.has_value());
  EXPECT_THAT(*report.models, ElementsAre("claude-sonnet-4-20250514", "claude-opus-4-20250514"));
  auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].target, "/v1/models?limit=1000");
  EXPECT_EQ(requests[0].header("x-api-key"), kKey);
  EXPECT_EQ(requests[0].header("anthropic-version"), "2023-06-01");
}

TEST(ProviderProbe, AnthropicListInPagesIsNotClaimedComplete) {
  HttpReplayServer server;
  server.enqueue(ReplayResponse::json(
      200, R"({"data": [{"type": "model", "id": "claude-sonnet-4-20250514"}], "has_more": true,
               "first_id": "claude-sonnet-4-20250514", "last_id": "claude-sonnet-4-20250514"})"));
  ProbeReport report = anthropic(server.base_url()).probe(kTimeout);
  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_FALSE(report.models.has_value());
}

TEST(ProviderProbe, RejectedKeyNamesTheVariableAndNeverTheKey) {
  HttpReplayServer server;
  server.enqueue(ReplayResponse::json(
      401,
      cat(R"({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key )",
          kKey, R"("}})")));
  ProbeReport report = anthropic(server.base_url()).probe(kTimeout);
  EXPECT_TRUE(absl::IsUnauthenticated(report.status)) << report.status;
  EXPECT_TRUE(report.reachable);
  EXPECT_EQ(report.http_status, 401);
  std::string message(message_of(report.status));
  EXPECT_THAT(message, HasSubstr("check ANTHROPIC_API_KEY"));
  EXPECT_THAT(message, HasSubstr("authentication_error"));
  EXPECT_THAT(message, Not(HasSubstr("0123456789SECRET")));
}

TEST(ProviderProbe, RefusedAccessNamesTheKeyFile) {
  lotus::testing::TempDir dir;
  std::string key_file = (dir.path() / "openai.key").string();
  std::ofstream(key_file) << "sk-file-key\n";
  HttpReplayServer server;
  server.enqueue(ReplayResponse::json(
      403,
      R"({"error": {"message": "You are not allowed to list models", "type": "invalid_request_error",
               "param": null, "code": null}})"));
  OpenAiOptions options = OpenAiOptions::defaults();
  point_at(options, server.base_url(), {});
  options.http.key.file = key_file;
  ProbeReport report = OpenAiProvider(std::move(options)).probe(kTimeout);
  EXPECT_TRUE(absl::IsPermissionDenied(report.status)) << report.status;
  EXPECT_THAT(message_of(report.status), HasSubstr(cat("check the key in ", key_file)));
  EXPECT_EQ(server.requests().at(0).header("authorization"), "Bearer sk-file-key");
}

TEST(ProviderProbe, OpenAiSendsTheKeyAsBearer) {
  HttpReplayServer server;
  server.enqueue(ReplayResponse::json(200, kOpenAiModels));
  ProbeReport report =
      openai(server.base_url() + "/v1", {{"OPENAI_API_KEY", "sk-test"}}).probe(kTimeout);
  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_THAT(*report.models, ElementsAre("gpt-4o-mini", "qwen2.5-7b-instruct"));
  EXPECT_EQ(server.requests().at(0).target, "/v1/models");
  EXPECT_EQ(server.requests().at(0).header("authorization"), "Bearer sk-test");
}

TEST(ProviderProbe, CompatibleServerWithoutAKeyIsAskedWithoutOne) {
  HttpReplayServer server;
  server.enqueue(ReplayResponse::json(200, kOpenAiModels));
  ProbeReport report = openai(server.base_url() + "/v1", {}, false).probe(kTimeout);
  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(server.requests().at(0).header("authorization"), "");
}

TEST(ProviderProbe, ServerErrorIsReachableButFailedAndNotRetried) {
  HttpReplayServer server;
  server.enqueue(ReplayResponse::json(500, R"({"error": {"message": "The server had an error"}})"));
  server.enqueue(ReplayResponse::json(200, kOpenAiModels));
  ProbeReport report = openai(server.base_url(), {}, false).probe(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(report.status)) << report.status;
  EXPECT_TRUE(report.reachable);
  EXPECT_EQ(report.http_status, 500);
  EXPECT_THAT(message_of(report.status), HasSubstr("The server had an error"));
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(ProviderProbe, MalformedListIsAFailure) {
  HttpReplayServer server;
  server.enqueue(ReplayResponse::json(200, R"({"object": "list", "data": "nope"})"));
  server.enqueue(ReplayResponse::json(200, "<html>not json"));
  auto provider = openai(server.base_url(), {}, false);
  ProbeReport wrong_shape = provider.probe(kTimeout);
  EXPECT_TRUE(absl::IsInternal(wrong_shape.status)) << wrong_shape.status;
  EXPECT_THAT(message_of(wrong_shape.status), HasSubstr("malformed model list"));
  ProbeReport not_json = provider.probe(kTimeout);
  EXPECT_TRUE(absl::IsInternal(not_json.status)) << not_json.status;
  EXPECT_TRUE(not_json.reachable);
}

TEST(ProviderProbe, OllamaTagsMatchUntaggedNames) {
  HttpReplayServer server;
  server.enqueue(ReplayResponse::json(200, kOllamaTags));
  ProbeReport report = ollama(server.base_url()).probe(kTimeout);
  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(server.requests().at(0).target, "/api/tags");
  EXPECT_THAT(*report.models, ElementsAre("llama3.1", "llama3.1:latest", "qwen3:4b"));
}

TEST(ProviderProbe, SlowServerTimesOutNamingTheUrl) {
  HttpReplayServer server;
  ReplayResponse slow = ReplayResponse::json(200, kOllamaTags);
  slow.delay_before_headers = milliseconds(800);
  server.enqueue(slow);
  ProbeReport report = ollama(server.base_url()).probe(milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(report.status)) << report.status;
  EXPECT_FALSE(report.reachable);
  EXPECT_TRUE(report.network);
  EXPECT_EQ(message_of(report.status),
            cat("ollama: no answer from ", server.base_url(), " within 200 ms (timed out)"));
}

TEST(ProviderProbe, RefusedPortNamesTheUrl) {
  std::string url = closed_port_url();
  ProbeReport report = ollama(url).probe(kTimeout);
  EXPECT_TRUE(absl::IsUnavailable(report.status)) << report.status;
  EXPECT_FALSE(report.reachable);
  EXPECT_EQ(report.http_status, 0);
  EXPECT_EQ(message_of(report.status),
            cat("ollama: cannot connect to ", url, " (connection refused)"));
}

TEST(ProviderProbe, ConnectionFailuresReadPlainly) {
  // Resolver behaviour differs between machines, so the client's DNS failure is given here.
  EXPECT_EQ(connection_failure(
                absl::UnavailableError("cannot reach the server: Couldn't resolve host name"),
                "http://gpu-box:8000/v1", kTimeout),
            "cannot connect to http://gpu-box:8000/v1 (host name not found)");
  EXPECT_EQ(connection_failure(absl::UnavailableError("cannot reach the server: Couldn't connect "
                                                      "to server (No route to host)"),
                               "http://10.1.2.3:11434", kTimeout),
            "cannot connect to http://10.1.2.3:11434 (no route to host)");
  EXPECT_EQ(connection_failure(absl::UnavailableError("cannot reach the server: SSL connect error"),
                               "https://api.example.com", kTimeout),
            "cannot connect to https://api.example.com (SSL connect error)");
  EXPECT_EQ(connection_failure(absl::DeadlineExceededError("timed out: Timeout was reached"),
                               "http://localhost:11434", milliseconds(5000)),
            "no answer from http://localhost:11434 within 5000 ms (timed out)");
}

TEST(ProviderProbe, MissingKeyContactsNothing) {
  HttpReplayServer server;
  ProbeReport report = anthropic(server.base_url(), {}).probe(kTimeout);
  EXPECT_TRUE(absl::IsFailedPrecondition(report.status)) << report.status;
  EXPECT_FALSE(report.network);
  EXPECT_THAT(message_of(report.status), HasSubstr("ANTHROPIC_API_KEY"));
  EXPECT_TRUE(server.requests().empty());
}

class ProviderChecks : public ::testing::Test {
 protected:
  Result<std::unique_ptr<ProviderRouter>> router(const std::string& providers,
                                                 const std::string& rest = "") {
    ProviderContext context;
    context.env = test::fake_env({});
    context.sleep = sleeps_.sleeper();
    return ProviderRouter::create(Json::parse(cat(R"({"providers": )", providers, rest, "}")),
                                  context);
  }
  test::SleepLog sleeps_;
};

TEST_F(ProviderChecks, EveryProviderIsCheckedAndConfiguredModelsLookedUp) {
  HttpReplayServer lm, local;
  lm.enqueue(ReplayResponse::json(200, kOpenAiModels));
  local.enqueue(ReplayResponse::json(200, kOllamaTags));
  std::string gone = closed_port_url();
  auto r = router(cat(R"({"lmstudio": {"type": "openai", "base_url": ")", lm.base_url(), R"(/v1"},
              "local": {"type": "ollama", "base_url": ")",
                      local.base_url(), R"("},
              "down": {"type": "ollama", "base_url": ")",
                      gone, R"("},
              "claude": {"type": "anthropic"},
              "demo": {"type": "scripted", "script": [{"text": "hi"}]}})"),
                  R"(, "models": {"qwen": {"provider": "lmstudio", "model": "qwen2.5-7b-instruct"},
                      "gone": {"provider": "lmstudio", "model": "retired-model"},
                      "fast": {"provider": "local", "model": "qwen3:4b"}},
           "default_model": "local:llama3.1",
           "fallbacks": {"qwen": ["local:deepseek-coder"]})");
  ASSERT_TRUE(r.ok()) << r.status();
  auto checks = check_providers(**r, kTimeout);
  ASSERT_EQ(checks.size(), 5u);  // sorted by name
  const ProviderCheck& claude = checks[0];
  const ProviderCheck& demo = checks[1];
  const ProviderCheck& down = checks[2];
  const ProviderCheck& lmstudio = checks[3];
  const ProviderCheck& localc = checks[4];
  EXPECT_EQ(claude.state(), "not_ready");
  EXPECT_EQ(demo.state(), "ok");
  EXPECT_EQ(down.state(), "unreachable");
  EXPECT_EQ(lmstudio.state(), "ok");
  EXPECT_EQ(localc.state(), "ok");
  EXPECT_THAT(lmstudio.models, ElementsAre("qwen2.5-7b-instruct", "retired-model"));
  EXPECT_THAT(lmstudio.missing, ElementsAre("retired-model"));
  EXPECT_THAT(localc.models, ElementsAre("deepseek-coder", "llama3.1", "qwen3:4b"));
  EXPECT_THAT(localc.missing, ElementsAre("deepseek-coder"));
  EXPECT_TRUE(any_usable(checks));

  auto lines = format_checks(checks);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0].rfind("claude    not ready: no API key: set ANTHROPIC_API_KEY", 0), 0u)
      << lines[0];
  EXPECT_EQ(lines[1], "demo      ok  (no server to contact)");
  EXPECT_EQ(lines[2],
            cat("down      unreachable: cannot connect to ", gone, " (connection refused)"));
  EXPECT_EQ(lines[3].rfind("lmstudio  ok  ", 0), 0u) << lines[3];
  EXPECT_THAT(lines[3],
              HasSubstr(" ms  (models: qwen2.5-7b-instruct ✓, retired-model ✗ not on the server)"));
  EXPECT_THAT(lines[4], HasSubstr("(models: deepseek-coder ✗ not on the server, llama3.1 ✓, "
                                  "qwen3:4b ✓)"));
  // The latencies line up: " ms" sits in the same column on every ok line with a server.
  EXPECT_EQ(lines[3].find(" ms"), lines[4].find(" ms"));

  Json json = checks_to_json(checks);
  EXPECT_EQ(json["ok"], true);
  const Json& lm_json = json["providers"][3];
  EXPECT_EQ(lm_json["name"], "lmstudio");
  EXPECT_EQ(lm_json["state"], "ok");
  EXPECT_EQ(lm_json["http_status"], 200);
  EXPECT_EQ(lm_json["listed"], 2);
  EXPECT_EQ(lm_json["url"], lm.base_url() + "/v1/models");
  EXPECT_TRUE(lm_json["latency_ms"].is_number_integer());
  EXPECT_EQ(lm_json["missing"], Json::array({"retired-model"}));
  EXPECT_EQ(lm_json["models"][0], Json({{"id", "qwen2.5-7b-instruct"}, {"present", true}}));
  EXPECT_EQ(json["providers"][2]["state"], "unreachable");
  EXPECT_EQ(json["providers"][2]["message"],
            cat("cannot connect to ", gone, " (connection refused)"));
  EXPECT_TRUE(json["providers"][0]["models"][0]["present"].is_null());
}

TEST_F(ProviderChecks, NothingUsableWhenEveryCheckFails) {
  HttpReplayServer server;
  server.enqueue(
      ReplayResponse::json(401, R"({"error": {"message": "Incorrect API key provided"}})"));
  auto r =
      router(cat(R"({"compat": {"type": "openai", "base_url": ")", server.base_url(),
                 R"(", "api_key_env": "COMPAT_KEY"}, "down": {"type": "ollama", "base_url": ")",
                 closed_port_url(), R"("}})"));
  ASSERT_TRUE(r.ok()) << r.status();
  // COMPAT_KEY is unset: not ready, nothing sent.
  auto checks = check_providers(**r, kTimeout);
  EXPECT_FALSE(any_usable(checks));
  EXPECT_EQ(checks[0].state(), "not_ready");
  EXPECT_EQ(checks[1].state(), "unreachable");
  EXPECT_EQ(checks_to_json(checks)["ok"], false);
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(ProviderChecks, RejectedKeyIsAFailedCheck) {
  HttpReplayServer server;
  server.enqueue(
      ReplayResponse::json(401, R"({"error": {"message": "Incorrect API key provided"}})"));
  auto r = router(cat(R"({"compat": {"type": "openai", "base_url": ")", server.base_url(),
                      R"(", "api_key_env": ""}})"));
  ASSERT_TRUE(r.ok()) << r.status();
  auto checks = check_providers(**r, kTimeout);
  EXPECT_EQ(checks[0].state(), "failed");
  auto lines = format_checks(checks);
  EXPECT_THAT(lines[0], HasSubstr("compat  failed: the API key was rejected (HTTP 401: Incorrect "
                                  "API key provided); check the server's authentication settings"));
}

}  // namespace
}  // namespace lotus::llm
