// What the memory tests share: a small corpus of everyday memories and
// readers for recall results, so each test states only what it expects.
#pragma once
#include <string>
#include <vector>

#include "lotus/memory.h"
#include "lotus/strings.h"

namespace lotus::testing {

// Seven memories on unrelated topics, each with words the others lack.
inline const std::vector<std::string>& everyday_corpus() {
  static const std::vector<std::string> texts = {
      "The deployment script scripts/deploy.sh restarts the web server",
      "Alice prefers dark mode in every editor",
      "Grandmother's apple pie recipe uses cinnamon and nutmeg",
      "The quarterly report is due on the first Monday of the month",
      "Unit tests run with ctest from the build directory",
      "The cat knocked a glass of water off the kitchen table",
      "Our VPN gateway is called zanzibar and lives in Frankfurt",
  };
  return texts;
}

// The contents of `hits`, best first.
inline std::vector<std::string> contents(const std::vector<RecallHit>& hits) {
  std::vector<std::string> out;
  for (const auto& h : hits) out.push_back(h.record.content);
  return out;
}

// The best hit's content, "(nothing)", or the error.
inline std::string top(const Result<std::vector<RecallHit>>& hits) {
  if (!hits.ok()) return cat("error: ", message_of(hits.status()));
  return hits->empty() ? "(nothing)" : hits->front().record.content;
}

}  // namespace lotus::testing
