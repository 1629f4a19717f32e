#include "llm/provider_router.h"

#include <spdlog/spdlog.h>

#include <set>
#include <utility>

#include "llm/anthropic_provider.h"
#include "llm/ollama_provider.h"
#include "llm/openai_provider.h"
#include "llm/scripted_provider.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

Status unknown_keys(const Json& config, const std::string& where,
                    const std::set<std::string>& known) {
  for (const auto& [key, value] : config.items()) {
    if (known.count(key) == 0) {
      return absl::InvalidArgumentError(cat(where, ".", key, ": unknown key"));
    }
  }
  return absl::OkStatus();
}

Result<std::string> get_string(const Json& config, const std::string& where, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::string();
  if (!it->is_string()) return absl::InvalidArgumentError(cat(where, ".", key, ": must be text"));
  return it->get<std::string>();
}

Result<std::optional<int64_t>> get_ms(const Json& config, const std::string& where,
                                      const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer() || it->get<int64_t>() < 0) {
    return absl::InvalidArgumentError(cat(where, ".", key, ": must be a whole number >= 0"));
  }
  return std::optional<int64_t>(it->get<int64_t>());
}

std::string resolve_path(const std::string& path, const ProviderContext& context) {
  if (path.empty() || path.rfind("~/", 0) == 0 || std::filesystem::path(path).is_absolute() ||
      context.base_dir.empty()) {
    return path;
  }
  return (context.base_dir / path).string();
}

}  // namespace

Status read_http_options(const std::string& where, const std::string& name, const Json& config,
                         const ProviderContext& context, const std::set<std::string>& extra,
                         HttpProviderOptions& options) {
  std::set<std::string> known = {"type",
                                 "base_url",
                                 "api_key_env",
                                 "api_key_file",
                                 "timeout_ms",
                                 "connect_timeout_ms",
                                 "idle_timeout_ms",
                                 "max_attempts",
                                 "backoff_initial_ms",
                                 "backoff_max_ms",
                                 "headers"};
  known.insert(extra.begin(), extra.end());
  if (Status s = unknown_keys(config, where, known); !s.ok()) return s;
  options.name = name;
  options.env = context.env;
  options.sleep = context.sleep;
  auto base_url = get_string(config, where, "base_url");
  if (!base_url.ok()) return base_url.status();
  if (!base_url->empty()) options.base_url = *base_url;
  if (config.contains("api_key_env")) {
    auto env = get_string(config, where, "api_key_env");
    if (!env.ok()) return env.status();
    options.key.env_var = *env;
    // An explicitly empty variable means: this server takes no key.
    if (env->empty()) options.key.required = false;
  }
  auto file = get_string(config, where, "api_key_file");
  if (!file.ok()) return file.status();
  options.key.file = resolve_path(*file, context);
  struct Field {
    const char* key;
    std::chrono::milliseconds* target;
  };
  for (Field f : {Field{"timeout_ms", &options.request_timeout},
                  Field{"connect_timeout_ms", &options.connect_timeout},
                  Field{"idle_timeout_ms", &options.idle_timeout},
                  Field{"backoff_initial_ms", &options.retry.initial_backoff},
                  Field{"backoff_max_ms", &options.retry.max_backoff}}) {
    auto value = get_ms(config, where, f.key);
    if (!value.ok()) return value.status();
    if (*value) *f.target = std::chrono::milliseconds(**value);
  }
  auto attempts = get_ms(config, where, "max_attempts");
  if (!attempts.ok()) return attempts.status();
  if (*attempts) options.retry.max_attempts = static_cast<int>(std::max<int64_t>(1, **attempts));
  if (auto headers = config.find("headers"); headers != config.end()) {
    if (!headers->is_object()) {
      return absl::InvalidArgumentError(cat(where, ".headers: must be a map"));
    }
    for (const auto& [key, value] : headers->items()) {
      if (!value.is_string()) {
        return absl::InvalidArgumentError(cat(where, ".headers.", key, ": must be text"));
      }
      options.extra_headers[key] = value.get<std::string>();
    }
  }
  return absl::OkStatus();
}

