// ScriptedProvider: replays a file of model turns, for demos and tests.
//
// Each call to chat() takes the next scripted turn: text (streamed in word
// pieces), tool calls, an injected error, a delay, token usage. The script is
// JSON or YAML, either a list of turns or {responses: [...], loop: bool}:
//
//   responses:
//     - text: "Let me read it."
//       tool_calls: [{name: fs.read, arguments: {path: README.md}}]
//     - {delay_ms: 200, text: "It says hello.", usage: {input_tokens: 12, output_tokens: 4}}
//     - error: {code: unavailable, message: "simulated outage"}
//
// Error codes: unavailable, rate_limited (resource_exhausted), unauthenticated,
// permission_denied, deadline_exceeded, invalid_argument, not_found, internal.
#pragma once

#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "lotus/llm.h"

namespace lotus::llm {

class ScriptedProvider : public LlmProvider {
 public:
  // `script` as described above; errors name the turn and field.
  static Result<std::unique_ptr<ScriptedProvider>> from_json(std::string name, const Json& script);
  // .json files are JSON; anything else is read as YAML.
  static Result<std::unique_ptr<ScriptedProvider>> from_file(std::string name,
                                                             const std::filesystem::path& path);

  std::string_view name() const override { return name_; }
  Result<ChatResponse> chat(const ChatRequest& request, const StreamCallback& on_text) override;

  // The most recent requests received (up to keep_requests), in order;
  // tests inspect them.
  std::vector<ChatRequest> requests() const;
  // How many requests to keep (default 64); 0 keeps none, for benchmarks.
  void set_keep_requests(size_t keep);
  // How many scripted turns are left (loops never run out).
  size_t remaining() const;

 private:
  struct Turn {
    std::string text;
    std::vector<ToolCall> tool_calls;
    Status error;
    int delay_ms = 0;
    std::optional<TokenUsage> usage;
    std::optional<StopReason> stop_reason;
    std::string raw_stop_reason;
  };

  ScriptedProvider(std::string name, std::vector<Turn> turns, bool loop);
  static Result<Turn> parse_turn(const Json& turn, size_t index);

  std::string name_;
  std::vector<Turn> turns_;
  bool loop_ = false;
  mutable std::mutex mutex_;
  size_t next_ = 0;
  std::deque<ChatRequest> requests_;
  size_t keep_requests_ = 64;
};

// A YAML document as JSON (scalars typed as YAML 1.2's core schema does;
// quoted scalars stay strings).
Result<Json> yaml_file_to_json(const std::filesystem::path& path);

}  // namespace lotus::llm
