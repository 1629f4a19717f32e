#include "llm/tool_policy.h"

#include "lotus/channel.h"
#include "lotus/strings.h"

namespace lotus::llm {

std::string_view to_string(ToolDecision decision) {
  switch (decision) {
    case ToolDecision::kAllow:
      return "allow";
    case ToolDecision::kAsk:
      return "ask";
    case ToolDecision::kDeny:
      return "deny";
  }
  return "deny";
}

Result<ToolDecision> parse_decision(std::string_view text) {
  if (text == "allow") return ToolDecision::kAllow;
  if (text == "ask") return ToolDecision::kAsk;
  if (text == "deny") return ToolDecision::kDeny;
  return absl::InvalidArgumentError(
      cat("\"", text, "\" is not a decision; use allow, ask or deny"));
}

ToolPolicy::ToolPolicy()
    : by_risk_{ToolDecision::kAllow, ToolDecision::kAllow, ToolDecision::kAsk} {}

Result<ToolPolicy> ToolPolicy::create(const std::vector<std::pair<std::string, std::string>>& rules,
                                      const std::map<std::string, std::string>& by_risk) {
  ToolPolicy policy;
  for (const auto& [pattern, text] : rules) {
    if (pattern.empty()) return absl::InvalidArgumentError("tools.policy: empty tool pattern");
    auto decision = parse_decision(text);
    if (!decision.ok()) {
      return absl::InvalidArgumentError(
          cat("tools.policy.", pattern, ": ", message_of(decision.status())));
    }
    bool exact = pattern.find_first_of("*?[") == std::string::npos;
    policy.rules_.push_back(Rule{pattern, *decision, exact});
  }
  for (const auto& [level, text] : by_risk) {
    int index = level == "low" ? 0 : level == "medium" ? 1 : level == "high" ? 2 : -1;
    if (index < 0) {
      return absl::InvalidArgumentError(
          cat("tools.risk.", level, ": not a risk level; use low, medium or high"));
    }
    auto decision = parse_decision(text);
    if (!decision.ok()) {
      return absl::InvalidArgumentError(
          cat("tools.risk.", level, ": ", message_of(decision.status())));
    }
    policy.by_risk_[index] = *decision;
  }
  return policy;
}

PolicyVerdict ToolPolicy::decide(const ToolEntry& tool) const {
  // Exact names beat patterns; among patterns the longest (most literal
  // text) wins; among equals, the later entry, as in most config systems.
  const Rule* best = nullptr;
  for (const Rule& rule : rules_) {
    bool matches =
        rule.exact ? rule.pattern == tool.qualified : glob_matches(rule.pattern, tool.qualified);
    if (!matches) continue;
    if (best == nullptr || (rule.exact && !best->exact) ||
        (rule.exact == best->exact && rule.pattern.size() >= best->pattern.size())) {
      best = &rule;
    }
  }
  if (best != nullptr) return {best->decision, cat("policy \"", best->pattern, "\"")};
  return {by_risk_[static_cast<int>(tool.risk)], cat("risk ", to_string(tool.risk))};
}

}  // namespace lotus::llm
