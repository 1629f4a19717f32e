#include "llm/provider_router.h"

#include <gtest/gtest.h>

#include "llm/provider_test_support.h"
#include "llm/scripted_provider.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

using testing::HttpReplayServer;
using testing::ReplayResponse;

ProviderContext context(std::map<std::string, std::string> env, test::SleepLog& sleeps) {
  ProviderContext c;
  c.env = test::fake_env(std::move(env));
  c.sleep = sleeps.sleeper();
  return c;
}

ChatRequest ask(std::string model, std::string module = "reasoning") {
  ChatRequest r;
  r.model = std::move(model);
  r.module = std::move(module);
  r.messages = {ChatMessage::user("hi")};
  return r;
}

TEST(ProviderRouter, AliasesAndProviderModelReferences) {
  test::SleepLog sleeps;
  auto router = ProviderRouter::create(Json::parse(R"({
      "providers": {"anthropic": {"type": "anthropic"}, "local": {"type": "ollama"}},
      "models": {"fast": {"provider": "local", "model": "qwen3:4b"}}})"),
                                       context({{"ANTHROPIC_API_KEY", "k"}}, sleeps));
  ASSERT_TRUE(router.ok()) << router.status();
  auto route = (*router)->resolve("claude-sonnet-4");
  ASSERT_TRUE(route.ok());
  EXPECT_EQ(route->provider, "anthropic");
  EXPECT_EQ(route->model, "claude-sonnet-4-20250514");
  EXPECT_EQ(route->output_cost_per_mtok, 15);
  EXPECT_EQ((*router)->resolve("fast")->model, "qwen3:4b");
  EXPECT_EQ((*router)->resolve("local:deepseek-coder")->model, "deepseek-coder");
  EXPECT_EQ((*router)->resolve("anthropic:claude-sonnet-4-20250514")->input_cost_per_mtok, 3);
  EXPECT_TRUE(absl::IsNotFound((*router)->resolve("mystery").status()));
  // gpt-4o-mini is a built-in alias, but no openai provider is configured.
  EXPECT_TRUE(absl::IsFailedPrecondition((*router)->resolve("gpt-4o-mini").status()));
}