namespace {

// Fills the settings every HTTP adapter shares from `config`.
Status read_http_options(const std::string& name, const Json& config,
                         const ProviderContext& context, const std::set<std::string>& extra,
                         HttpProviderOptions& options) {
  return read_http_options(cat("llm.providers.", name), name, config, context, extra, options);
}

Result<std::unique_ptr<LlmProvider>> make_anthropic(const std::string& name, const Json& config,
                                                    const ProviderContext& context) {
  AnthropicOptions options = AnthropicOptions::defaults();
  if (Status s = read_http_options(name, config, context, {"api_version"}, options.http); !s.ok()) {
    return s;
  }
  auto version = get_string(config, cat("llm.providers.", name), "api_version");
  if (!version.ok()) return version.status();
  if (!version->empty()) options.api_version = *version;
  return std::unique_ptr<LlmProvider>(new AnthropicProvider(std::move(options)));
}

Result<std::unique_ptr<LlmProvider>> make_openai(const std::string& name, const Json& config,
                                                 const ProviderContext& context) {
  OpenAiOptions options = OpenAiOptions::defaults();
  // A compatible server at another address usually takes no key.
  if (config.contains("base_url") && !config.contains("api_key_env") &&
      !config.contains("api_key_file")) {
    options.http.key.required = false;
  }
  if (Status s = read_http_options(name, config, context, {"max_tokens_field", "stream_usage"},
                                   options.http);
      !s.ok()) {
    return s;
  }
  std::string where = cat("llm.providers.", name);
  auto field = get_string(config, where, "max_tokens_field");
  if (!field.ok()) return field.status();
  if (!field->empty()) options.max_tokens_field = *field;
  if (auto usage = config.find("stream_usage"); usage != config.end()) {
    if (!usage->is_boolean()) {
      return absl::InvalidArgumentError(cat(where, ".stream_usage: must be true or false"));
    }
    options.stream_usage = usage->get<bool>();
  }
  return std::unique_ptr<LlmProvider>(new OpenAiProvider(std::move(options)));
}

Result<std::unique_ptr<LlmProvider>> make_ollama(const std::string& name, const Json& config,
                                                 const ProviderContext& context) {
  OllamaOptions options = OllamaOptions::defaults();
  if (Status s = read_http_options(name, config, context, {}, options.http); !s.ok()) return s;
  return std::unique_ptr<LlmProvider>(new OllamaProvider(std::move(options)));
}

Result<std::unique_ptr<LlmProvider>> make_scripted(const std::string& name, const Json& config,
                                                   const ProviderContext& context) {
  std::string where = cat("llm.providers.", name);
  if (Status s = unknown_keys(config, where, {"type", "file", "script", "keep_requests"});
      !s.ok()) {
    return s;
  }
  Result<std::unique_ptr<ScriptedProvider>> provider = absl::InvalidArgumentError(
      cat(where, ": a scripted provider needs `file:` (or an inline `script:`)"));
  if (auto script = config.find("script"); script != config.end()) {
    provider = ScriptedProvider::from_json(name, *script);
  } else {
    auto file = get_string(config, where, "file");
    if (!file.ok()) return file.status();
    if (!file->empty()) provider = ScriptedProvider::from_file(name, resolve_path(*file, context));
  }
  if (!provider.ok()) return provider.status();
  if (auto keep = config.find("keep_requests"); keep != config.end()) {
    if (!keep->is_number_integer() || keep->get<int64_t>() < 0) {
      return absl::InvalidArgumentError(cat(where, ".keep_requests: must be a whole number >= 0"));
    }
    (*provider)->set_keep_requests(keep->get<size_t>());
  }
  return std::unique_ptr<LlmProvider>(std::move(*provider));
}

// Aliases known without config; config's `models:` adds to and overrides them.
// Prices are USD per million tokens as published by each vendor.
std::map<std::string, ModelRoute> builtin_models() {
  return {
      {"claude-sonnet-4", {"anthropic", "claude-sonnet-4-20250514", 3, 15}},
      {"claude-opus-4", {"anthropic", "claude-opus-4-20250514", 15, 75}},
      {"claude-3-5-haiku", {"anthropic", "claude-3-5-haiku-20241022", 0.8, 4}},
      {"gpt-4o", {"openai", "gpt-4o", 2.5, 10}},
      {"gpt-4o-mini", {"openai", "gpt-4o-mini", 0.15, 0.6}},
  };
}

Json totals_json(const UsageTotals& t) {
  return {{"requests", t.requests},
          {"failures", t.failures},
          {"input_tokens", t.input_tokens},
          {"output_tokens", t.output_tokens},
          {"cost_usd", t.cost_usd}};
}

}  // namespace

