// OllamaProvider: Ollama's native chat endpoint (POST {base_url}/api/chat).
//
// Local models need no key (OLLAMA_API_KEY is sent as a bearer token when
// set, for hosted Ollama). Streamed replies are NDJSON lines, the last one
// with `done: true` and the token counts (prompt_eval_count, eval_count).
#pragma once

#include <string>

#include "llm/http_client.h"
#include "llm/provider_http.h"
#include "lotus/llm.h"

namespace lotus::llm {

struct OllamaOptions {
  HttpProviderOptions http;

  // name "ollama", http://localhost:11434, optional key from OLLAMA_API_KEY.
  static OllamaOptions defaults();
};

class OllamaProvider : public LlmProvider {
 public:
  explicit OllamaProvider(OllamaOptions options);

  std::string_view name() const override { return options_.http.name; }
  Status ready() const override { return key_.status(); }
  ProbeReport probe(std::chrono::milliseconds timeout) const override;
  Result<ChatResponse> chat(const ChatRequest& request, const StreamCallback& on_text) override;

 private:
  OllamaOptions options_;
  Result<std::string> key_;
  HttpClient client_;
};

// The model names in a GET /api/tags reply ({"models": [{"name", "model", ...}]}); a
// name tagged :latest is listed untagged too, as requests may name it.
std::optional<std::vector<std::string>> ollama_model_ids(const Json& reply);
Json ollama_request_body(const ChatRequest& request);
Result<ChatResponse> ollama_parse_reply(std::string_view provider, const Json& reply);

}  // namespace lotus::llm
