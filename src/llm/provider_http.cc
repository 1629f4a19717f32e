#include "llm/provider_http.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>
#include <utility>

#include "lotus/strings.h"

namespace lotus::llm {
namespace {

Status with_message(const Status& status, std::string message) {
  return Status(status.code(), message);
}

std::string one_line(std::string_view text, size_t limit) {
  std::string out;
  for (char c : text.substr(0, limit)) out.push_back(c == '\n' || c == '\r' ? ' ' : c);
  if (text.size() > limit) out.append("...");
  return out;
}

std::string string_field(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Provider replies are untrusted: a field of an unexpected type makes the
// JSON library throw, which must not escape (least of all through libcurl).
template <typename F>
auto guarded(std::string_view provider, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return absl::InternalError(cat(provider, ": malformed reply: ", e.what()));
  }
}

bool retriable_code(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
}

}  // namespace

std::optional<std::string> process_env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

Result<std::string> resolve_api_key(std::string_view provider, const KeySource& source,
                                    const EnvLookup& env) {
  if (!source.file.empty()) {
    std::string path = source.file;
    if (path.rfind("~/", 0) == 0) {
      if (auto home = env("HOME")) path = cat(*home, path.substr(1));
    }
    std::ifstream in(path);
    std::string key;
    if (!in || !std::getline(in, key)) {
      return absl::FailedPreconditionError(
          cat(provider, ": cannot read the API key file ", path, " (api_key_file in config)"));
    }
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.front()))) key.erase(0, 1);
    if (key.empty()) {
      return absl::FailedPreconditionError(
          cat(provider, ": the API key file ", path, " is empty (api_key_file in config)"));
    }
    return key;
  }
  if (!source.env_var.empty()) {
    if (auto value = env(source.env_var.c_str())) return *value;
  }
  if (!source.required) return std::string();
  if (source.env_var.empty()) {
    return absl::FailedPreconditionError(
        cat(provider, ": no API key: set api_key_env or api_key_file in its config"));
  }
  return absl::FailedPreconditionError(
      cat(provider, ": no API key: set ", source.env_var, " (or api_key_file in its config)"));
}

std::string redact(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  size_t at = 0;
  while ((at = text.find(secret, at)) != std::string::npos) {
    text.replace(at, secret.size(), "[redacted]");
    at += 10;
  }
  // Servers often echo a key masked but for its ends; a masked echo ("sk-proj-****...abcd") goes
  // whole: from the prefix to the end of the token.
  if (secret.size() >= 16) {
    auto token_char = [](char c) {
      return !std::isspace(static_cast<unsigned char>(c)) && c != '"' && c != '\'' && c != ',';
    };
    for (std::string_view part : {secret.substr(0, 8), secret.substr(secret.size() - 8)}) {
      at = 0;
      while ((at = text.find(part, at)) != std::string::npos) {
        size_t end = at + part.size();
        while (end < text.size() && token_char(text[end])) ++end;
        if (end > at + part.size() && text[end - 1] == '.') --end;
        text.replace(at, end - at, "[redacted]");
        at += 10;
      }
    }
  }
  return text;
}

std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, int attempt,
                                        std::mt19937_64& rng) {
  double base = static_cast<double>(policy.initial_backoff.count()) *
                std::pow(policy.multiplier, std::max(0, attempt - 1));
  base = std::min(base, static_cast<double>(policy.max_backoff.count()));
  std::uniform_real_distribution<double> jitter(base / 2, base);
  return std::chrono::milliseconds(static_cast<int64_t>(jitter(rng)));
}

std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; })) {
    std::string text(value);
    char* end = nullptr;
    double seconds = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || seconds < 0) return std::nullopt;
    return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  }
  std::string text(value);
  time_t when = curl_getdate(text.c_str(), nullptr);
  if (when < 0) return std::nullopt;
  auto delta = std::chrono::system_clock::from_time_t(when) - now;
  return std::max(std::chrono::milliseconds(0),
                  std::chrono::duration_cast<std::chrono::milliseconds>(delta));
}

void cancellable_sleep(std::chrono::milliseconds delay, const std::atomic<bool>* cancel) {
  auto until = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < until) {
    if (cancel != nullptr && cancel->load()) return;
    auto left = until - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(20)));
  }
}

