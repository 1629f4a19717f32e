#include "memory/memory_config.h"

#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>

#include "bus/redis_connection.h"
#include "lotus/strings.h"
#include "memory/hashing_embedder.h"
#include "memory/postgres_client.h"
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

Result<bool> server_profile(const Json& config) {
  if (!config.is_object() || !config.contains("profile") || config["profile"].is_null()) {
    return false;
  }
  const Json& profile = config["profile"];
  if (profile == "embedded") return false;
  if (profile == "server") return true;
  return absl::InvalidArgumentError(
      cat("modules.memory.profile: must be \"embedded\" or \"server\", got ", profile.dump()));
}

Result<ServerMemoryOptions> server_memory_options(const Json& config,
                                                  const std::filesystem::path& default_dir,
                                                  const std::string& bus_url,
                                                  const llm::ProviderContext& context) {
  auto local = embedded_memory_options(config, default_dir, context);
  if (!local.ok()) return local.status();
  ServerMemoryOptions options;
  options.local = std::move(*local);
  const Json c = config.is_object() ? config : Json::object();
  for (const auto& [key, field] :
       {std::pair{"postgres", &options.postgres_url}, std::pair{"redis", &options.redis_url},
        std::pair{"redis_key_prefix", &options.key_prefix}}) {
    const auto it = c.find(key);
    if (it == c.end() || it->is_null()) continue;
    if (!it->is_string()) {
      return absl::InvalidArgumentError(cat("modules.memory.", key, ": must be a string"));
    }
    if (!it->get<std::string>().empty()) *field = it->get<std::string>();
  }
  if (options.redis_url.empty() && bus_url.rfind("redis://", 0) == 0) options.redis_url = bus_url;
  if (options.postgres_url.empty()) {
    return absl::InvalidArgumentError(
        "modules.memory.postgres: the server profile needs a PostgreSQL URL "
        "(postgresql://user@host/database)");
  }
  if (options.postgres_url.rfind("postgresql://", 0) != 0 &&
      options.postgres_url.rfind("postgres://", 0) != 0) {
    return absl::InvalidArgumentError(
        cat("modules.memory.postgres: must be a postgresql:// URL, got \"",
            mask_postgres_url(options.postgres_url), "\""));
  }
  if (options.redis_url.empty()) {
    return absl::InvalidArgumentError(
        "modules.memory.redis: the server profile needs a Redis URL (or a redis:// bus)");
  }
  if (auto address = parse_redis_url(options.redis_url); !address.ok()) {
    return absl::InvalidArgumentError(cat("modules.memory.redis: ", message_of(address.status())));
  }
  return options;
}

Result<std::unique_ptr<MemoryStore>> open_memory_store(
    const Json& config, const std::filesystem::path& default_dir, const std::string& bus_url,
    std::function<void(std::string_view, size_t, size_t)> progress,
    const llm::ProviderContext& context) {
  auto server = server_profile(config);
  if (!server.ok()) return server.status();
  if (*server) {
    auto options = server_memory_options(config, default_dir, bus_url, context);
    if (!options.ok()) return options.status();
    options->local.progress = std::move(progress);
    auto store = ServerMemory::open(std::move(*options));
    if (!store.ok()) return store.status();
    return std::unique_ptr<MemoryStore>(std::move(*store));
  }
  auto options = embedded_memory_options(config, default_dir, context);
  if (!options.ok()) return options.status();
  options->progress = std::move(progress);
  auto store = EmbeddedMemory::open(std::move(*options));
  if (!store.ok()) return store.status();
  return std::unique_ptr<MemoryStore>(std::move(*store));
}

}  // namespace lotus::memory
