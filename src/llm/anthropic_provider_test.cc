#include "llm/anthropic_provider.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <string>
#include <vector>

#include "llm/provider_test_support.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

using std::chrono::milliseconds;
using testing::HttpReplayServer;
using testing::ReplayResponse;

constexpr char kKey[] = "sk-ant-test-0123456789abcdefSECRET";

class AnthropicTest : public ::testing::Test {
 protected:
  AnthropicProvider provider(std::map<std::string, std::string> env = {
                                 {"ANTHROPIC_API_KEY", kKey}}) {
    AnthropicOptions options = AnthropicOptions::defaults();
    test::use_server(options.http, server_, sleeps_, std::move(env));
    return AnthropicProvider(std::move(options));
  }

  static ChatRequest request(bool stream = false) {
    ChatRequest r;
    r.model = "claude-sonnet-4-20250514";
    r.max_tokens = 256;
    r.stream = stream;
    r.tools = {{"fs.read",
                "Read a file",
                {{"type", "object"},
                 {"properties", {{"path", {{"type", "string"}}}}},
                 {"required", {"path"}}}}};
    r.messages = {ChatMessage::system("Be brief."), ChatMessage::user("What is in README.md?")};
    return r;
  }

  static std::string ok_reply() {
    return R"({"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-20250514",
      "content":[{"type":"text","text":"Hello there."}],"stop_reason":"end_turn",
      "stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":4}})";
  }

  // A streamed reply: text, then a tool call whose input arrives in pieces.
  static std::vector<std::string> tool_stream() {
    return {
        test::sse("message_start",
                  R"({"type":"message_start","message":{"id":"msg_02","type":"message",)"
                  R"("role":"assistant","content":[],"model":"claude-sonnet-4-20250514",)"
                  R"("stop_reason":null,"stop_sequence":null,)"
                  R"("usage":{"input_tokens":25,"output_tokens":1}}})"),
        test::sse(
            "content_block_start",
            R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"),
        test::sse("ping", R"({"type": "ping"})"),
        test::sse(
            "content_block_delta",
            R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}})"),
        test::sse(
            "content_block_delta",
            R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"read it."}})"),
        test::sse("content_block_stop", R"({"type":"content_block_stop","index":0})"),
        test::sse("content_block_start",
                  R"({"type":"content_block_start","index":1,"content_block":)"
                  R"({"type":"tool_use","id":"toolu_01","name":"fs_read","input":{}}})"),
        test::sse(
            "content_block_delta",
            R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}})"),
        test::sse(
            "content_block_delta",
            R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"pa"}})"),
        test::sse(
            "content_block_delta",
            R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"th\": \"READ"}})"),
        test::sse(
            "content_block_delta",
            R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"ME.md\"}"}})"),
        test::sse("content_block_stop", R"({"type":"content_block_stop","index":1})"),
        test::sse(
            "message_delta",
            R"({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},)"
            R"("usage":{"output_tokens":40}})"),
        test::sse("message_stop", R"({"type":"message_stop"})"),
    };
  }

  HttpReplayServer server_;
  test::SleepLog sleeps_;
};

TEST_F(AnthropicTest, PlainReplyAndTheRequestItSent) {
  server_.enqueue(ReplayResponse::json(200, ok_reply()));
  ChatRequest r = request();
  ToolCall call{"toolu_9", "fs.read", {{"path", "a.txt"}}};
  r.messages.push_back(ChatMessage::assistant("Reading.", {call}));
  r.messages.push_back(ChatMessage::tool_result(call, "contents"));
  r.temperature = 0.2;
  auto response = provider().chat(r, {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->text, "Hello there.");
  EXPECT_EQ(response->stop_reason, StopReason::kEndTurn);
  EXPECT_EQ(response->usage, (TokenUsage{12, 4}));
  EXPECT_EQ(response->provider, "anthropic");
  EXPECT_EQ(response->model, "claude-sonnet-4-20250514");

  auto sent = server_.requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].target, "/v1/messages");
  EXPECT_EQ(sent[0].header("x-api-key"), kKey);
  EXPECT_EQ(sent[0].header("anthropic-version"), "2023-06-01");
  Json body = Json::parse(sent[0].body);
  EXPECT_EQ(body["system"], "Be brief.");
  EXPECT_EQ(body["max_tokens"], 256);
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.2);
  EXPECT_FALSE(body.contains("stream"));
  EXPECT_EQ(body["tools"][0]["name"], "fs_read");
  EXPECT_EQ(body["tools"][0]["input_schema"]["required"][0], "path");
  ASSERT_EQ(body["messages"].size(), 3u);
  EXPECT_EQ(body["messages"][1]["content"][1]["type"], "tool_use");
  EXPECT_EQ(body["messages"][1]["content"][1]["name"], "fs_read");
  EXPECT_EQ(body["messages"][1]["content"][1]["input"]["path"], "a.txt");
  EXPECT_EQ(body["messages"][2]["role"], "user");
  EXPECT_EQ(body["messages"][2]["content"][0]["type"], "tool_result");
  EXPECT_EQ(body["messages"][2]["content"][0]["tool_use_id"], "toolu_9");
}

