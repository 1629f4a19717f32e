// ToolPolicy: whether a tool call runs, needs a person's approval, or is
// refused.
//
// Config names tools by "module.tool" pattern (globs: "shell.*", "*.write");
// the most specific pattern that matches decides. A tool no pattern names is
// decided by its risk level, so by default file writes, running programs
// and computer control ask, and reading runs.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "llm/tool_registry.h"
#include "lotus/status.h"

namespace lotus::llm {

enum class ToolDecision { kAllow, kAsk, kDeny };
std::string_view to_string(ToolDecision decision);
Result<ToolDecision> parse_decision(std::string_view text);

struct PolicyVerdict {
  ToolDecision decision = ToolDecision::kAllow;
  std::string because;  // "policy \"shell.*\"" or "risk high"
};

class ToolPolicy {
 public:
  // Defaults only: low and medium risk allowed, high risk asks.
  ToolPolicy();
  // `rules` are (pattern, allow|ask|deny); `by_risk` maps low|medium|high to
  // a decision and may leave levels out (their defaults stay).
  static Result<ToolPolicy> create(const std::vector<std::pair<std::string, std::string>>& rules,
                                   const std::map<std::string, std::string>& by_risk);

  PolicyVerdict decide(const ToolEntry& tool) const;

 private:
  struct Rule {
    std::string pattern;
    ToolDecision decision;
    bool exact;
  };
  std::vector<Rule> rules_;
  ToolDecision by_risk_[3];
};

}  // namespace lotus::llm
