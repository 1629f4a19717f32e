#include "memory/provider_embedder.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "lotus/llm.h"
#include "lotus/strings.h"

namespace lotus::memory {
namespace {

// The shared retry loop hands a 2xx body to a decoder that builds a chat
// response; an embedding reply is read whole, so this one only collects the
// body and returns it as the response text.
class WholeBody final : public llm::ReplyDecoder {
 public:
  Status feed(std::string_view bytes) override {
    body_.append(bytes);
    return absl::OkStatus();
  }
  Result<ChatResponse> finish() override {
    ChatResponse response;
    response.text = std::move(body_);
    return response;
  }

 private:
  std::string body_;
};

// Reads one JSON array of numbers into an L2-normalized vector.
Result<std::vector<float>> read_vector(std::string_view provider, const Json& numbers,
                                       size_t position) {
  if (!numbers.is_array()) {
    return absl::InternalError(
        cat(provider, ": malformed reply: embedding ", position, " is not an array of numbers"));
  }
  std::vector<float> v;
  v.reserve(numbers.size());
  double norm = 0;
  for (const Json& x : numbers) {
    if (!x.is_number()) {
      return absl::InternalError(
          cat(provider, ": malformed reply: embedding ", position, " holds a non-number"));
    }
    const double d = x.get<double>();
    norm += d * d;
    v.push_back(static_cast<float>(d));
  }
  if (v.empty()) {
    return absl::InternalError(
        cat(provider, ": malformed reply: embedding ", position, " is empty"));
  }
  if (norm > 0) {
    const auto scale = static_cast<float>(1.0 / std::sqrt(norm));
    for (float& x : v) x *= scale;
  }
  return v;
}

Status count_mismatch(std::string_view provider, size_t got, size_t expected) {
  return absl::InternalError(
      cat(provider, ": the server returned ", got, " embeddings for ", expected, " texts"));
}

}  // namespace

ProviderEmbedderOptions ProviderEmbedderOptions::defaults(Api api) {
  ProviderEmbedderOptions options;
  options.api = api;
  if (api == Api::kOpenAi) {
    options.http.name = "embedder openai";
    options.http.base_url = "https://api.openai.com/v1";
    options.http.key.env_var = "OPENAI_API_KEY";
    options.model = "text-embedding-3-small";
  } else {
    options.http.name = "embedder ollama";
    options.http.base_url = "http://localhost:11434";
    options.http.key.env_var = "OLLAMA_API_KEY";
    options.http.key.required = false;
    options.model = "nomic-embed-text";
  }
  // An embedding call is short; a server that says nothing for a minute is gone.
  options.http.request_timeout = std::chrono::milliseconds(120'000);
  options.http.idle_timeout = std::chrono::milliseconds(60'000);
  return options;
}

Json openai_embedding_body(const std::string& model, const std::vector<std::string>& texts,
                           size_t dimensions) {
  Json body = {{"model", model}, {"input", texts}, {"encoding_format", "float"}};
  if (dimensions > 0) body["dimensions"] = dimensions;
  return body;
}

Json ollama_embedding_body(const std::string& model, const std::vector<std::string>& texts,
                           size_t dimensions) {
  Json body = {{"model", model}, {"input", texts}, {"truncate", true}};
  if (dimensions > 0) body["dimensions"] = dimensions;
  return body;
}

Result<std::vector<std::vector<float>>> parse_openai_embeddings(std::string_view provider,
                                                                const Json& reply, size_t count) {
  const auto data = reply.find("data");
  if (!reply.is_object() || data == reply.end() || !data->is_array()) {
    return absl::InternalError(cat(provider, ": malformed reply: no \"data\" array"));
  }
  if (data->size() != count) return count_mismatch(provider, data->size(), count);
  std::vector<std::vector<float>> out(count);
  for (size_t i = 0; i < data->size(); ++i) {
    const Json& item = (*data)[i];
    if (!item.is_object() || !item.contains("embedding")) {
      return absl::InternalError(
          cat(provider, ": malformed reply: data[", i, "] has no embedding"));
    }
    size_t index = i;
    if (auto it = item.find("index"); it != item.end()) {
      if (!it->is_number_unsigned() || it->get<size_t>() >= count) {
        return absl::InternalError(cat(provider, ": malformed reply: data[", i, "].index is ",
                                       it->dump(), " for ", count, " texts"));
      }
      index = it->get<size_t>();
    }
    if (!out[index].empty()) {
      return absl::InternalError(
          cat(provider, ": malformed reply: two embeddings with index ", index));
    }
    auto v = read_vector(provider, item["embedding"], index);
    if (!v.ok()) return v.status();
    out[index] = std::move(*v);
  }
  return out;
}

Result<std::vector<std::vector<float>>> parse_ollama_embeddings(std::string_view provider,
                                                                const Json& reply, size_t count) {
  const auto embeddings = reply.find("embeddings");
  if (!reply.is_object() || embeddings == reply.end() || !embeddings->is_array()) {
    return absl::InternalError(cat(provider, ": malformed reply: no \"embeddings\" array"));
  }
  if (embeddings->size() != count) return count_mismatch(provider, embeddings->size(), count);
  std::vector<std::vector<float>> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    auto v = read_vector(provider, (*embeddings)[i], i);
    if (!v.ok()) return v.status();
    out.push_back(std::move(*v));
  }
  return out;
}

ProviderEmbedder::ProviderEmbedder(ProviderEmbedderOptions options, std::string key)
    : options_(std::move(options)), key_(std::move(key)), dimension_(options_.dimensions) {}

Result<std::unique_ptr<ProviderEmbedder>> ProviderEmbedder::create(
    ProviderEmbedderOptions options) {
  if (options.model.empty()) {
    return absl::InvalidArgumentError(cat(options.http.name, ": no model configured"));
  }
  options.batch_size = std::max<size_t>(1, options.batch_size);
  auto key = llm::resolve_api_key(options.http.name, options.http.key, options.http.env);
  if (!key.ok()) return key.status();
  std::unique_ptr<ProviderEmbedder> embedder(new ProviderEmbedder(std::move(options), *key));
  if (embedder->dimension_ == 0) {
    auto probe = embedder->request({"dimension probe"});
    if (!probe.ok()) {
      return Status(probe.status().code(),
                    cat(message_of(probe.status()),
                        " (while asking for the vector size; setting `dimensions` skips this)"));
    }
    embedder->dimension_ = probe->front().size();
  }
  return embedder;
}

std::string ProviderEmbedder::name() const {
  return cat(options_.api == ProviderEmbedderOptions::Api::kOpenAi ? "openai:" : "ollama:",
             options_.model);
}

Result<std::vector<float>> ProviderEmbedder::embed(std::string_view text) {
  auto vectors = request({std::string(text)});
  if (!vectors.ok()) return vectors.status();
  return std::move(vectors->front());
}

Result<std::vector<std::vector<float>>> ProviderEmbedder::embed_batch(
    const std::vector<std::string>& texts) {
  std::vector<std::vector<float>> out;
  out.reserve(texts.size());
  for (size_t start = 0; start < texts.size(); start += options_.batch_size) {
    const size_t end = std::min(texts.size(), start + options_.batch_size);
    auto vectors = request(std::vector<std::string>(texts.begin() + static_cast<ptrdiff_t>(start),
                                                    texts.begin() + static_cast<ptrdiff_t>(end)));
    if (!vectors.ok()) return vectors.status();
    for (auto& v : *vectors) out.push_back(std::move(v));
  }
  return out;
}

Result<std::vector<std::vector<float>>> ProviderEmbedder::request(
    const std::vector<std::string>& texts) {
  const bool openai = options_.api == ProviderEmbedderOptions::Api::kOpenAi;
  const std::string& provider = options_.http.name;
  // Servers refuse empty inputs; a text of nothing embeds as a space.
  std::vector<std::string> inputs = texts;
  for (std::string& text : inputs) {
    if (text.empty()) text = " ";
  }
  llm::ProviderCall call;
  call.options = &options_.http;
  call.api_key = key_;
  call.http.url = llm::join_url(options_.http.base_url, openai ? "embeddings" : "api/embed");
  call.http.body = (openai ? openai_embedding_body(options_.model, inputs, options_.dimensions)
                           : ollama_embedding_body(options_.model, inputs, options_.dimensions))
                       .dump(-1, ' ', false, Json::error_handler_t::replace);
  call.http.headers = {{"content-type", "application/json"}};
  if (!key_.empty()) call.http.headers.emplace_back("authorization", cat("Bearer ", key_));
  for (const auto& [k, v] : options_.http.extra_headers) call.http.headers.emplace_back(k, v);
  call.http.connect_timeout = options_.http.connect_timeout;
  call.http.total_timeout = options_.http.request_timeout;
  call.http.idle_timeout = options_.http.idle_timeout;
  call.make_decoder = [] { return std::make_unique<WholeBody>(); };
  auto reply = llm::call_with_retries(client_, call);
  if (!reply.ok()) return reply.status();
  auto doc = llm::parse_json(provider, "the embedding reply", reply->text);
  if (!doc.ok()) return doc.status();
  auto vectors = openai ? parse_openai_embeddings(provider, *doc, inputs.size())
                        : parse_ollama_embeddings(provider, *doc, inputs.size());
  if (!vectors.ok()) return vectors.status();
  for (const auto& v : *vectors) {
    if (dimension_ != 0 && v.size() != dimension_) {
      return absl::FailedPreconditionError(
          cat(provider, ": model ", options_.model, " returned vectors of ", v.size(),
              " numbers, expected ", dimension_,
              options_.dimensions != 0 ? "; fix `dimensions` in the embedder config"
                                       : "; did the model change? run `lotus memory reindex`"));
    }
  }
  return vectors;
}

}  // namespace lotus::memory