std::string error_text(std::string_view body) {
  Json doc = Json::parse(body, nullptr, false);
  if (!doc.is_discarded() && doc.is_object()) {
    auto error = doc.find("error");
    if (error != doc.end() && error->is_string()) return error->get<std::string>();
    if (error != doc.end() && error->is_object()) {
      std::string type = string_field(*error, "type");
      std::string message = string_field(*error, "message");
      if (!type.empty() && !message.empty()) return cat(type, ": ", message);
      if (!message.empty()) return message;
      if (!type.empty()) return type;
    }
    if (auto m = doc.find("message"); m != doc.end() && m->is_string()) {
      return m->get<std::string>();
    }
  }
  std::string text = one_line(body, 200);
  return text.empty() ? "no details" : text;
}

Status http_error_status(const HttpProviderOptions& options, int status, std::string_view body) {
  std::string detail = cat("HTTP ", status, ": ", error_text(body));
  const std::string& name = options.name;
  if (status == 401 || status == 403) {
    std::string check;
    if (!options.key.file.empty()) {
      check = cat("check the key in ", options.key.file, " (api_key_file)");
    } else if (!options.key.env_var.empty()) {
      check = cat("check ", options.key.env_var);
    } else {
      check = "check the server's authentication settings";
    }
    std::string text =
        cat(name, ": the API key was ", status == 401 ? "rejected" : "refused access", " (", detail,
            "); ", check);
    return status == 401 ? absl::UnauthenticatedError(text) : absl::PermissionDeniedError(text);
  }
  if (status == 429)
    return absl::ResourceExhaustedError(cat(name, ": rate limited (", detail, ")"));
  if (status >= 500) return absl::UnavailableError(cat(name, ": server error (", detail, ")"));
  if (status == 404) {
    return absl::NotFoundError(
        cat(name, ": not found (", detail, "); check the model id and base_url"));
  }
  if (status == 408) return absl::DeadlineExceededError(cat(name, ": ", detail));
  return absl::InvalidArgumentError(cat(name, ": request refused (", detail, ")"));
}

Result<ChatResponse> call_with_retries(HttpClient& client, const ProviderCall& call) {
  const HttpProviderOptions& options = *call.options;
  const RetryPolicy& policy = options.retry;
  std::mt19937_64 rng(std::random_device{}());
  const std::atomic<bool>* cancel = call.http.cancel;
  int attempts = std::max(1, policy.max_attempts);
  for (int attempt = 1;; ++attempt) {
    if (cancel != nullptr && cancel->load()) {
      return absl::CancelledError(cat(options.name, ": cancelled"));
    }
    std::unique_ptr<ReplyDecoder> decoder = call.make_decoder();
    auto reply = client.perform(call.http, [&decoder, &options](std::string_view bytes) {
      return guarded(options.name, [&] { return decoder->feed(bytes); });
    });
    Status failure;
    bool retriable = false;
    std::optional<std::chrono::milliseconds> retry_after;
    if (!reply.ok()) {
      if (absl::IsCancelled(reply.status())) {
        return absl::CancelledError(cat(options.name, ": cancelled"));
      }
      failure = reply.status();
      std::string_view text = message_of(failure);
      if (text.substr(0, options.name.size()) != options.name) {
        failure = with_message(failure, cat(options.name, ": ", text));
      }
      retriable = retriable_code(failure.code()) && !decoder->emitted();
    } else if (reply->status >= 200 && reply->status < 300) {
      auto response = guarded(options.name, [&] { return decoder->finish(); });
      if (response.ok()) {
        response->provider = options.name;
        return response;
      }
      failure = response.status();
      retriable = retriable_code(failure.code()) && !decoder->emitted();
    } else {
      failure = http_error_status(options, reply->status, reply->body);
      int s = reply->status;
      retriable = s == 408 || s == 429 || s >= 500;
      if (std::string ms = reply->header("retry-after-ms"); !ms.empty()) {
        if (auto v = parse_retry_after(ms, std::chrono::system_clock::now())) {
          retry_after = std::chrono::milliseconds(v->count() / 1000);
        }
      }
      if (!retry_after) {
        retry_after =
            parse_retry_after(reply->header("retry-after"), std::chrono::system_clock::now());
      }
    }
    std::string message = redact(std::string(message_of(failure)), call.api_key);
    if (!retriable) return with_message(failure, message);
    if (attempt >= attempts) {
      return with_message(failure, cat(message, " (gave up after ", attempts, " attempts)"));
    }
    if (retry_after && *retry_after > policy.max_retry_after) {
      return with_message(failure, cat(message, " (the server asks to retry after ",
                                       retry_after->count() / 1000, " s)"));
    }
    auto delay = retry_after ? *retry_after : backoff_delay(policy, attempt, rng);
    spdlog::warn("{}; retry {} of {} in {} ms", message, attempt, attempts - 1, delay.count());
    options.sleep(delay, cancel);
  }
}

