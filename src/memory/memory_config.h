// How the memory module's config becomes an open store's settings.
//
// The built-in `memory` module and `lotus memory ...` read the same keys (the
// manifest's config_schema, overlaid by `modules: {memory: {...}}` in the
// config file), so both open the same folder with the same embedder:
//
//   embedder:                      # default {type: hashing}
//     type: openai | ollama | hashing
//     model: text-embedding-3-small   # openai default; ollama: nomic-embed-text
//     base_url: https://api.openai.com/v1   # ollama: http://localhost:11434
//     api_key_env: OPENAI_API_KEY    # or api_key_file; "" = the server takes no key
//     dimensions: 512                # optional; hashing: 384
//     batch_size: 64                 # texts per request
//     timeout_ms, connect_timeout_ms, max_attempts, headers  # as for llm providers
//   profile: embedded | server     # default embedded
//   postgres: postgresql://user@host/db   # server: L4 (required)
//   redis: redis://host:6379       # server: L1 and L2; default the bus URL when it is redis://
//   redis_key_prefix: "lotus:memory:"
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "llm/provider_router.h"
#include "lotus/memory.h"
#include "memory/embedded_memory.h"
#include "memory/server_memory.h"

namespace lotus::memory {

// The embedder `config` (the `embedder` object) describes; errors name
// `modules.memory.embedder.<key>`. Provider embedders without `dimensions`
// ask their server once for the vector size.
Result<std::shared_ptr<Embedder>> make_embedder(const Json& config,
                                                const llm::ProviderContext& context = {});

// Every setting of the memory module but `progress` and `clock`. `dir` is
// the config's data_dir ("~/" expanded) or else `default_dir`.
Result<EmbeddedMemoryOptions> embedded_memory_options(const Json& config,
                                                      const std::filesystem::path& default_dir,
                                                      const llm::ProviderContext& context = {});

// The server profile's settings: the embedded ones for the node's local
// part (index folder, embedder, tiers, ranking) plus `postgres`, `redis`
// (else `bus_url` when it is a redis:// URL) and `redis_key_prefix`.
Result<ServerMemoryOptions> server_memory_options(const Json& config,
                                                  const std::filesystem::path& default_dir,
                                                  const std::string& bus_url = "",
                                                  const llm::ProviderContext& context = {});

// Whether `config` asks for the server profile; an unknown profile is an
// error naming modules.memory.profile.
Result<bool> server_profile(const Json& config);

// Opens the store `config`'s profile names. `progress` is called while an
// index is rebuilt.
Result<std::unique_ptr<MemoryStore>> open_memory_store(
    const Json& config, const std::filesystem::path& default_dir, const std::string& bus_url,
    std::function<void(std::string_view, size_t, size_t)> progress,
    const llm::ProviderContext& context = {});

}  // namespace lotus::memory