TEST_F(AnthropicTest, PlainToolUseReply) {
  server_.enqueue(ReplayResponse::json(200, R"({"type":"message","model":"m","content":[
      {"type":"text","text":"Checking."},
      {"type":"tool_use","id":"toolu_1","name":"fs_read","input":{"path":"x"}}],
      "stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":9}})"));
  auto response = provider().chat(request(), {});
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_EQ(response->tool_calls.size(), 1u);
  EXPECT_EQ(response->tool_calls[0], (ToolCall{"toolu_1", "fs.read", {{"path", "x"}}}));
  EXPECT_EQ(response->stop_reason, StopReason::kToolUse);
}

TEST_F(AnthropicTest, StreamsTextAndToolInputSplitAcrossChunks) {
  for (size_t piece : {size_t{1000}, size_t{7}, size_t{1}}) {
    server_.enqueue(ReplayResponse::stream(test::split_every(tool_stream(), piece)));
    std::string streamed;
    auto response =
        provider().chat(request(true), [&streamed](std::string_view d) { streamed += d; });
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(streamed, "Let me read it.");
    EXPECT_EQ(response->text, "Let me read it.");
    ASSERT_EQ(response->tool_calls.size(), 1u);
    EXPECT_EQ(response->tool_calls[0].id, "toolu_01");
    EXPECT_EQ(response->tool_calls[0].name, "fs.read");
    EXPECT_EQ(response->tool_calls[0].arguments, (Json{{"path", "README.md"}}));
    EXPECT_EQ(response->stop_reason, StopReason::kToolUse);
    EXPECT_EQ(response->usage, (TokenUsage{25, 40}));
  }
  EXPECT_EQ(Json::parse(server_.requests().back().body)["stream"], true);
}

TEST_F(AnthropicTest, RateLimitHonoursRetryAfter) {
  server_.enqueue(ReplayResponse::json(
      429, R"({"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}})",
      {{"retry-after", "2"}}));
  server_.enqueue(ReplayResponse::json(200, ok_reply()));
  auto response = provider().chat(request(), {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(server_.requests().size(), 2u);
  EXPECT_EQ(sleeps_.taken(), std::vector<milliseconds>{milliseconds(2000)});
}

TEST_F(AnthropicTest, ServerErrorThenSuccessBacksOff) {
  server_.enqueue(ReplayResponse::json(
      500, R"({"type":"error","error":{"type":"api_error","message":"oops"}})"));
  server_.enqueue(ReplayResponse::json(200, ok_reply()));
  auto response = provider().chat(request(), {});
  ASSERT_TRUE(response.ok()) << response.status();
  auto delays = sleeps_.taken();
  ASSERT_EQ(delays.size(), 1u);
  EXPECT_GE(delays[0].count(), 50);
  EXPECT_LE(delays[0].count(), 100);
}

TEST_F(AnthropicTest, OverloadedEveryTimeGivesUp) {
  for (int i = 0; i < 3; ++i) {
    server_.enqueue(ReplayResponse::json(
        529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"));
  }
  auto response = provider().chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsUnavailable(response.status()));
  EXPECT_NE(message_of(response.status()).find("overloaded_error: Overloaded"), std::string::npos);
  EXPECT_NE(message_of(response.status()).find("gave up after 3 attempts"), std::string::npos);
  EXPECT_EQ(sleeps_.taken().size(), 2u);
}

TEST_F(AnthropicTest, RejectedKeyNamesTheVariableAndNeverLeaksIt) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  // The server echoes the key it was given, in the error and after a 500.
  server_.enqueue(ReplayResponse::json(500, cat(R"({"error":{"message":"bad key )", kKey, "\"}}")));
  server_.enqueue(ReplayResponse::json(
      401,
      cat(R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key )",
          kKey, "\"}}")));
  auto response = provider().chat(request(), {});
  spdlog::set_default_logger(previous);
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(response.status()));
  std::string text(message_of(response.status()));
  EXPECT_NE(text.find("check ANTHROPIC_API_KEY"), std::string::npos) << text;
  EXPECT_NE(text.find("authentication_error"), std::string::npos) << text;
  EXPECT_EQ(text.find(kKey), std::string::npos) << text;
  EXPECT_EQ(text.find("SECRET"), std::string::npos) << text;
  EXPECT_EQ(server_.requests().size(), 2u);  // 401 is not retried
  auto logged = sink->last_formatted();
  ASSERT_FALSE(logged.empty());
  for (const auto& line : logged) EXPECT_EQ(line.find("SECRET"), std::string::npos) << line;
}