ProviderFactories ProviderFactories::builtin() {
  ProviderFactories f;
  f.add("anthropic", make_anthropic);
  f.add("openai", make_openai);
  f.add("ollama", make_ollama);
  f.add("scripted", make_scripted);
  return f;
}

void ProviderFactories::add(std::string type, ProviderFactory factory) {
  factories_[std::move(type)] = std::move(factory);
}

const ProviderFactory* ProviderFactories::find(const std::string& type) const {
  auto it = factories_.find(type);
  return it == factories_.end() ? nullptr : &it->second;
}

Result<std::unique_ptr<ProviderRouter>> ProviderRouter::create(const Json& config,
                                                               ProviderContext context,
                                                               const ProviderFactories& factories) {
  std::unique_ptr<ProviderRouter> router(new ProviderRouter());
  Json section = config.is_null() ? Json::object() : config;
  if (!section.is_object()) return absl::InvalidArgumentError("llm: must be a map");
  if (Status s =
          unknown_keys(section, "llm", {"providers", "models", "fallbacks", "default_model"});
      !s.ok()) {
    return s;
  }
  Json providers = section.value("providers", Json());
  if (providers.is_null()) {
    providers = {{"anthropic", {{"type", "anthropic"}}},
                 {"openai", {{"type", "openai"}}},
                 {"ollama", {{"type", "ollama"}}}};
  }
  if (!providers.is_object()) return absl::InvalidArgumentError("llm.providers: must be a map");
  for (const auto& [name, entry] : providers.items()) {
    std::string where = cat("llm.providers.", name);
    if (!entry.is_object()) return absl::InvalidArgumentError(cat(where, ": must be a map"));
    auto type_field = entry.find("type");
    if (type_field != entry.end() && !type_field->is_string()) {
      return absl::InvalidArgumentError(cat(where, ".type: must be text"));
    }
    std::string type = type_field == entry.end() ? name : type_field->get<std::string>();
    const ProviderFactory* factory = factories.find(type);
    if (factory == nullptr) {
      return absl::InvalidArgumentError(cat(where, ".type: unknown provider type '", type,
                                            "' (anthropic, openai, ollama or scripted)"));
    }
    auto provider = (*factory)(name, entry, context);
    if (!provider.ok()) return provider.status();
    router->providers_[name] = std::move(*provider);
  }

  router->models_ = builtin_models();
  if (auto models = section.find("models"); models != section.end() && !models->is_null()) {
    if (!models->is_object()) return absl::InvalidArgumentError("llm.models: must be a map");
    for (const auto& [alias, entry] : models->items()) {
      std::string where = cat("llm.models.", alias);
      if (!entry.is_object()) return absl::InvalidArgumentError(cat(where, ": must be a map"));
      if (Status s = unknown_keys(
              entry, where, {"provider", "model", "input_cost_per_mtok", "output_cost_per_mtok"});
          !s.ok()) {
        return s;
      }
      ModelRoute route;
      auto provider = get_string(entry, where, "provider");
      auto model = get_string(entry, where, "model");
      if (!provider.ok()) return provider.status();
      if (!model.ok()) return model.status();
      if (provider->empty()) return absl::InvalidArgumentError(cat(where, ".provider: required"));
      if (router->providers_.count(*provider) == 0) {
        return absl::InvalidArgumentError(
            cat(where, ".provider: no provider named '", *provider, "' under llm.providers"));
      }
      route.provider = *provider;
      route.model = model->empty() ? alias : *model;
      for (auto [key, target] : {std::pair{"input_cost_per_mtok", &route.input_cost_per_mtok},
                                 std::pair{"output_cost_per_mtok", &route.output_cost_per_mtok}}) {
        if (auto v = entry.find(key); v != entry.end()) {
          if (!v->is_number() || v->get<double>() < 0) {
            return absl::InvalidArgumentError(cat(where, ".", key, ": must be a number >= 0"));
          }
          *target = v->get<double>();
        }
      }
      router->models_[alias] = route;
    }
  }
  if (auto fallbacks = section.find("fallbacks");
      fallbacks != section.end() && !fallbacks->is_null()) {
    if (!fallbacks->is_object()) return absl::InvalidArgumentError("llm.fallbacks: must be a map");
    for (const auto& [alias, chain] : fallbacks->items()) {
      std::string where = cat("llm.fallbacks.", alias);
      if (!chain.is_array()) return absl::InvalidArgumentError(cat(where, ": must be a list"));
      std::vector<std::string> names;
      for (const Json& item : chain) {
        if (!item.is_string()) {
          return absl::InvalidArgumentError(cat(where, ": entries must be model names"));
        }
        names.push_back(item.get<std::string>());
      }
      router->fallbacks_[alias] = std::move(names);
    }
  }
  auto default_model = get_string(section, "llm", "default_model");
  if (!default_model.ok()) return default_model.status();
  router->default_model_ = *default_model;
  return router;
}