TEST(ProviderRouter, FallsBackAlongTheChainAndAccountsPerProviderAndModule) {
  HttpReplayServer server;
  test::SleepLog sleeps;
  Json config = Json::parse(R"({
      "providers": {
        "anthropic": {"type": "anthropic", "max_attempts": 2},
        "backup": {"type": "scripted", "script": [{"text": "from backup",
                   "usage": {"input_tokens": 1000000, "output_tokens": 2000000}}]}},
      "models": {"claude-sonnet-4": {"provider": "anthropic", "model": "claude-sonnet-4-20250514",
                                     "input_cost_per_mtok": 3, "output_cost_per_mtok": 15},
                 "cheap": {"provider": "backup", "model": "b1",
                           "input_cost_per_mtok": 0.5, "output_cost_per_mtok": 1}},
      "fallbacks": {"claude-sonnet-4": ["cheap"]}})");
  config["providers"]["anthropic"]["base_url"] = server.base_url();
  server.enqueue(ReplayResponse::json(
      529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"));
  server.enqueue(ReplayResponse::json(
      529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"));
  auto router = ProviderRouter::create(config, context({{"ANTHROPIC_API_KEY", "k"}}, sleeps));
  ASSERT_TRUE(router.ok()) << router.status();

  auto response = (*router)->chat(ask("claude-sonnet-4"), {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->text, "from backup");
  EXPECT_EQ(response->provider, "backup");
  EXPECT_EQ(server.requests().size(), 2u);

  UsageTotals anthropic = (*router)->provider_usage("anthropic");
  EXPECT_EQ(anthropic.requests, 1);
  EXPECT_EQ(anthropic.failures, 1);
  UsageTotals backup = (*router)->provider_usage("backup");
  EXPECT_EQ(backup.requests, 1);
  EXPECT_EQ(backup.input_tokens, 1000000);
  EXPECT_DOUBLE_EQ(backup.cost_usd, 0.5 + 2.0);
  UsageTotals module = (*router)->module_usage("reasoning");
  EXPECT_EQ(module.requests, 2);
  EXPECT_EQ(module.failures, 1);
  EXPECT_EQ(module.output_tokens, 2000000);
  Json report = (*router)->usage_report();
  EXPECT_EQ(report["providers"]["backup"]["output_tokens"], 2000000);
  EXPECT_EQ(report["modules"]["reasoning"]["requests"], 2);

  // The chain is exhausted now: both failures are reported.
  server.enqueue(ReplayResponse::json(
      400, R"({"type":"error","error":{"type":"invalid_request_error","message":"bad"}})"));
  auto failed = (*router)->chat(ask("claude-sonnet-4"), {});
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(failed.status()));
  std::string text(message_of(failed.status()));
  EXPECT_NE(text.find("claude-sonnet-4: anthropic: request refused"), std::string::npos) << text;
  EXPECT_NE(text.find("cheap: backup: the script has no more responses"), std::string::npos)
      << text;
}

TEST(ProviderRouter, CallerFallbacksAndSkippingProvidersWithoutKeys) {
  test::SleepLog sleeps;
  auto router = ProviderRouter::create(Json::parse(R"({"providers": {"openai": {"type": "openai"},
                                     "demo": {"type": "scripted", "script": ["scripted answer"]}},
                      "default_model": "gpt-4o-mini"})"),
                                       context({}, sleeps));
  ASSERT_TRUE(router.ok()) << router.status();
  EXPECT_TRUE((*router)->ready().ok());  // the scripted provider is
  auto lines = (*router)->describe();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "demo: ready");
  EXPECT_NE(lines[1].find("set OPENAI_API_KEY"), std::string::npos);

  std::string streamed;
  ChatRequest r = ask("");
  r.stream = true;
  auto response = (*router)->chat_with_fallbacks(
      r, [&streamed](std::string_view d) { streamed += d; }, {"demo:any"});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->text, "scripted answer");
  EXPECT_EQ(streamed, "scripted answer");
  EXPECT_EQ((*router)->provider_usage("openai").requests, 0);
}

TEST(ProviderRouter, WithNoProviderReadyItSaysWhatToSet) {
  test::SleepLog sleeps;
  auto router = ProviderRouter::create(Json::object(), context({}, sleeps));
  ASSERT_TRUE(router.ok()) << router.status();
  // Ollama needs no key, so the defaults are "ready"; without it nothing is.
  auto only_keyed = ProviderRouter::create(
      Json::parse(R"({"providers": {"anthropic": {}, "openai": {}}})"), context({}, sleeps));
  ASSERT_TRUE(only_keyed.ok()) << only_keyed.status();
  Status ready = (*only_keyed)->ready();
  EXPECT_TRUE(absl::IsFailedPrecondition(ready));
  EXPECT_NE(message_of(ready).find("ANTHROPIC_API_KEY"), std::string_view::npos);
  EXPECT_NE(message_of(ready).find("OPENAI_API_KEY"), std::string_view::npos);
  auto response = (*only_keyed)->chat(ask("claude-sonnet-4"), {});
  EXPECT_TRUE(absl::IsFailedPrecondition(response.status()));
  EXPECT_NE(message_of(response.status()).find("set ANTHROPIC_API_KEY"), std::string::npos);
}