std::string connection_failure(const Status& failure, std::string_view base_url,
                               std::chrono::milliseconds timeout) {
  if (absl::IsDeadlineExceeded(failure)) {
    return cat("no answer from ", base_url, " within ", timeout.count(), " ms (timed out)");
  }
  std::string text(message_of(failure));
  std::string reason;
  if (text.find("resolve host") != std::string::npos) {
    reason = "host name not found";
  } else if (!text.empty() && text.back() == ')' && text.rfind('(') != std::string::npos) {
    size_t open = text.rfind('(');
    reason = text.substr(open + 1, text.size() - open - 2);  // the system's reason
  } else {
    constexpr std::string_view kPrefix = "cannot reach the server: ";
    reason = text.rfind(kPrefix, 0) == 0 ? text.substr(kPrefix.size()) : text;
  }
  // "Connection refused" reads as "connection refused"; "SSL ..." stays.
  if (reason.size() > 1 && std::islower(static_cast<unsigned char>(reason[1])))
    reason[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(reason[0])));
  return cat("cannot connect to ", base_url, " (", reason, ")");
}

ProbeReport probe_model_list(const ModelListProbe& probe, std::chrono::milliseconds timeout) {
  const HttpProviderOptions& options = *probe.options;
  ProbeReport report;
  report.url = join_url(options.base_url, probe.path);
  if (!probe.key->ok()) {
    report.status = probe.key->status();
    return report;
  }
  report.network = true;
  HttpRequest request;
  request.method = "GET";
  request.url = report.url;
  request.headers = probe.headers;
  for (const auto& [k, v] : options.extra_headers) request.headers.emplace_back(k, v);
  request.connect_timeout = std::min(timeout, options.connect_timeout);
  request.total_timeout = timeout;
  request.idle_timeout = std::chrono::milliseconds(0);
  HttpClient client;
  auto start = std::chrono::steady_clock::now();
  auto reply = client.perform(request);
  report.latency = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  const std::string& key = **probe.key;
  if (!reply.ok()) {
    report.status = Status(
        reply.status().code(),
        redact(
            cat(options.name, ": ", connection_failure(reply.status(), options.base_url, timeout)),
            key));
    return report;
  }
  report.reachable = true;
  report.http_status = reply->status;
  if (reply->status < 200 || reply->status >= 300) {
    Status failure = http_error_status(options, reply->status, reply->body);
    report.status = Status(failure.code(), redact(std::string(message_of(failure)), key));
    return report;
  }
  auto doc = parse_json(options.name, cat("the model list from ", report.url), reply->body);
  if (!doc.ok()) {
    report.status = doc.status();
    return report;
  }
  try {
    report.models = probe.list_models(*doc);
    report.status = absl::OkStatus();
  } catch (const std::exception& e) {
    report.status = absl::InternalError(
        cat(options.name, ": malformed model list from ", report.url, ": ", e.what()));
  }
  return report;
}

ToolNameMap::ToolNameMap(const ToolSpecs& tools) {
  std::set<std::string> used;
  for (const ToolSpec& tool : tools) {
    std::string wire;
    for (char c : tool.name) {
      bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
      wire.push_back(ok ? c : '_');
    }
    if (wire.empty()) wire = "tool";
    if (wire.size() > 64) wire.resize(64);
    std::string candidate = wire;
    for (int n = 2; used.count(candidate) != 0; ++n) {
      std::string suffix = cat("_", n);
      candidate = wire.substr(0, 64 - suffix.size()) + suffix;
    }
    used.insert(candidate);
    to_wire_[tool.name] = candidate;
    from_wire_[candidate] = tool.name;
  }
}

std::string ToolNameMap::to_wire(const std::string& name) const {
  auto it = to_wire_.find(name);
  if (it != to_wire_.end()) return it->second;
  std::string wire;
  for (char c : name) {
    bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
    wire.push_back(ok ? c : '_');
  }
  return wire;
}

std::string ToolNameMap::from_wire(const std::string& name) const {
  auto it = from_wire_.find(name);
  return it == from_wire_.end() ? name : it->second;
}

std::string join_url(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return cat(base, "/", path);
}

Result<Json> parse_json(std::string_view provider, std::string_view what, std::string_view text) {
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    return absl::InternalError(
        cat(provider, ": malformed JSON in ", what, ": ", one_line(text, 120)));
  }
  return doc;
}

}  // namespace lotus::llm
