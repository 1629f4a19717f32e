#include "llm/tool_registry.h"

#include <algorithm>
#include <cctype>
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

namespace {

std::shared_ptr<ToolEntry> make_entry(const std::string& module, const std::string& tool,
                                      std::string description, Json parameters,
                                      std::vector<std::string> permissions) {
  auto entry = std::make_shared<ToolEntry>();
  entry->module = module;
  entry->tool = tool;
  entry->qualified = cat(module, ".", tool);
  entry->model_name = ToolRegistry::model_name(module, tool);
  entry->mcp_name = entry->model_name;
  entry->channel = cat("tool.", module, ".", tool);
  entry->description = std::move(description);
  entry->parameters = std::move(parameters);
  auto compiled = JsonSchema::compile(entry->parameters);
  if (compiled.ok()) {
    entry->schema = *std::move(compiled);
  } else {
    entry->schema_error = std::string(message_of(compiled.status()));
  }
  entry->risk = risk_of(permissions);
  entry->permissions = std::move(permissions);
  return entry;
}

// Module and tool names as manifests allow them: they become bus channels.
bool plain_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

}  // namespace

std::vector<std::string> ToolRegistry::add_module(const Manifest& manifest) {
  std::vector<std::shared_ptr<ToolEntry>> entries;
  for (const Manifest::Tool& tool : manifest.tools) {
    entries.push_back(
        make_entry(manifest.name, tool.name, tool.description, tool.parameters, tool.permissions));
  }
  std::vector<std::string> warnings;
  std::lock_guard lock(mutex_);
  if (auto old = by_module_.find(manifest.name); old != by_module_.end()) {
    for (const std::string& name : old->second) erase_names(name);
    by_module_.erase(old);
  }
  if (manifest.mcp.bare_tool_names) {
    for (auto& entry : entries) {
      // The same tool of this module on another node may hold the name
      // already: that is no clash.
      std::shared_ptr<const ToolEntry> other;
      if (auto local = by_name_.find(entry->tool); local != by_name_.end()) {
        other = local->second;
      } else if (auto remote = remote_by_name_.find(entry->tool); remote != remote_by_name_.end()) {
        other = remote->second;
      }
      if (other != nullptr && other->qualified != entry->qualified) {
        warnings.push_back(
            cat(manifest.path.string(), ": mcp.tool_names: tool \"", entry->tool,
                "\" cannot be offered to MCP clients under its own name: ", other->qualified,
                " already has it; it stays \"", entry->model_name, "\""));
        continue;
      }
      entry->mcp_name = entry->tool;
    }
  }
  if (!entries.empty()) {
    std::vector<std::string>& names = by_module_[manifest.name];
    for (auto& entry : entries) {
      names.push_back(entry->qualified);
      std::shared_ptr<const ToolEntry> shared = std::move(entry);
      by_name_[shared->model_name] = shared;
      if (shared->mcp_name != shared->model_name) by_name_[shared->mcp_name] = shared;
      by_name_[shared->qualified] = std::move(shared);
    }
  }
  index_remote();  // a local bare name may now clash with a remote one
  publish_snapshot();
  return warnings;
}

void ToolRegistry::erase_names(const std::string& qualified) {
  auto it = by_name_.find(qualified);
  if (it == by_name_.end()) return;
  std::shared_ptr<const ToolEntry> entry = it->second;
  by_name_.erase(it);
  by_name_.erase(entry->model_name);
  if (entry->mcp_name != entry->model_name) {
    auto bare = by_name_.find(entry->mcp_name);
    if (bare != by_name_.end() && bare->second == entry) by_name_.erase(bare);
  }
}

bool ToolRegistry::remove_module(std::string_view module) {
  std::lock_guard lock(mutex_);
  auto old = by_module_.find(module);
  if (old == by_module_.end()) return false;
  for (const std::string& name : old->second) erase_names(name);
  by_module_.erase(old);
  index_remote();  // a remote tool may have its bare name back
  publish_snapshot();
  return true;
}

