// ProviderEmbedder: embeddings from a model server, for real semantic recall.
//
// Two wire formats: OpenAI-compatible `POST {base_url}/embeddings` (OpenAI's
// base_url ends in /v1; llama.cpp, vLLM, LM Studio and others speak it too)
// and Ollama's `POST {base_url}/api/embed`. Texts go in batches of
// `batch_size` per request; retries, timeouts, key lookup and error wording
// are the LLM providers' (llm/provider_http.h), and keys never reach a
// message. Vectors are L2-normalized here whatever the server sends.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "llm/http_client.h"
#include "llm/provider_http.h"
#include "lotus/memory.h"

namespace lotus::memory {

struct ProviderEmbedderOptions {
  enum class Api { kOpenAi, kOllama };
  Api api = Api::kOpenAi;
  // name (used in messages), base_url, key source, timeouts, retries.
  llm::HttpProviderOptions http;
  std::string model;
  // Asked of the server (OpenAI text-embedding-3-*, some Ollama models) and
  // checked on every reply; 0 = the model's own size, learned by one request
  // when the embedder is created.
  size_t dimensions = 0;
  size_t batch_size = 64;  // texts per request

  // OpenAI: https://api.openai.com/v1, key from OPENAI_API_KEY.
  // Ollama: http://localhost:11434, no key (OLLAMA_API_KEY sent when set).
  static ProviderEmbedderOptions defaults(Api api);
};

class ProviderEmbedder final : public Embedder {
 public:
  // Resolves the key and, when `dimensions` is 0, asks the server once for
  // the model's vector size. Errors say what to set or what the server said.
  static Result<std::unique_ptr<ProviderEmbedder>> create(ProviderEmbedderOptions options);

  // "openai:<model>" or "ollama:<model>": what the index records.
  std::string name() const override;
  size_t dimension() const override { return dimension_; }
  Result<std::vector<float>> embed(std::string_view text) override;
  Result<std::vector<std::vector<float>>> embed_batch(
      const std::vector<std::string>& texts) override;

 private:
  ProviderEmbedder(ProviderEmbedderOptions options, std::string key);
  // One request for at most batch_size texts.
  Result<std::vector<std::vector<float>>> request(const std::vector<std::string>& texts);

  ProviderEmbedderOptions options_;
  std::string key_;
  size_t dimension_ = 0;
  llm::HttpClient client_;
};

// The request body each API documents, and the vectors read back from its
// reply (in input order; OpenAI's `index` field is honoured).
Json openai_embedding_body(const std::string& model, const std::vector<std::string>& texts,
                           size_t dimensions);
Json ollama_embedding_body(const std::string& model, const std::vector<std::string>& texts,
                           size_t dimensions);
Result<std::vector<std::vector<float>>> parse_openai_embeddings(std::string_view provider,
                                                                const Json& reply, size_t count);
Result<std::vector<std::vector<float>>> parse_ollama_embeddings(std::string_view provider,
                                                                const Json& reply, size_t count);

}  // namespace lotus::memory
