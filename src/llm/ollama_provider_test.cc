#include "llm/ollama_provider.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "llm/provider_test_support.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

using testing::HttpReplayServer;
using testing::ReplayResponse;

class OllamaTest : public ::testing::Test {
 protected:
  OllamaProvider provider(std::map<std::string, std::string> env = {}) {
    OllamaOptions options = OllamaOptions::defaults();
    test::use_server(options.http, server_, sleeps_, std::move(env));
    return OllamaProvider(std::move(options));
  }

  static ChatRequest request(bool stream = false) {
    ChatRequest r;
    r.model = "llama3.1";
    r.stream = stream;
    r.max_tokens = 128;
    r.temperature = 0.0;
    r.tools = {{"fs.read", "Read a file", {{"type", "object"}}}};
    r.messages = {ChatMessage::user("Read a.txt")};
    return r;
  }

  static std::string line(const std::string& content, bool done = false,
                          const std::string& extra = "") {
    return cat(
        R"({"model":"llama3.1","created_at":"2025-05-27T22:54:57Z","message":{"role":"assistant","content":)",
        Json(content).dump(), extra, "},\"done\":", done ? "true" : "false",
        done ? R"(,"done_reason":"stop","total_duration":100,"prompt_eval_count":26,"eval_count":9)"
             : "",
        "}\n");
  }

  static std::vector<std::string> stream() {
    return {line("Reading"), line(" now."),
            line("", false,
                 R"(,"tool_calls":[{"function":{"name":"fs.read","arguments":{"path":"a.txt"}}}])"),
            line("", true)};
  }

  HttpReplayServer server_;
  test::SleepLog sleeps_;
};

TEST_F(OllamaTest, PlainReplyAndRequestShape) {
  server_.enqueue(ReplayResponse::json(200, line("Hello!", true)));
  ChatRequest r = request();
  ToolCall call{"call_0", "fs.read", {{"path", "b.txt"}}};
  r.messages.push_back(ChatMessage::assistant("", {call}));
  r.messages.push_back(ChatMessage::tool_result(call, "bee"));
  auto response = provider().chat(r, {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->text, "Hello!");
  EXPECT_EQ(response->usage, (TokenUsage{26, 9}));
  EXPECT_EQ(response->stop_reason, StopReason::kEndTurn);

  auto sent = server_.requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].target, "/api/chat");
  EXPECT_EQ(sent[0].header("authorization"), "");
  Json body = Json::parse(sent[0].body);
  EXPECT_EQ(body["stream"], false);
  EXPECT_EQ(body["options"]["num_predict"], 128);
  EXPECT_EQ(body["tools"][0]["function"]["name"], "fs.read");
  EXPECT_EQ(body["messages"][1]["tool_calls"][0]["function"]["arguments"]["path"], "b.txt");
  EXPECT_EQ(body["messages"][2]["role"], "tool");
  EXPECT_EQ(body["messages"][2]["tool_name"], "fs.read");
}

TEST_F(OllamaTest, NdjsonStreamWithToolCallSplitAnywhere) {
  for (size_t piece : {size_t{4096}, size_t{5}, size_t{1}}) {
    server_.enqueue(
        ReplayResponse::stream(test::split_every(stream(), piece), "application/x-ndjson"));
    std::string streamed;
    auto response =
        provider().chat(request(true), [&streamed](std::string_view d) { streamed += d; });
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(streamed, "Reading now.");
    ASSERT_EQ(response->tool_calls.size(), 1u);
    EXPECT_EQ(response->tool_calls[0].name, "fs.read");
    EXPECT_EQ(response->tool_calls[0].arguments, (Json{{"path", "a.txt"}}));
    EXPECT_FALSE(response->tool_calls[0].id.empty());
    EXPECT_EQ(response->stop_reason, StopReason::kToolUse);
    EXPECT_EQ(response->usage, (TokenUsage{26, 9}));
  }
}

TEST_F(OllamaTest, ServerErrorThenSuccessAndUnknownModel) {
  server_.enqueue(ReplayResponse::json(503, R"({"error":"server busy"})"));
  server_.enqueue(ReplayResponse::json(200, line("ok", true)));
  auto response = provider().chat(request(), {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(sleeps_.taken().size(), 1u);

  server_.enqueue(
      ReplayResponse::json(404, R"({"error":"model \"nope\" not found, try pulling it first"})"));
  response = provider().chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsNotFound(response.status()));
  EXPECT_NE(message_of(response.status()).find("try pulling it first"), std::string::npos);
}

TEST_F(OllamaTest, ErrorLineMalformedLineAndCutStream) {
  server_.enqueue(ReplayResponse::stream({line("a"), "{\"error\":\"out of memory\"}\n"},
                                         "application/x-ndjson"));
  auto response = provider().chat(request(true), {});
  ASSERT_FALSE(response.ok());
  EXPECT_NE(message_of(response.status()).find("out of memory"), std::string::npos);

  server_.enqueue(ReplayResponse::stream({line("a"), "{\"message\": {\n"}, "application/x-ndjson"));
  response = provider().chat(request(true), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsInternal(response.status()));

  ReplayResponse cut = ReplayResponse::stream(stream(), "application/x-ndjson");
  cut.cut_after_pieces = 2;
  server_.enqueue(cut);
  std::string streamed;
  response = provider().chat(request(true), [&streamed](std::string_view d) { streamed += d; });
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsUnavailable(response.status())) << response.status();
  EXPECT_EQ(streamed, "Reading now.");
}

TEST_F(OllamaTest, HostedKeyIsSentAsBearerWhenSet) {
  server_.enqueue(ReplayResponse::json(200, line("hi", true)));
  auto response = provider({{"OLLAMA_API_KEY", "ollama-key"}}).chat(request(), {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(server_.requests()[0].header("authorization"), "Bearer ollama-key");
}

}  // namespace
}  // namespace lotus::llm
