#include "llm/openai_provider.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "llm/provider_test_support.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

using std::chrono::milliseconds;
using testing::HttpReplayServer;
using testing::ReplayResponse;

constexpr char kKey[] = "sk-proj-abcdefghijklmnop0123456789SECRET";

class OpenAiTest : public ::testing::Test {
 protected:
  OpenAiProvider provider(std::map<std::string, std::string> env = {{"OPENAI_API_KEY", kKey}}) {
    OpenAiOptions options = OpenAiOptions::defaults();
    test::use_server(options.http, server_, sleeps_, std::move(env));
    return OpenAiProvider(std::move(options));
  }

  static ChatRequest request(bool stream = false) {
    ChatRequest r;
    r.model = "gpt-4o-mini";
    r.stream = stream;
    r.tools = {{"fs.read", "Read a file", {{"type", "object"}}},
               {"shell.run", "Run a command", {{"type", "object"}}}};
    r.messages = {ChatMessage::system("Be brief."), ChatMessage::user("Look around.")};
    return r;
  }

  static std::string chunk(const std::string& delta, const std::string& finish = "null") {
    return test::sse_data(cat(
        R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",)",
        R"("choices":[{"index":0,"delta":)", delta, R"(,"finish_reason":)", finish, "}]}"));
  }

  // Two parallel tool calls whose names and arguments arrive in fragments.
  static std::vector<std::string> tool_stream() {
    return {
        chunk(R"({"role":"assistant","content":""})"),
        chunk(R"({"content":"On it."})"),
        chunk(
            R"({"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"fs_read","arguments":""}}]})"),
        chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"{\"pa"}}]})"),
        chunk(
            R"({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"shell_run","arguments":"{\"cmd\":"}}]})"),
        chunk(R"({"tool_calls":[{"index":0,"function":{"arguments":"th\":\"a.txt\"}"}}]})"),
        chunk(R"({"tool_calls":[{"index":1,"function":{"arguments":" \"ls\"}"}}]})"),
        chunk("{}", R"("tool_calls")"),
        test::sse_data(R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,)"
                       R"("model":"gpt-4o-mini","choices":[],)"
                       R"("usage":{"prompt_tokens":31,"completion_tokens":17,"total_tokens":48}})"),
        test::sse_data("[DONE]"),
    };
  }

  HttpReplayServer server_;
  test::SleepLog sleeps_;
};

TEST_F(OpenAiTest, PlainReplyWithToolCalls) {
  server_.enqueue(ReplayResponse::json(200, R"({"id":"chatcmpl-9","object":"chat.completion",
      "model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant",
      "content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"fs_read",
      "arguments":"{\"path\":\"notes.md\"}"}}]},"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":40,"completion_tokens":12,"total_tokens":52}})"));
  ChatRequest r = request();
  ToolCall call{"call_0", "shell.run", {{"cmd", "pwd"}}};
  r.messages.push_back(ChatMessage::assistant("", {call}));
  r.messages.push_back(ChatMessage::tool_result(call, "/home"));
  auto response = provider().chat(r, {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->text, "");
  ASSERT_EQ(response->tool_calls.size(), 1u);
  EXPECT_EQ(response->tool_calls[0], (ToolCall{"call_1", "fs.read", {{"path", "notes.md"}}}));
  EXPECT_EQ(response->stop_reason, StopReason::kToolUse);
  EXPECT_EQ(response->usage, (TokenUsage{40, 12}));
  EXPECT_EQ(response->model, "gpt-4o-mini-2024-07-18");

  auto sent = server_.requests();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].target, "/chat/completions");
  EXPECT_EQ(sent[0].header("authorization"), cat("Bearer ", kKey));
  Json body = Json::parse(sent[0].body);
  EXPECT_EQ(body["max_tokens"], 1024);
  EXPECT_EQ(body["tools"][1]["function"]["name"], "shell_run");
  EXPECT_EQ(body["messages"][2]["content"], nullptr);
  EXPECT_EQ(body["messages"][2]["tool_calls"][0]["function"]["arguments"], R"({"cmd":"pwd"})");
  EXPECT_EQ(body["messages"][3]["role"], "tool");
  EXPECT_EQ(body["messages"][3]["tool_call_id"], "call_0");
}

TEST_F(OpenAiTest, StreamedToolCallDeltasSplitAcrossChunks) {
  for (size_t piece : {size_t{4096}, size_t{13}, size_t{1}}) {
    server_.enqueue(ReplayResponse::stream(test::split_every(tool_stream(), piece)));
    std::string streamed;
    auto response =
        provider().chat(request(true), [&streamed](std::string_view d) { streamed += d; });
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(streamed, "On it.");
    ASSERT_EQ(response->tool_calls.size(), 2u);
    EXPECT_EQ(response->tool_calls[0], (ToolCall{"call_a", "fs.read", {{"path", "a.txt"}}}));
    EXPECT_EQ(response->tool_calls[1], (ToolCall{"call_b", "shell.run", {{"cmd", "ls"}}}));
    EXPECT_EQ(response->stop_reason, StopReason::kToolUse);
    EXPECT_EQ(response->usage, (TokenUsage{31, 17}));
  }
  Json body = Json::parse(server_.requests().back().body);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
}

TEST_F(OpenAiTest, MalformedToolArgumentsReachTheCallerAsText) {
  server_.enqueue(ReplayResponse::json(200, R"({"choices":[{"message":{"content":null,
      "tool_calls":[{"id":"c","type":"function","function":{"name":"fs_read","arguments":"{\"path\": "}}]},
      "finish_reason":"tool_calls"}]})"));
  auto response = provider().chat(request(), {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->tool_calls[0].arguments, Json("{\"path\": "));
}

