// ProviderRouter: model aliases, fallback chains and token/cost accounting.
//
// Manifests name models by alias (`claude-sonnet-4`, `gpt-4o-mini`) or as
// `provider:model` (`ollama:deepseek-coder`); config maps aliases to a
// provider and a model id, and lists fallbacks per alias. The router tries
// the chain in order and counts requests, tokens and cost per provider and
// per module. Providers are built by type through ProviderFactories, so the
// router names no concrete adapter. Config (the `llm:` section, as JSON):
//
//   providers:                       # default: anthropic, openai, ollama
//     anthropic: {type: anthropic}                 # key from ANTHROPIC_API_KEY
//     lmstudio: {type: openai, base_url: "http://localhost:1234/v1", api_key_env: ""}
//     local: {type: ollama, base_url: "http://localhost:11434"}
//     demo: {type: scripted, file: demo.yaml}
//   models:                          # merged over built-in aliases
//     claude-sonnet-4: {provider: anthropic, model: claude-sonnet-4-20250514,
//                       input_cost_per_mtok: 3, output_cost_per_mtok: 15}
//   fallbacks:
//     claude-sonnet-4: [gpt-4o-mini, "ollama:llama3.1"]
//   default_model: claude-sonnet-4
//
// Provider keys: type, base_url, api_key_env, api_key_file, timeout_ms,
// connect_timeout_ms, idle_timeout_ms, max_attempts, backoff_initial_ms,
// backoff_max_ms, headers; openai: max_tokens_field, stream_usage;
// anthropic: api_version; scripted: file (or script, inline).
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "llm/provider_http.h"
#include "lotus/llm.h"

namespace lotus::llm {

// What a factory gets besides the provider's own config section.
struct ProviderContext {
  EnvLookup env = process_env;
  std::filesystem::path base_dir;  // relative files (scripts, keys) resolve here
  Sleeper sleep = cancellable_sleep;
};

// Fills the settings every HTTP client of a provider shares (base_url,
// api_key_env, api_key_file, timeout_ms, connect_timeout_ms, idle_timeout_ms,
// max_attempts, backoff_initial_ms, backoff_max_ms, headers) from `config`;
// any other key but "type" and `extra` is an error naming `where`.
Status read_http_options(const std::string& where, const std::string& name, const Json& config,
                         const ProviderContext& context, const std::set<std::string>& extra,
                         HttpProviderOptions& options);

using ProviderFactory = std::function<Result<std::unique_ptr<LlmProvider>>(
    const std::string& name, const Json& config, const ProviderContext& context)>;

// Provider types by name ("anthropic", "openai", "ollama", "scripted").
class ProviderFactories {
 public:
  static ProviderFactories builtin();
  void add(std::string type, ProviderFactory factory);
  const ProviderFactory* find(const std::string& type) const;

 private:
  std::map<std::string, ProviderFactory> factories_;
};

struct UsageTotals {
  int64_t requests = 0;
  int64_t failures = 0;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  double cost_usd = 0;
};

struct ModelRoute {
  std::string provider;
  std::string model;
  double input_cost_per_mtok = 0;
  double output_cost_per_mtok = 0;
};

class ProviderRouter : public LlmProvider {
 public:
  // Builds the providers and aliases `config` describes (a JSON object, may
  // be empty). Errors name the key (llm.providers.x.type: ...).
  static Result<std::unique_ptr<ProviderRouter>> create(
      const Json& config, ProviderContext context = {},
      const ProviderFactories& factories = ProviderFactories::builtin());

  std::string_view name() const override { return "router"; }
  // OK when at least one provider is ready; else what to set.
  Status ready() const override;
  // The model a request that names none goes to: llm.default_model, or when
  // that is unset the first built-in alias whose provider has its key
  // (claude-sonnet-4, then gpt-4o-mini). Ollama needs no key, so it is never
  // guessed. Empty when there is none.
  std::string default_model() const;
  // OK when default_model() names a model; else what to set.
  Status default_model_ready() const;
  // Routes request.model (empty: default_model) through its fallback chain.
  Result<ChatResponse> chat(const ChatRequest& request, const StreamCallback& on_text) override;
  // The same for a request the caller hands over, so it is not copied.
  Result<ChatResponse> route(ChatRequest request, const StreamCallback& on_text);
  // Same, with fallbacks given by the caller (a manifest's providers.fallback)
  // instead of the configured ones. Takes the request by value: each model
  // in the chain gets it with its own model id, without copying it again.
  Result<ChatResponse> chat_with_fallbacks(ChatRequest request, const StreamCallback& on_text,
                                           const std::vector<std::string>& fallbacks);

  // The provider and model id a model reference resolves to.
  Result<ModelRoute> resolve(const std::string& model) const;

  // Adds (or replaces) a provider under `name`; for tests and embedders.
  // These three are for setting up, before chat() runs on any thread.
  void add_provider(std::string name, std::unique_ptr<LlmProvider> provider);
  // The provider configured under `name`, or null.
  LlmProvider* find_provider(const std::string& name) const;
  void add_model(std::string alias, ModelRoute route);
  void set_fallbacks(std::string alias, std::vector<std::string> chain);

  UsageTotals provider_usage(const std::string& provider) const;
  UsageTotals module_usage(const std::string& module) const;
  // {"providers": {name: totals}, "modules": {name: totals}} for health/metrics.
  Json usage_report() const;
  // One line per provider: ready, or why not.
  std::vector<std::string> describe() const;
  // The configured provider names, sorted.
  std::vector<std::string> provider_names() const;
  // The model ids requests may send to `provider`: its aliases' ids, and the
  // default model and fallbacks that resolve to it. Sorted, no repeats.
  std::vector<std::string> model_ids(const std::string& provider) const;

 private:
  ProviderRouter() = default;
  static Result<std::unique_ptr<ProviderRouter>> build(const Json& config,
                                                       const ProviderContext& context,
                                                       const ProviderFactories& factories);
  void account(const std::string& provider, const std::string& module, const ModelRoute& route,
               const Result<ChatResponse>& result);

  std::map<std::string, std::unique_ptr<LlmProvider>> providers_;
  std::map<std::string, ModelRoute> models_;
  std::map<std::string, std::vector<std::string>> fallbacks_;
  std::string default_model_;

  mutable std::mutex mutex_;
  std::map<std::string, UsageTotals> by_provider_;
  std::map<std::string, UsageTotals> by_module_;
};

}  // namespace lotus::llm
