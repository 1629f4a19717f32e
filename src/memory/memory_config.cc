#include "memory/memory_config.h"

#include <cstdlib>
#include <string>
#include <type_traits>

#include "lotus/strings.h"
#include "memory/hashing_embedder.h"
#include "memory/provider_embedder.h"

namespace lotus::memory {
namespace {

constexpr const char* kWhere = "modules.memory.embedder";

template <typename T>
Result<T> number(const Json& config, const std::string& where, const char* key, T fallback) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_number())
    return absl::InvalidArgumentError(cat(where, ".", key, ": must be a number"));
  if constexpr (std::is_unsigned_v<T>) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      return absl::InvalidArgumentError(cat(where, ".", key, ": must be a whole number >= 0"));
    }
  }
  return it->get<T>();
}

}  // namespace

Result<std::shared_ptr<Embedder>> make_embedder(const Json& config,
                                                const llm::ProviderContext& context) {
  if (config.is_null()) return std::shared_ptr<Embedder>(std::make_shared<HashingEmbedder>());
  if (!config.is_object()) {
    return absl::InvalidArgumentError(cat(kWhere, ": must be a map, e.g. {type: ollama}"));
  }
  const std::string type = config.value("type", std::string("hashing"));
  auto dimensions = number<size_t>(config, kWhere, "dimensions", 0);
  if (!dimensions.ok()) return dimensions.status();
  if (type == "hashing") {
    for (const auto& [key, value] : config.items()) {
      if (key != "type" && key != "dimensions") {
        return absl::InvalidArgumentError(
            cat(kWhere, ".", key, ": unknown key for the hashing embedder (it takes dimensions)"));
      }
    }
    return std::shared_ptr<Embedder>(std::make_shared<HashingEmbedder>(
        *dimensions != 0 ? *dimensions : HashingEmbedder::kDefaultDimension));
  }
  ProviderEmbedderOptions options;
  if (type == "openai") {
    options = ProviderEmbedderOptions::defaults(ProviderEmbedderOptions::Api::kOpenAi);
    // A compatible server at another address usually takes no key.
    if (config.contains("base_url") && !config.contains("api_key_env") &&
        !config.contains("api_key_file")) {
      options.http.key.required = false;
    }
  } else if (type == "ollama") {
    options = ProviderEmbedderOptions::defaults(ProviderEmbedderOptions::Api::kOllama);
  } else {
    return absl::InvalidArgumentError(
        cat(kWhere, ".type: \"", type, "\" is not an embedder (hashing, openai or ollama)"));
  }
  const std::string name = options.http.name;
  if (Status s = llm::read_http_options(kWhere, name, config, context,
                                        {"model", "dimensions", "batch_size"}, options.http);
      !s.ok()) {
    return s;
  }
  options.http.name = name;
  if (auto it = config.find("model"); it != config.end()) {
    if (!it->is_string() || it->get<std::string>().empty()) {
      return absl::InvalidArgumentError(cat(kWhere, ".model: must be a model name"));
    }
    options.model = it->get<std::string>();
  }
  options.dimensions = *dimensions;
  auto batch = number<size_t>(config, kWhere, "batch_size", options.batch_size);
  if (!batch.ok()) return batch.status();
  options.batch_size = *batch;
  auto embedder = ProviderEmbedder::create(std::move(options));
  if (!embedder.ok()) return embedder.status();
  return std::shared_ptr<Embedder>(std::move(*embedder));
}

Result<EmbeddedMemoryOptions> embedded_memory_options(const Json& config,
                                                      const std::filesystem::path& default_dir,
                                                      const llm::ProviderContext& context) {
  const Json c = config.is_object() ? config : Json::object();
  const std::string where = "modules.memory";
  EmbeddedMemoryOptions options;
  const std::string dir = c.value("data_dir", std::string());
  if (dir.empty()) {
    options.dir = default_dir;
  } else if (const char* home = std::getenv("HOME"); dir.rfind("~/", 0) == 0 && home != nullptr) {
    options.dir = std::filesystem::path(home) / dir.substr(2);
  } else {
    options.dir = dir;
  }
  struct Field {
    const char* key;
    double* real = nullptr;
    size_t* whole = nullptr;
  };
  for (const Field& f : {
           Field{"working_capacity", nullptr, &options.working_capacity},
           Field{"working_ttl_seconds", &options.working_ttl_seconds},
           Field{"short_term_seconds", &options.short_term_seconds},
           Field{"short_term_max", nullptr, &options.short_term_max},
           Field{"long_term_threshold", &options.long_term_threshold},
           Field{"promote_threshold", &options.promote_threshold},
           Field{"hnsw_m", nullptr, &options.index.m},
           Field{"hnsw_ef_construction", nullptr, &options.index.ef_construction},
           Field{"hnsw_ef_search", nullptr, &options.index.ef_search},
           Field{"keyword_max_postings", nullptr, &options.keyword_max_postings},
       }) {
    if (f.real != nullptr) {
      auto v = number<double>(c, where, f.key, *f.real);
      if (!v.ok()) return v.status();
      *f.real = *v;
    } else {
      auto v = number<size_t>(c, where, f.key, *f.whole);
      if (!v.ok()) return v.status();
      *f.whole = *v;
    }
  }
  auto embedder = make_embedder(c.value("embedder", Json()), context);
  if (!embedder.ok()) return embedder.status();
  options.embedder = std::move(*embedder);
  return options;
}

}  // namespace lotus::memory
