// OpenAiProvider: OpenAI Chat Completions (POST {base_url}/chat/completions).
//
// The same wire format serves every OpenAI-compatible server (vLLM,
// llama.cpp server, LM Studio, Ollama's /v1) by base URL, with or without a
// key. Streamed replies are SSE chunks ending with `data: [DONE]`; tool-call
// arguments arrive as string fragments keyed by the call's index.
#pragma once

#include <string>

#include "llm/http_client.h"
#include "llm/provider_http.h"
#include "lotus/llm.h"

namespace lotus::llm {

struct OpenAiOptions {
  HttpProviderOptions http;
  // OpenAI's newer models want max_completion_tokens; most compatible
  // servers only know max_tokens.
  std::string max_tokens_field = "max_tokens";
  // Ask for the usage chunk at the end of a stream (stream_options).
  bool stream_usage = true;

  // name "openai", https://api.openai.com/v1, key from OPENAI_API_KEY.
  static OpenAiOptions defaults();
};

class OpenAiProvider : public LlmProvider {
 public:
  explicit OpenAiProvider(OpenAiOptions options);

  std::string_view name() const override { return options_.http.name; }
  Status ready() const override { return key_.status(); }
  ProbeReport probe(std::chrono::milliseconds timeout) const override;
  Result<ChatResponse> chat(const ChatRequest& request, const StreamCallback& on_text) override;

 private:
  OpenAiOptions options_;
  Result<std::string> key_;
  HttpClient client_;
};

// The model ids in a GET {base_url}/models reply ({"object": "list", "data": [{"id": ...}]}).
std::optional<std::vector<std::string>> openai_model_ids(const Json& reply);
Json openai_request_body(const ChatRequest& request, const ToolNameMap& names,
                         const OpenAiOptions& options);
Result<ChatResponse> openai_parse_reply(const Json& reply, const ToolNameMap& names);

}  // namespace lotus::llm
