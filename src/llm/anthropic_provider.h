// AnthropicProvider: the Anthropic Messages API (POST /v1/messages).
//
// System messages become the top-level `system` text, tool results become
// `tool_result` blocks in user turns, and streamed replies are read from the
// SSE events (message_start, content_block_*, message_delta, message_stop).
#pragma once

#include <string>

#include "llm/http_client.h"
#include "llm/provider_http.h"
#include "lotus/llm.h"

namespace lotus::llm {

struct AnthropicOptions {
  HttpProviderOptions http;
  std::string api_version = "2023-06-01";

  // name "anthropic", https://api.anthropic.com, key from ANTHROPIC_API_KEY.
  static AnthropicOptions defaults();
};

class AnthropicProvider : public LlmProvider {
 public:
  explicit AnthropicProvider(AnthropicOptions options);

  std::string_view name() const override { return options_.http.name; }
  Status ready() const override { return key_.status(); }
  ProbeReport probe(std::chrono::milliseconds timeout) const override;
  Result<ChatResponse> chat(const ChatRequest& request, const StreamCallback& on_text) override;

 private:
  AnthropicOptions options_;
  Result<std::string> key_;
  HttpClient client_;
};

// The request body for `request` (exposed for tests).
Json anthropic_request_body(const ChatRequest& request, const ToolNameMap& names);
// The model ids in a GET /v1/models reply ({"data": [{"id": ...}], "has_more"});
// nullopt when more pages follow.
std::optional<std::vector<std::string>> anthropic_model_ids(const Json& reply);
// A complete (non-streamed) reply.
Result<ChatResponse> anthropic_parse_reply(const Json& reply, const ToolNameMap& names);

}  // namespace lotus::llm