TEST_F(OpenAiTest, RateLimitHonoursRetryAfterThenServerErrorBacksOff) {
  server_.enqueue(ReplayResponse::json(
      429,
      R"({"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}})",
      {{"retry-after", "1"}}));
  server_.enqueue(
      ReplayResponse::json(500, R"({"error":{"message":"internal","type":"server_error"}})"));
  server_.enqueue(ReplayResponse::stream(tool_stream()));
  auto response = provider().chat(request(true), {});
  ASSERT_TRUE(response.ok()) << response.status();
  auto delays = sleeps_.taken();
  ASSERT_EQ(delays.size(), 2u);
  EXPECT_EQ(delays[0], milliseconds(1000));
  EXPECT_GE(delays[1].count(), 100);  // second retry: 200 ms with jitter
  EXPECT_LE(delays[1].count(), 200);
}

TEST_F(OpenAiTest, RetryAfterBeyondTheLimitFailsAtOnce) {
  server_.enqueue(
      ReplayResponse::json(429, R"({"error":{"message":"quota"}})", {{"retry-after", "3600"}}));
  auto response = provider().chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(response.status()));
  EXPECT_NE(message_of(response.status()).find("retry after 3600 s"), std::string::npos);
  EXPECT_TRUE(sleeps_.taken().empty());
}

TEST_F(OpenAiTest, RejectedKeyIsRedactedAndNamesTheVariable) {
  server_.enqueue(ReplayResponse::json(
      401,
      R"({"error":{"message":"Incorrect API key provided: sk-proj-****************************SECRET.","type":"invalid_request_error","code":"invalid_api_key"}})"));
  auto response = provider().chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsUnauthenticated(response.status()));
  std::string text(message_of(response.status()));
  EXPECT_NE(text.find("check OPENAI_API_KEY"), std::string::npos) << text;
  EXPECT_EQ(text.find("SECRET"), std::string::npos) << text;
}

TEST_F(OpenAiTest, MalformedJsonAndStreamCut) {
  server_.enqueue(ReplayResponse::json(200, "{\"choices\": [{\"message\": "));
  auto response = provider().chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsInternal(response.status()));

  ReplayResponse cut = ReplayResponse::stream(tool_stream());
  cut.cut_after_pieces = 4;
  server_.enqueue(cut);
  response = provider().chat(request(true), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsUnavailable(response.status())) << response.status();
  EXPECT_EQ(server_.requests().size(), 2u);  // text was shown: not retried
}

TEST_F(OpenAiTest, CompatibleServerWithoutKeyOrDone) {
  // llama.cpp server / LM Studio style: no key, no usage chunk, no [DONE].
  OpenAiOptions options = OpenAiOptions::defaults();
  options.http.name = "lmstudio";
  options.http.key.required = false;
  options.stream_usage = false;
  options.max_tokens_field = "max_tokens";
  test::use_server(options.http, server_, sleeps_, {});
  server_.enqueue(ReplayResponse::stream({chunk(R"({"content":"Hi"})"), chunk("{}", R"("stop")")}));
  OpenAiProvider lmstudio(std::move(options));
  ASSERT_TRUE(lmstudio.ready().ok());
  auto response = lmstudio.chat(request(true), {});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->text, "Hi");
  EXPECT_EQ(response->provider, "lmstudio");
  auto sent = server_.requests();
  EXPECT_EQ(sent[0].header("authorization"), "");
  EXPECT_FALSE(Json::parse(sent[0].body).contains("stream_options"));
}

TEST_F(OpenAiTest, EveryCutPointIsAnErrorNeverAPartialAnswer) {
  OpenAiOptions options = OpenAiOptions::defaults();
  test::use_server(options.http, server_, sleeps_, {{"OPENAI_API_KEY", kKey}});
  options.http.retry.max_attempts = 1;
  OpenAiProvider once(std::move(options));
  // Without its finish_reason chunk and [DONE], the reply is incomplete.
  std::vector<std::string> stream = tool_stream();
  stream.resize(7);
  auto pieces = test::split_every(stream, 37);
  for (size_t cut = 0; cut < pieces.size(); ++cut) {
    ReplayResponse r = ReplayResponse::stream(pieces);
    r.cut_after_pieces = static_cast<int>(cut);
    server_.enqueue(r);
    auto response = once.chat(request(true), {});
    EXPECT_FALSE(response.ok()) << "cut after piece " << cut;
  }
}

TEST_F(OpenAiTest, UnreachableServerIsRetriedThenReported) {
  OpenAiOptions options = OpenAiOptions::defaults();
  test::use_server(options.http, server_, sleeps_, {{"OPENAI_API_KEY", kKey}});
  {
    HttpReplayServer gone;
    options.http.base_url = gone.base_url();
  }  // nothing listens on that port any more
  auto response = OpenAiProvider(std::move(options)).chat(request(), {});
  ASSERT_FALSE(response.ok());
  EXPECT_TRUE(absl::IsUnavailable(response.status())) << response.status();
  EXPECT_NE(message_of(response.status()).find("openai: cannot reach the server"),
            std::string::npos);
  EXPECT_EQ(sleeps_.taken().size(), 2u);
}

TEST_F(OpenAiTest, ErrorObjectInsideTheStream) {
  server_.enqueue(ReplayResponse::stream({test::sse_data(
      R"({"error":{"message":"context length exceeded","type":"invalid_request_error"}})")}));
  auto response = provider().chat(request(true), {});
  ASSERT_FALSE(response.ok());
  EXPECT_NE(message_of(response.status()).find("context length exceeded"), std::string::npos);
}

}  // namespace
}  // namespace lotus::llm