TEST_F(AnthropicTest, MissingKeySaysWhatToSetWithoutCalling) {
  auto response = provider({}).chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(response.status()));
  EXPECT_NE(message_of(response.status()).find("ANTHROPIC_API_KEY"), std::string::npos);
  EXPECT_TRUE(server_.requests().empty());
}

TEST_F(AnthropicTest, MalformedJsonIsAnErrorNotACrash) {
  server_.enqueue(ReplayResponse::json(200, R"({"type":"message","content":[{"type":"te)"));
  auto response = provider().chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsInternal(response.status()));
  EXPECT_NE(message_of(response.status()).find("malformed JSON"), std::string::npos);

  server_.enqueue(ReplayResponse::stream({test::sse("message_start", "{not json")}));
  response = provider().chat(request(true), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsInternal(response.status()));
}

TEST_F(AnthropicTest, FieldsOfTheWrongTypeAreErrorsNotExceptions) {
  server_.enqueue(
      ReplayResponse::json(200, R"({"type":"message","content":[{"type":"text","text":7}]})"));
  auto response = provider().chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsInternal(response.status())) << response.status();

  server_.enqueue(ReplayResponse::stream({test::sse(
      "content_block_delta",
      R"({"type":"content_block_delta","index":"zero","delta":{"type":"text_delta"}})")}));
  response = provider().chat(request(true), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsInternal(response.status())) << response.status();
}

TEST_F(AnthropicTest, StreamCutMidReplyFailsWithoutRepeatingText) {
  ReplayResponse cut = ReplayResponse::stream(tool_stream());
  cut.cut_after_pieces = 5;  // after "Let me " and "read it."
  server_.enqueue(cut);
  std::string streamed;
  auto response =
      provider().chat(request(true), [&streamed](std::string_view d) { streamed += d; });
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsUnavailable(response.status())) << response.status();
  EXPECT_EQ(streamed, "Let me read it.");
  EXPECT_EQ(server_.requests().size(), 1u);
}

TEST_F(AnthropicTest, EveryCutPointIsAnErrorNeverAPartialAnswer) {
  AnthropicOptions options = AnthropicOptions::defaults();
  test::use_server(options.http, server_, sleeps_, {{"ANTHROPIC_API_KEY", kKey}});
  options.http.retry.max_attempts = 1;
  AnthropicProvider once(std::move(options));
  auto pieces = test::split_every(tool_stream(), 41);
  for (size_t cut = 0; cut < pieces.size(); ++cut) {
    ReplayResponse r = ReplayResponse::stream(pieces);
    r.cut_after_pieces = static_cast<int>(cut);
    server_.enqueue(r);
    auto response = once.chat(request(true), {});
    EXPECT_FALSE(response.ok()) << "cut after piece " << cut;
  }
}

TEST_F(AnthropicTest, StreamCutBeforeAnyTextIsRetried) {
  ReplayResponse cut = ReplayResponse::stream(tool_stream());
  cut.cut_after_pieces = 1;
  server_.enqueue(cut);
  server_.enqueue(ReplayResponse::stream(tool_stream()));
  std::string streamed;
  auto response =
      provider().chat(request(true), [&streamed](std::string_view d) { streamed += d; });
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(streamed, "Let me read it.");
  EXPECT_EQ(server_.requests().size(), 2u);
}

TEST_F(AnthropicTest, ErrorEventInTheStream) {
  server_.enqueue(ReplayResponse::stream(
      {tool_stream()[0],
       test::sse(
           "error",
           R"({"type":"error","error":{"type":"invalid_request_error","message":"nope"}})")}));
  auto response = provider().chat(request(true), {});
  ASSERT_FALSE(response.ok());
  EXPECT_NE(message_of(response.status()).find("invalid_request_error: nope"), std::string::npos);
}

TEST_F(AnthropicTest, TimesOut) {
  AnthropicOptions options = AnthropicOptions::defaults();
  test::use_server(options.http, server_, sleeps_, {{"ANTHROPIC_API_KEY", kKey}});
  options.http.request_timeout = milliseconds(100);
  options.http.retry.max_attempts = 1;
  ReplayResponse slow = ReplayResponse::json(200, ok_reply());
  slow.delay_before_headers = milliseconds(300);
  server_.enqueue(slow);
  auto response = AnthropicProvider(std::move(options)).chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(response.status())) << response.status();
}

TEST_F(AnthropicTest, CancelStopsAStream) {
  ReplayResponse slow = ReplayResponse::stream(tool_stream());
  slow.delay_between_pieces = milliseconds(30);
  server_.enqueue(slow);
  std::atomic<bool> cancel{false};
  ChatRequest r = request(true);
  r.cancel = &cancel;
  auto response = provider().chat(r, [&cancel](std::string_view) { cancel = true; });
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsCancelled(response.status())) << response.status();
}

}  // namespace
}  // namespace lotus::llm
