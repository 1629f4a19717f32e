#include "llm/scripted_provider.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "lotus/strings.h"

namespace lotus::llm {
namespace {

std::filesystem::path write_file(const std::string& name, const std::string& text) {
  auto path =
      std::filesystem::temp_directory_path() / cat("lotus_scripted_", ::getpid(), "_", name);
  std::ofstream(path) << text;
  return path;
}

ChatRequest hello(bool stream = false) {
  ChatRequest r;
  r.model = "demo";
  r.stream = stream;
  r.messages = {ChatMessage::user("hello there, model")};
  return r;
}

TEST(ScriptedProvider, ReplaysAYamlScriptInOrder) {
  auto path = write_file("script.yaml", R"(
responses:
  - text: "Let me read it."
    tool_calls:
      - {name: fs.read, arguments: {path: README.md, lines: 10}}
  - text: It says hello.
    usage: {input_tokens: 12, output_tokens: 4}
  - error: {code: rate_limited, message: slow down}
  - {delay_ms: 30, text: "late"}
)");
  auto provider = ScriptedProvider::from_file("demo", path);
  std::filesystem::remove(path);
  ASSERT_TRUE(provider.ok()) << provider.status();
  ScriptedProvider& p = **provider;

  auto first = p.chat(hello(), {});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->text, "Let me read it.");
  ASSERT_EQ(first->tool_calls.size(), 1u);
  EXPECT_EQ(first->tool_calls[0].name, "fs.read");
  EXPECT_EQ(first->tool_calls[0].arguments, (Json{{"path", "README.md"}, {"lines", 10}}));
  EXPECT_FALSE(first->tool_calls[0].id.empty());
  EXPECT_EQ(first->stop_reason, StopReason::kToolUse);
  EXPECT_GT(first->usage.input_tokens, 0);

  std::string streamed;
  auto second = p.chat(hello(true), [&streamed](std::string_view d) { streamed += d; });
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(streamed, "It says hello.");
  EXPECT_EQ(second->usage, (TokenUsage{12, 4}));
  EXPECT_EQ(second->stop_reason, StopReason::kEndTurn);

  auto third = p.chat(hello(), {});
  ASSERT_FALSE(third.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(third.status()));
  EXPECT_NE(message_of(third.status()).find("slow down"), std::string::npos);

  auto start = std::chrono::steady_clock::now();
  auto fourth = p.chat(hello(), {});
  ASSERT_TRUE(fourth.ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(30));

  auto done = p.chat(hello(), {});
  ASSERT_FALSE(done.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(done.status()));
  EXPECT_EQ(p.requests().size(), 5u);
  EXPECT_EQ(p.requests()[0].messages[0].text, "hello there, model");
}

TEST(ScriptedProvider, JsonListAndLooping) {
  auto p = ScriptedProvider::from_json("demo", Json{{"loop", true}, {"responses", {"a", "b"}}});
  ASSERT_TRUE(p.ok());
  std::string seen;
  for (int i = 0; i < 5; ++i) seen += (*p)->chat(hello(), {})->text;
  EXPECT_EQ(seen, "ababa");

  auto path = write_file("script.json", R"([{"text": "from json"}])");
  auto from_file = ScriptedProvider::from_file("demo", path);
  std::filesystem::remove(path);
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_EQ((*from_file)->chat(hello(), {})->text, "from json");
}

TEST(ScriptedProvider, BadScriptsNameTheTurnAndField) {
  auto bad = ScriptedProvider::from_json("demo", Json::parse(R"([{"text": "ok"}, {"txet": "x"}])"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(message_of(bad.status()).find("responses[1].txet"), std::string::npos);
  bad = ScriptedProvider::from_json("demo", Json::parse(R"([{"error": {"code": "boom"}}])"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(message_of(bad.status()).find("responses[0].error.code"), std::string::npos);
  auto missing = ScriptedProvider::from_file("demo", "/nonexistent/script.yaml");
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
}

TEST(ScriptedProvider, CancelDuringADelay) {
  auto p = ScriptedProvider::from_json("demo", Json::parse(R"([{"delay_ms": 5000, "text": "x"}])"));
  ASSERT_TRUE(p.ok());
  std::atomic<bool> cancel{true};
  ChatRequest r = hello();
  r.cancel = &cancel;
  auto start = std::chrono::steady_clock::now();
  auto response = (*p)->chat(r, {});
  EXPECT_TRUE(absl::IsCancelled(response.status()));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

}  // namespace
}  // namespace lotus::llm
