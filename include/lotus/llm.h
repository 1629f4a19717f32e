// LLM chat: the provider-neutral request and reply every model adapter speaks.
//
// A ChatRequest carries the conversation, the tools the model may call and
// the sampling limits; an LlmProvider turns it into one assistant turn (text
// and/or tool calls, with token usage). Adapters for Anthropic, OpenAI
// (and compatible servers), Ollama and a scripted replayer live in src/llm.
// chat() is synchronous and may block for minutes: run it off the bus threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lotus/event.h"
#include "lotus/status.h"

namespace lotus {

enum class ChatRole { kSystem, kUser, kAssistant, kTool };

std::string_view to_string(ChatRole role);

// One call the model asks for. `arguments` is a JSON object, or, when the
// model produced malformed JSON, a string holding its raw text (argument
// validation then reports it back to the model).
struct ToolCall {
  std::string id;
  std::string name;
  Json arguments = Json::object();

  bool operator==(const ToolCall&) const = default;
};

struct ChatMessage {
  ChatRole role = ChatRole::kUser;
  std::string text;
  std::vector<ToolCall> tool_calls;  // assistant turns that called tools
  std::string tool_call_id;          // tool results: the call answered
  std::string tool_name;             // tool results: the tool that ran (Ollama needs it)
  bool is_error = false;             // tool results: the call failed

  static ChatMessage system(std::string text);
  static ChatMessage user(std::string text);
  static ChatMessage assistant(std::string text, std::vector<ToolCall> calls = {});
  static ChatMessage tool_result(const ToolCall& call, std::string result, bool is_error = false);
};

// {"role": "user", "text": ..., "tool_calls": [{id, name, arguments}], "tool_call_id",
//  "tool_name", "is_error"} (empty fields left out): how conversations are
// stored and shown over the API.
Json to_json(const ChatMessage& message);
// The inverse; the error names the field.
Result<ChatMessage> chat_message_from_json(const Json& json);

// A tool offered to the model; `parameters` is a JSON Schema object.
struct ToolSpec {
  std::string name;
  std::string description;
  Json parameters = Json{{"type", "object"}, {"properties", Json::object()}};
};

// The tools offered in a request: shared and immutable, so copying a request
// (for routing, retries, fallbacks) never copies the schemas. Reads like a
// const vector.
class ToolSpecs {
 public:
  ToolSpecs() = default;
  ToolSpecs(std::initializer_list<ToolSpec> tools)
      : tools_(std::make_shared<const std::vector<ToolSpec>>(tools)) {}
  explicit ToolSpecs(std::vector<ToolSpec> tools)
      : tools_(std::make_shared<const std::vector<ToolSpec>>(std::move(tools))) {}

  const std::vector<ToolSpec>& items() const { return tools_ ? *tools_ : empty_list(); }
  auto begin() const { return items().begin(); }
  auto end() const { return items().end(); }
  bool empty() const { return items().empty(); }
  size_t size() const { return items().size(); }
  const ToolSpec& operator[](size_t i) const { return items()[i]; }

 private:
  static const std::vector<ToolSpec>& empty_list() {
    static const std::vector<ToolSpec> kEmpty;
    return kEmpty;
  }
  std::shared_ptr<const std::vector<ToolSpec>> tools_;
};

struct ChatRequest {
  std::string model;  // an alias for the router, a concrete model id for an adapter
  std::vector<ChatMessage> messages;
  ToolSpecs tools;
  int max_tokens = 1024;
  std::optional<double> temperature;
  bool stream = false;
  // The module asking, for per-module token and cost accounting.
  std::string module;
  // Set (from any thread) to abandon the call; chat() then returns Cancelled.
  const std::atomic<bool>* cancel = nullptr;
};

struct TokenUsage {
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;

  bool operator==(const TokenUsage&) const = default;
};

enum class StopReason { kEndTurn, kToolUse, kMaxTokens, kStopSequence, kOther };

std::string_view to_string(StopReason reason);

struct ChatResponse {
  std::string text;
  std::vector<ToolCall> tool_calls;
  StopReason stop_reason = StopReason::kEndTurn;
  std::string raw_stop_reason;  // as the provider said it
  TokenUsage usage;
  std::string provider;  // which provider answered ("anthropic", ...)
  std::string model;     // the concrete model id that answered
};

// Receives each piece of reply text as it streams in; called on the thread
// that runs chat(), before chat() returns.
using StreamCallback = std::function<void(std::string_view delta)>;

// What a connectivity check found (LlmProvider::probe). Never holds a key.
struct ProbeReport {
  // OK when the provider can be used: its server answered the check with a
  // 2xx, or, for providers without a server, ready(). Else why not.
  Status status;
  bool network = false;    // false: nothing was contacted (no server, or no key)
  bool reachable = false;  // a server answered, whatever the HTTP status
  std::string url;         // the endpoint asked
  int http_status = 0;     // 0 when no response arrived
  std::chrono::milliseconds latency{0};
  // The model ids the server lists, when it listed them completely.
  std::optional<std::vector<std::string>> models;
};

class LlmProvider {
 public:
  virtual ~LlmProvider() = default;

  // The provider's configured name, as errors and accounting show it.
  virtual std::string_view name() const = 0;

  // OK when the provider has what it needs to be called (a key, a script);
  // else why not, naming what to set. Does not contact the server.
  virtual Status ready() const { return absl::OkStatus(); }

  // Checks that the server answers and accepts the key, with one cheap
  // request (a model list) taking at most `timeout`. Providers without a
  // server report ready(). Safe to call from several threads at once.
  virtual ProbeReport probe(std::chrono::milliseconds timeout) const;

  // One assistant turn. `on_text` (may be empty) sees text deltas when
  // `request.stream` is set; the returned response always holds the whole
  // text. Expected failures (network, auth, rate limits, bad replies) are
  // statuses whose messages never contain credentials.
  virtual Result<ChatResponse> chat(const ChatRequest& request, const StreamCallback& on_text) = 0;
};

}  // namespace lotus
