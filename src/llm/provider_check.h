// Provider connectivity checks: what `lotus providers` reports.
//
// Every configured provider is probed at once (one thread each, a short
// timeout), and the model ids config routes to it are looked up in the list
// its server returns, so a retired or unpulled model shows before a request
// needs it. The results print as aligned lines or as JSON.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "llm/provider_router.h"
#include "lotus/llm.h"

namespace lotus::llm {

struct ProviderCheck {
  std::string name;
  ProbeReport report;
  std::vector<std::string> models;   // the ids config routes to this provider
  std::vector<std::string> missing;  // of those, the ones the server does not list

  // "ok", "not_ready" (nothing contacted), "unreachable" or "failed" (the
  // server answered with an error).
  std::string_view state() const;
  // The check passed (missing models are shown, but do not fail it).
  bool usable() const { return report.status.ok(); }
};

constexpr std::chrono::milliseconds kDefaultProbeTimeout{5000};

// Probes every provider of `router` in parallel, each within `timeout`.
std::vector<ProviderCheck> check_providers(
    const ProviderRouter& router, std::chrono::milliseconds timeout = kDefaultProbeTimeout);

// One aligned line per check:
//   anthropic  ok  212 ms  (models: claude-sonnet-4-20250514 ✓)
//   ollama     unreachable: cannot connect to http://localhost:11434 (connection refused)
std::vector<std::string> format_checks(const std::vector<ProviderCheck>& checks);

// {"ok": any usable, "providers": [{name, state, message, url, http_status,
//  latency_ms, reachable, network, models: [{id, present}], missing, listed}]}
Json checks_to_json(const std::vector<ProviderCheck>& checks);

bool any_usable(const std::vector<ProviderCheck>& checks);

}  // namespace lotus::llm