void ProviderRouter::add_provider(std::string name, std::unique_ptr<LlmProvider> provider) {
  providers_[std::move(name)] = std::move(provider);
}

void ProviderRouter::add_model(std::string alias, ModelRoute route) {
  models_[std::move(alias)] = std::move(route);
}

void ProviderRouter::set_fallbacks(std::string alias, std::vector<std::string> chain) {
  fallbacks_[std::move(alias)] = std::move(chain);
}

Result<ModelRoute> ProviderRouter::resolve(const std::string& model) const {
  if (auto it = models_.find(model); it != models_.end()) {
    if (providers_.count(it->second.provider) == 0) {
      return absl::FailedPreconditionError(cat("model '", model, "' needs provider '",
                                               it->second.provider,
                                               "', which is not configured under llm.providers"));
    }
    return it->second;
  }
  if (auto colon = model.find(':'); colon != std::string::npos) {
    std::string provider = model.substr(0, colon);
    if (providers_.count(provider) != 0) {
      ModelRoute route{provider, model.substr(colon + 1), 0, 0};
      // A direct reference still costs what an alias for the same model says.
      for (const auto& [alias, known] : models_) {
        if (known.provider == route.provider && known.model == route.model) return known;
      }
      return route;
    }
  }
  return absl::NotFoundError(
      cat("unknown model '", model, "': add it under llm.models or write it as provider:model"));
}

Status ProviderRouter::ready() const {
  std::vector<std::string> reasons;
  for (const auto& [name, provider] : providers_) {
    Status s = provider->ready();
    if (s.ok()) return s;
    reasons.emplace_back(message_of(s));
  }
  std::string text = "no LLM provider is ready";
  for (const std::string& r : reasons) text = cat(text, "; ", r);
  return absl::FailedPreconditionError(
      cat(text, ". Set ANTHROPIC_API_KEY or OPENAI_API_KEY, or configure llm.providers"));
}

std::string ProviderRouter::default_model() const {
  if (!default_model_.empty()) return default_model_;
  for (const char* alias : {"claude-sonnet-4", "gpt-4o-mini"}) {
    auto route = resolve(alias);
    if (!route.ok()) continue;
    auto provider = providers_.find(route->provider);
    if (provider != providers_.end() && provider->second->ready().ok()) return alias;
  }
  return "";
}

Status ProviderRouter::default_model_ready() const {
  if (!default_model().empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      "no model to use: llm.default_model is not set and neither ANTHROPIC_API_KEY nor "
      "OPENAI_API_KEY is; set one of them, or llm.default_model (for a local Ollama: "
      "ollama:<model>)");
}

std::vector<std::string> ProviderRouter::describe() const {
  std::vector<std::string> lines;
  for (const auto& [name, provider] : providers_) {
    Status s = provider->ready();
    lines.push_back(s.ok() ? cat(name, ": ready") : cat(name, ": not ready: ", message_of(s)));
  }
  return lines;
}

std::vector<std::string> ProviderRouter::provider_names() const {
  std::vector<std::string> names;
  for (const auto& [name, provider] : providers_) names.push_back(name);
  return names;
}

std::vector<std::string> ProviderRouter::model_ids(const std::string& provider) const {
  std::set<std::string> ids;
  for (const auto& [alias, route] : models_) {
    if (route.provider == provider) ids.insert(route.model);
  }
  std::vector<std::string> refs = {default_model()};
  for (const auto& [alias, chain] : fallbacks_) {
    refs.push_back(alias);
    refs.insert(refs.end(), chain.begin(), chain.end());
  }
  for (const std::string& ref : refs) {
    if (ref.empty()) continue;
    if (auto route = resolve(ref); route.ok() && route->provider == provider) {
      ids.insert(route->model);
    }
  }
  return {ids.begin(), ids.end()};
}