TEST(ProviderRouter, WithoutADefaultModelAKeyPicksOneAndNoKeySaysWhatToSet) {
  test::SleepLog sleeps;
  // Nothing configured: Ollama needs no key but is never guessed.
  auto bare = ProviderRouter::create(Json::object(), context({}, sleeps));
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ((*bare)->default_model(), "");
  Status none = (*bare)->default_model_ready();
  EXPECT_TRUE(absl::IsFailedPrecondition(none));
  for (const char* named : {"llm.default_model", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"}) {
    EXPECT_NE(message_of(none).find(named), std::string_view::npos) << named;
  }
  auto unanswered = (*bare)->chat(ask(""), {});
  EXPECT_EQ(unanswered.status(), none);

  auto openai = ProviderRouter::create(Json::object(), context({{"OPENAI_API_KEY", "k"}}, sleeps));
  ASSERT_TRUE(openai.ok()) << openai.status();
  EXPECT_EQ((*openai)->default_model(), "gpt-4o-mini");
  EXPECT_TRUE((*openai)->default_model_ready().ok());
  auto both = ProviderRouter::create(
      Json::object(), context({{"OPENAI_API_KEY", "k"}, {"ANTHROPIC_API_KEY", "k"}}, sleeps));
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ((*both)->default_model(), "claude-sonnet-4");
  // Config wins over the guess.
  auto configured = ProviderRouter::create(Json::parse(R"({"default_model": "ollama:qwen3"})"),
                                           context({{"ANTHROPIC_API_KEY", "k"}}, sleeps));
  ASSERT_TRUE(configured.ok()) << configured.status();
  EXPECT_EQ((*configured)->default_model(), "ollama:qwen3");
}

TEST(ProviderRouter, ConfigErrorsNameTheKey) {
  test::SleepLog sleeps;
  struct Case {
    const char* config;
    const char* expected;
  };
  for (Case c : {Case{R"({"providers": {"x": {"type": "gemini"}}})", "llm.providers.x.type"},
                 Case{R"({"providers": {"anthropic": {"timeout": 5}}})",
                      "llm.providers.anthropic.timeout: unknown key"},
                 Case{R"({"providers": {"anthropic": {"max_attempts": "3"}}})",
                      "llm.providers.anthropic.max_attempts"},
                 Case{R"({"models": {"m": {"provider": "nowhere"}}})", "llm.models.m.provider"},
                 Case{R"({"fallbacks": {"m": "other"}})", "llm.fallbacks.m: must be a list"},
                 Case{R"({"modles": {}})", "llm.modles: unknown key"},
                 Case{R"({"providers": {"x": {"type": 7}}})", "llm.providers.x.type: must be text"},
                 Case{R"({"default_model": ["a"]})", "llm.default_model: must be text"},
                 Case{R"({"providers": {"s": {"type": "scripted"}}})", "llm.providers.s"}}) {
    auto router = ProviderRouter::create(Json::parse(c.config), context({}, sleeps));
    ASSERT_FALSE(router.ok()) << c.config;
    EXPECT_NE(message_of(router.status()).find(c.expected), std::string::npos)
        << message_of(router.status());
  }
}

TEST(ProviderRouter, KeyFileFromConfigAndCustomFactories) {
  test::SleepLog sleeps;
  ProviderFactories factories = ProviderFactories::builtin();
  factories.add(
      "echo",
      [](const std::string& name, const Json&,
         const ProviderContext&) -> Result<std::unique_ptr<LlmProvider>> {
        auto p = ScriptedProvider::from_json(name, Json{{"loop", true}, {"responses", {"echo"}}});
        if (!p.ok()) return p.status();
        return std::unique_ptr<LlmProvider>(std::move(*p));
      });
  auto router = ProviderRouter::create(
      Json::parse(R"({"providers": {"e": {"type": "echo"},
                                     "anthropic": {"api_key_file": "missing-key.txt"}}})"),
      context({{"ANTHROPIC_API_KEY", "ignored-when-a-file-is-named"}}, sleeps), factories);
  ASSERT_TRUE(router.ok()) << router.status();
  EXPECT_EQ((*router)->chat(ask("e:x"), {})->text, "echo");
  auto response = (*router)->chat(ask("claude-sonnet-4"), {});
  ASSERT_FALSE(response.ok());
  EXPECT_NE(message_of(response.status()).find("missing-key.txt"), std::string::npos);
}

}  // namespace
}  // namespace lotus::llm