bool ToolRegistry::set_node_tools(const std::string& node, const Json& tools) {
  ToolList entries;
  std::set<std::string, std::less<>> wants_bare;
  if (tools.is_array()) {
    for (const Json& tool : tools) {
      if (!tool.is_object()) continue;
      const Json& module = tool.contains("module") ? tool["module"] : Json();
      const Json& name = tool.contains("tool") ? tool["tool"] : Json();
      if (!module.is_string() || !name.is_string() ||
          !plain_name(module.get_ref<const std::string&>()) ||
          !plain_name(name.get_ref<const std::string&>())) {
        continue;
      }
      std::vector<std::string> permissions;
      if (auto p = tool.find("permissions"); p != tool.end() && p->is_array()) {
        for (const Json& one : *p) {
          if (one.is_string()) permissions.push_back(one.get<std::string>());
        }
      }
      Json parameters = tool.value("parameters", Json{{"type", "object"}});
      std::string description = tool.contains("description") && tool["description"].is_string()
                                    ? tool["description"].get<std::string>()
                                    : std::string();
      auto entry =
          make_entry(module.get<std::string>(), name.get<std::string>(), std::move(description),
                     std::move(parameters), std::move(permissions));
      entry->node = node;
      // Offered to MCP clients under its own name there (mcp: {tool_names:
      // bare}): here too, while no other tool has that name (index_remote).
      if (auto bare = tool.find("mcp_name"); bare != tool.end() && *bare == name) {
        wants_bare.insert(entry->qualified);
      }
      entries.push_back(std::move(entry));
    }
  }
  std::lock_guard lock(mutex_);
  auto known = remote_json_.find(node);
  if (known != remote_json_.end() && known->second == tools) return false;
  if (entries.empty() && remote_.find(node) == remote_.end()) {
    remote_json_[node] = tools;
    return false;
  }
  remote_json_[node] = tools;
  if (entries.empty()) {
    remote_.erase(node);
    remote_bare_.erase(node);
  } else {
    remote_[node] = std::move(entries);
    remote_bare_[node] = std::move(wants_bare);
  }
  index_remote();
  publish_snapshot();
  return true;
}

bool ToolRegistry::remove_node(std::string_view node) {
  std::lock_guard lock(mutex_);
  if (auto it = remote_json_.find(node); it != remote_json_.end()) remote_json_.erase(it);
  auto it = remote_.find(node);
  if (it == remote_.end()) return false;
  remote_.erase(it);
  if (auto bare = remote_bare_.find(node); bare != remote_bare_.end()) remote_bare_.erase(bare);
  index_remote();
  publish_snapshot();
  return true;
}

Json ToolRegistry::local_tools_json() const {
  Json out = Json::array();
  std::lock_guard lock(mutex_);
  for (const auto& [module, names] : by_module_) {
    for (const std::string& name : names) {
      auto it = by_name_.find(name);
      if (it == by_name_.end()) continue;
      const ToolEntry& tool = *it->second;
      Json announced = {{"module", tool.module},
                        {"tool", tool.tool},
                        {"description", tool.description},
                        {"parameters", tool.parameters},
                        {"permissions", tool.permissions}};
      if (tool.mcp_name != tool.model_name) announced["mcp_name"] = tool.mcp_name;
      out.push_back(std::move(announced));
    }
  }
  return out;
}

std::vector<std::string> ToolRegistry::nodes_offering(std::string_view name) const {
  std::vector<std::string> nodes;
  std::lock_guard lock(mutex_);
  for (const auto& [node, entries] : remote_) {
    for (const auto& entry : entries) {
      if (entry->qualified == name || entry->model_name == name) {
        nodes.push_back(node);
        break;
      }
    }
  }
  return nodes;
}

void ToolRegistry::index_remote() {
  remote_by_name_.clear();
  for (auto& [node, entries] : remote_) {
    for (auto& entry : entries) {
      remote_by_name_.try_emplace(entry->qualified, entry);
      remote_by_name_.try_emplace(entry->model_name, entry);
    }
  }
  // Bare MCP names after all the qualified ones, each to the first tool that
  // asks for it; one whose bare name another tool (here or on another node)
  // holds keeps module__tool, until that tool goes.
  for (auto& [node, entries] : remote_) {
    auto wanted = remote_bare_.find(node);
    for (auto& entry : entries) {
      std::string mcp_name = entry->model_name;
      if (wanted != remote_bare_.end() && wanted->second.count(entry->qualified) != 0) {
        auto local = by_name_.find(entry->tool);
        auto remote = remote_by_name_.find(entry->tool);
        const bool taken =
            (local != by_name_.end() && local->second->qualified != entry->qualified) ||
            (remote != remote_by_name_.end() && remote->second->qualified != entry->qualified);
        if (!taken) mcp_name = entry->tool;
      }
      if (entry->mcp_name != mcp_name) {
        auto renamed = std::make_shared<ToolEntry>(*entry);
        renamed->mcp_name = mcp_name;
        for (const std::string& name : {entry->qualified, entry->model_name}) {
          auto at = remote_by_name_.find(name);
          if (at != remote_by_name_.end() && at->second == entry) at->second = renamed;
        }
        entry = std::move(renamed);
      }
      if (entry->mcp_name != entry->model_name) remote_by_name_.try_emplace(entry->mcp_name, entry);
    }
  }
}

std::shared_ptr<const ToolEntry> ToolRegistry::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
  auto it = remote_by_name_.find(name);
  return it == remote_by_name_.end() ? nullptr : it->second;
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
  for (const auto& [name, entry] : remote_by_name_) {
    // Each entry once (it is indexed under both names), unless a local tool
    // has its name.
    if (name != entry->qualified || by_name_.count(name) != 0) continue;
    list->push_back(entry);
  }
  std::sort(list->begin(), list->end(),
            [](const auto& a, const auto& b) { return a->qualified < b->qualified; });
  snapshot_ = std::move(list);
  version_.fetch_add(1, std::memory_order_release);
}

}  // namespace lotus::llm
