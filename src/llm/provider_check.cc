#include "llm/provider_check.h"

#include <algorithm>
#include <set>
#include <thread>
#include <utility>

#include "lotus/strings.h"

namespace lotus::llm {
namespace {

// Provider errors start with the provider's name; the line already shows it.
std::string message_without_name(const ProviderCheck& check) {
  std::string text(message_of(check.report.status));
  std::string prefix = cat(check.name, ": ");
  if (text.rfind(prefix, 0) == 0) text.erase(0, prefix.size());
  return text;
}

std::string models_note(const ProviderCheck& check) {
  const auto& listed = check.report.models;
  if (!listed) return check.models.empty() ? "" : "(the model list came in pages: not checked)";
  if (check.models.empty()) return cat("(the server lists ", listed->size(), " models)");
  std::string text = "(models: ";
  for (size_t i = 0; i < check.models.size(); ++i) {
    bool missing = std::find(check.missing.begin(), check.missing.end(), check.models[i]) !=
                   check.missing.end();
    text = cat(text, i == 0 ? "" : ", ", check.models[i], missing ? " ✗ not on the server" : " ✓");
  }
  return cat(text, ")");
}

}  // namespace

std::string_view ProviderCheck::state() const {
  if (report.status.ok()) return "ok";
  if (report.reachable) return "failed";
  if (report.network) return "unreachable";
  return "not_ready";
}

std::vector<ProviderCheck> check_providers(const ProviderRouter& router,
                                           std::chrono::milliseconds timeout) {
  std::vector<ProviderCheck> checks;
  for (const std::string& name : router.provider_names()) {
    ProviderCheck check;
    check.name = name;
    check.models = router.model_ids(name);
    checks.push_back(std::move(check));
  }
  std::vector<std::thread> threads;
  threads.reserve(checks.size());
  for (ProviderCheck& check : checks) {
    const LlmProvider* provider = router.find_provider(check.name);
    threads.emplace_back([&check, provider, timeout] { check.report = provider->probe(timeout); });
  }
  for (std::thread& t : threads) t.join();
  for (ProviderCheck& check : checks) {
    if (!check.report.models) continue;
    std::set<std::string> listed(check.report.models->begin(), check.report.models->end());
    for (const std::string& id : check.models) {
      if (listed.count(id) == 0) check.missing.push_back(id);
    }
  }
  return checks;
}

std::vector<std::string> format_checks(const std::vector<ProviderCheck>& checks) {
  size_t name_width = 0;
  size_t latency_width = 1;
  for (const ProviderCheck& c : checks) {
    name_width = std::max(name_width, c.name.size());
    if (c.usable() && c.report.network) {
      latency_width = std::max(latency_width, std::to_string(c.report.latency.count()).size());
    }
  }
  std::vector<std::string> lines;
  for (const ProviderCheck& c : checks) {
    std::string line = c.name + std::string(name_width - c.name.size() + 2, ' ');
    std::string_view state = c.state();
    if (state == "ok" && !c.report.network) {
      line += "ok  (no server to contact)";
    } else if (state == "ok") {
      std::string ms = std::to_string(c.report.latency.count());
      line = cat(line, "ok  ", std::string(latency_width - ms.size(), ' '), ms, " ms");
      if (std::string note = models_note(c); !note.empty()) line = cat(line, "  ", note);
    } else {
      line = cat(line, state == "not_ready" ? "not ready" : state, ": ", message_without_name(c));
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

Json checks_to_json(const std::vector<ProviderCheck>& checks) {
  Json providers = Json::array();
  for (const ProviderCheck& c : checks) {
    const ProbeReport& r = c.report;
    Json models = Json::array();
    for (const std::string& id : c.models) {
      Json present = nullptr;
      if (r.models) {
        present = std::find(c.missing.begin(), c.missing.end(), id) == c.missing.end();
      }
      models.push_back({{"id", id}, {"present", present}});
    }
    Json entry = {
        {"name", c.name},           {"state", c.state()},          {"network", r.network},
        {"reachable", r.reachable}, {"models", std::move(models)}, {"missing", c.missing}};
    if (!r.status.ok()) entry["message"] = message_without_name(c);
    if (r.network) {
      entry["url"] = r.url;
      entry["latency_ms"] = r.latency.count();
    }
    if (r.http_status != 0) entry["http_status"] = r.http_status;
    if (r.models) entry["listed"] = r.models->size();
    providers.push_back(std::move(entry));
  }
  return {{"ok", any_usable(checks)}, {"providers", std::move(providers)}};
}

bool any_usable(const std::vector<ProviderCheck>& checks) {
  return std::any_of(checks.begin(), checks.end(),
                     [](const ProviderCheck& c) { return c.usable(); });
}

}  // namespace lotus::llm
