// What every HTTP model adapter shares: credentials, retries, error wording.
//
// The adapters differ in JSON shapes only; how a call is retried (429, 5xx,
// network errors, exponential backoff with jitter, Retry-After), how a
// rejected key is reported (naming the variable to check) and how secrets are
// kept out of messages is decided once, here.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "llm/http_client.h"
#include "lotus/llm.h"
#include "lotus/status.h"

namespace lotus::llm {

using EnvLookup = std::function<std::optional<std::string>(const char*)>;
std::optional<std::string> process_env(const char* name);

// Where a provider's key comes from: an environment variable, or a file that
// config names (its first line, trimmed). The file wins when both are set.
struct KeySource {
  std::string env_var;  // e.g. ANTHROPIC_API_KEY
  std::string file;
  bool required = true;  // local servers (Ollama, llama.cpp) need none
};

// The key, or FailedPrecondition saying what to set. Never echoes the key.
Result<std::string> resolve_api_key(std::string_view provider, const KeySource& source,
                                    const EnvLookup& env);

// `text` with every occurrence of `secret` (if non-empty) masked.
std::string redact(std::string text, std::string_view secret);

struct RetryPolicy {
  int max_attempts = 4;  // the first try included
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{20'000};
  double multiplier = 2.0;
  // Retry-After above this is not waited for: the call fails at once.
  std::chrono::milliseconds max_retry_after{60'000};
};

// Full-jitter exponential backoff for retry `attempt` (1 = first retry):
// uniform in [d/2, d] with d = min(max, initial * multiplier^(attempt-1)).
std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt,
                                        std::mt19937_64& rng);

// Retry-After as delta-seconds or an HTTP-date; nullopt if unparsable.
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

// Sleeps between attempts; tests replace it to observe delays without waiting.
using Sleeper = std::function<void(std::chrono::milliseconds, const std::atomic<bool>* cancel)>;
void cancellable_sleep(std::chrono::milliseconds delay, const std::atomic<bool>* cancel);

// Settings every HTTP adapter has.
struct HttpProviderOptions {
  std::string name;      // as configured ("anthropic", "lmstudio", ...)
  std::string base_url;  // without the endpoint path
  KeySource key;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds request_timeout{600'000};
  std::chrono::milliseconds idle_timeout{120'000};
  RetryPolicy retry;
  std::map<std::string, std::string> extra_headers;
  Sleeper sleep = cancellable_sleep;
  EnvLookup env = process_env;
};

// Turns one attempt's 2xx body into a response. A fresh decoder serves each
// attempt; `emitted()` says whether text already reached the caller, after
// which a failed attempt is not retried (the caller would see it twice).
class ReplyDecoder {
 public:
  virtual ~ReplyDecoder() = default;
  virtual Status feed(std::string_view bytes) = 0;
  virtual Result<ChatResponse> finish() = 0;
  virtual bool emitted() const { return false; }
};

struct ProviderCall {
  const HttpProviderOptions* options = nullptr;
  std::string_view api_key;  // for redaction
  HttpRequest http;
  std::function<std::unique_ptr<ReplyDecoder>()> make_decoder;
};

// Sends the call, retrying what is worth retrying; every message is redacted.
Result<ChatResponse> call_with_retries(HttpClient& client, const ProviderCall& call);

// The status for a non-2xx reply: 401/403 name the key variable, 429 is
// ResourceExhausted, 5xx Unavailable, other 4xx InvalidArgument/NotFound; the
// server's own message is quoted from its JSON error body when it has one.
Status http_error_status(const HttpProviderOptions& options, int status, std::string_view body);

// The message inside a provider's JSON error: {"error": {"message": ...}},
// {"error": "..."} or {"message": ...}; else the body's start.
std::string error_text(std::string_view body);

// A connectivity check: one GET of a model-list endpoint, at most `timeout`.
// `list_models` reads the ids from a 2xx body (nullopt when the list is only
// a part). Without a key nothing is sent and the report says what to set;
// failures name the base URL and, for 401/403, the key variable or file.
struct ModelListProbe {
  const HttpProviderOptions* options = nullptr;
  const Result<std::string>* key = nullptr;
  std::string path;  // joined to options->base_url
  std::vector<std::pair<std::string, std::string>> headers;
  std::function<std::optional<std::vector<std::string>>(const Json&)> list_models;
};
ProbeReport probe_model_list(const ModelListProbe& probe, std::chrono::milliseconds timeout);
// How a failed HttpClient::perform reads in a probe report: "cannot connect to
// URL (connection refused | host name not found | ...)", or "no answer from
// URL within N ms (timed out)".
std::string connection_failure(const Status& failure, std::string_view base_url,
                               std::chrono::milliseconds timeout);

// Anthropic and OpenAI accept tool names of [A-Za-z0-9_-]{1,64}; LOTUS tools
// are dotted (fs.read). Maps each requested name to an accepted one and back.
class ToolNameMap {
 public:
  explicit ToolNameMap(const ToolSpecs& tools);
  std::string to_wire(const std::string& name) const;
  std::string from_wire(const std::string& name) const;

 private:
  std::map<std::string, std::string> to_wire_, from_wire_;
};

// Joins a base URL and an endpoint path with exactly one slash.
std::string join_url(std::string_view base, std::string_view path);

// Parses a JSON text, or an Internal error naming the provider and what it was.
Result<Json> parse_json(std::string_view provider, std::string_view what, std::string_view text);

}  // namespace lotus::llm