Result<ChatResponse> ProviderRouter::chat(const ChatRequest& request,
                                          const StreamCallback& on_text) {
  return route(request, on_text);
}

Result<ChatResponse> ProviderRouter::route(ChatRequest request, const StreamCallback& on_text) {
  std::string model = request.model.empty() ? default_model() : request.model;
  auto it = fallbacks_.find(model);
  static const std::vector<std::string> kNone;
  return chat_with_fallbacks(std::move(request), on_text,
                             it == fallbacks_.end() ? kNone : it->second);
}

Result<ChatResponse> ProviderRouter::chat_with_fallbacks(
    ChatRequest request, const StreamCallback& on_text, const std::vector<std::string>& fallbacks) {
  std::vector<std::string> chain = {request.model.empty() ? default_model() : request.model};
  if (chain.front().empty()) return default_model_ready();
  for (const std::string& f : fallbacks) {
    if (std::find(chain.begin(), chain.end(), f) == chain.end()) chain.push_back(f);
  }
  std::optional<Status> first_failure;
  std::string failures;
  bool emitted = false;
  StreamCallback tracked = [&](std::string_view delta) {
    emitted = true;
    if (on_text) on_text(delta);
  };
  for (const std::string& name : chain) {
    Status failure;
    auto route = resolve(name);
    if (!route.ok()) {
      failure = route.status();
    } else {
      LlmProvider& provider = *providers_.at(route->provider);
      if (Status r = provider.ready(); !r.ok()) {
        failure = r;
      } else {
        request.model = route->model;
        auto result = provider.chat(request, tracked);
        account(route->provider, request.module, *route, result);
        if (result.ok()) return result;
        failure = result.status();
      }
    }
    if (absl::IsCancelled(failure)) return failure;
    if (!first_failure) first_failure = failure;
    failures = cat(failures, failures.empty() ? "" : "; ", name, ": ", message_of(failure));
    // Text already shown cannot be taken back, so no other model takes over.
    if (emitted) break;
    if (&name != &chain.back())
      spdlog::warn("model {} failed, falling back: {}", name, message_of(failure));
  }
  if (chain.size() == 1) return *first_failure;
  return Status(first_failure->code(), cat("every model in the chain failed: ", failures));
}

void ProviderRouter::account(const std::string& provider, const std::string& module,
                             const ModelRoute& route, const Result<ChatResponse>& result) {
  std::lock_guard lock(mutex_);
  for (UsageTotals* t : {&by_provider_[provider], &by_module_[module.empty() ? "-" : module]}) {
    ++t->requests;
    if (!result.ok()) {
      ++t->failures;
      continue;
    }
    t->input_tokens += result->usage.input_tokens;
    t->output_tokens += result->usage.output_tokens;
    t->cost_usd += (static_cast<double>(result->usage.input_tokens) * route.input_cost_per_mtok +
                    static_cast<double>(result->usage.output_tokens) * route.output_cost_per_mtok) /
                   1e6;
  }
}

UsageTotals ProviderRouter::provider_usage(const std::string& provider) const {
  std::lock_guard lock(mutex_);
  auto it = by_provider_.find(provider);
  return it == by_provider_.end() ? UsageTotals{} : it->second;
}

UsageTotals ProviderRouter::module_usage(const std::string& module) const {
  std::lock_guard lock(mutex_);
  auto it = by_module_.find(module);
  return it == by_module_.end() ? UsageTotals{} : it->second;
}

LlmProvider* ProviderRouter::find_provider(const std::string& name) const {
  auto it = providers_.find(name);
  return it == providers_.end() ? nullptr : it->second.get();
}

Json ProviderRouter::usage_report() const {
  std::lock_guard lock(mutex_);
  Json report = {{"providers", Json::object()}, {"modules", Json::object()}};
  for (const auto& [name, t] : by_provider_) report["providers"][name] = totals_json(t);
  for (const auto& [name, t] : by_module_) report["modules"][name] = totals_json(t);
  return report;
}

}  // namespace lotus::llm
