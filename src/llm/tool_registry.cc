#include "llm/tool_registry.h"

#include <algorithm>
#include <utility>

#include "lotus/strings.h"

namespace lotus::llm {

std::string_view to_string(ToolRisk risk) {
  switch (risk) {
    case ToolRisk::kLow:
      return "low";
    case ToolRisk::kMedium:
      return "medium";
    case ToolRisk::kHigh:
      return "high";
  }
  return "high";
}

namespace {

bool in_family(std::string_view permission, std::string_view family) {
  return permission == family ||
         (permission.starts_with(family) && permission.size() > family.size() &&
          permission[family.size()] == '.');
}

ToolRisk risk_of_one(std::string_view permission) {
  // Changing the machine or the outside world.
  for (std::string_view family : {"file.write", "file.delete", "file.*", "process", "computer",
                                  "system", "self", "input", "shell"}) {
    if (in_family(permission, family)) return ToolRisk::kHigh;
  }
  // Reading what stays on the machine.
  for (std::string_view family : {"file.read", "memory", "screen.read", "clipboard.read"}) {
    if (in_family(permission, family)) return ToolRisk::kLow;
  }
  // Everything else (network, llm calls, permissions we do not know) sits
  // in between: allowed by default, but a policy can single it out.
  return ToolRisk::kMedium;
}

}  // namespace

ToolRisk risk_of(const std::vector<std::string>& permissions) {
  ToolRisk risk = ToolRisk::kLow;
  for (const std::string& p : permissions) risk = std::max(risk, risk_of_one(p));
  return risk;
}

std::string ToolRegistry::model_name(std::string_view module, std::string_view tool) {
  return cat(module, "__", tool);
}

void ToolRegistry::add_module(const Manifest& manifest) {
  std::vector<std::shared_ptr<const ToolEntry>> entries;
  for (const Manifest::Tool& tool : manifest.tools) {
    auto entry = std::make_shared<ToolEntry>();
    entry->module = manifest.name;
    entry->tool = tool.name;
    entry->qualified = cat(manifest.name, ".", tool.name);
    entry->model_name = model_name(manifest.name, tool.name);
    entry->channel = cat("tool.", manifest.name, ".", tool.name);
    entry->description = tool.description;
    entry->parameters = tool.parameters;
    auto compiled = JsonSchema::compile(tool.parameters);
    if (compiled.ok()) {
      entry->schema = *std::move(compiled);
    } else {
      entry->schema_error = std::string(message_of(compiled.status()));
    }
    entry->permissions = tool.permissions;
    entry->risk = risk_of(tool.permissions);
    entries.push_back(std::move(entry));
  }
  std::lock_guard lock(mutex_);
  if (auto old = by_module_.find(manifest.name); old != by_module_.end()) {
    for (const std::string& name : old->second) {
      auto it = by_name_.find(name);
      if (it == by_name_.end()) continue;
      by_name_.erase(it->second->model_name);
      by_name_.erase(it);
    }
    by_module_.erase(old);
  }
  if (!entries.empty()) {
    std::vector<std::string>& names = by_module_[manifest.name];
    for (auto& entry : entries) {
      names.push_back(entry->qualified);
      by_name_[entry->model_name] = entry;
      by_name_[entry->qualified] = std::move(entry);
    }
  }
  publish_snapshot();
}

bool ToolRegistry::remove_module(std::string_view module) {
  std::lock_guard lock(mutex_);
  auto old = by_module_.find(module);
  if (old == by_module_.end()) return false;
  for (const std::string& name : old->second) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) continue;
    by_name_.erase(it->second->model_name);
    by_name_.erase(it);
  }
  by_module_.erase(old);
  publish_snapshot();
  return true;
}

std::shared_ptr<const ToolEntry> ToolRegistry::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

std::shared_ptr<const ToolList> ToolRegistry::list() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

void ToolRegistry::publish_snapshot() {
  auto list = std::make_shared<ToolList>();
  for (const auto& [module, names] : by_module_) {
    for (const std::string& name : names) {
      auto it = by_name_.find(name);
      if (it != by_name_.end()) list->push_back(it->second);
    }
  }
  std::sort(list->begin(), list->end(),
            [](const auto& a, const auto& b) { return a->qualified < b->qualified; });
  snapshot_ = std::move(list);
  version_.fetch_add(1, std::memory_order_release);
}

}  // namespace lotus::llm
