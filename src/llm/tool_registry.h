// ToolRegistry: every tool of every loaded module, as callers see it.
//
// The nucleus adds a module's tools when it starts and removes them when it
// stops; the reasoning engine and MCP read one list. Each entry carries the
// compiled JSON Schema (so arguments are checked before a call), the
// permissions the tool needs and the risk level that follows from them.
// list() hands out an immutable snapshot; `version()` changes with the list.
// On a bus shared by several nodes the registry also holds the tools other
// nodes announced (set_node_tools): listed and called like local ones, a
// local module's tool winning over a remote one of the same name.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "llm/json_schema.h"
#include "lotus/manifest.h"

namespace lotus::llm {

// How much harm a call can do, from the permissions it needs: reading and
// remembering is low, reaching the network is medium, changing files,
// running programs and driving the computer is high.
enum class ToolRisk { kLow, kMedium, kHigh };
std::string_view to_string(ToolRisk risk);
ToolRisk risk_of(const std::vector<std::string>& permissions);

struct ToolEntry {
  std::string module;
  std::string tool;
  std::string qualified;   // "fs.read": what policies, logs and people use
  std::string model_name;  // "fs__read": what LLM tool-calling APIs accept
  // What MCP clients call it: model_name, or the bare tool name ("read") when
  // the module's manifest asks for that (mcp: {tool_names: bare}) and no
  // other tool has that name.
  std::string mcp_name;
  std::string channel;  // "tool.fs.read": where calls go on the bus
  std::string description;
  Json parameters;                           // JSON Schema object
  std::shared_ptr<const JsonSchema> schema;  // null when the schema did not compile
  std::string schema_error;                  // why, then (calls are refused)
  std::vector<std::string> permissions;
  ToolRisk risk = ToolRisk::kLow;
  std::string node;  // the node whose module serves it; empty: this process
};

using ToolList = std::vector<std::shared_ptr<const ToolEntry>>;

class ToolRegistry {
 public:
  // "fs" + "read" -> "fs__read": letters, digits, '_' and '-' only, as every
  // provider's API requires, and unambiguous since module names hold no "__".
  static std::string model_name(std::string_view module, std::string_view tool);

  // Replaces whatever tools `manifest`'s module had. Returns a warning for
  // each bare MCP name it could not give (another tool has that name; the
  // tool keeps module__tool).
  std::vector<std::string> add_module(const Manifest& manifest);
  // Returns whether the module had any tools.
  bool remove_module(std::string_view module);

  // The tools of modules on node `node`, as it announced them (a list of
  // {"module", "tool", "description", "parameters", "permissions"}, what
  // local_tools_json() gives there); replaces what the node had. Entries that
  // are not well-formed are skipped. Returns whether the list changed.
  bool set_node_tools(const std::string& node, const Json& tools);
  // Forgets a node's tools (it left or died); returns whether it had any.
  bool remove_node(std::string_view node);
  // This process's own tools, for announcing them to other nodes.
  Json local_tools_json() const;
  // The other nodes announcing a tool of this name (qualified or model
  // name), sorted.
  std::vector<std::string> nodes_offering(std::string_view name) const;

  // By qualified name ("fs.read"), model name ("fs__read") or MCP name; a
  // local tool before another node's.
  std::shared_ptr<const ToolEntry> find(std::string_view name) const;
  // Sorted by qualified name.
  std::shared_ptr<const ToolList> list() const;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  void publish_snapshot();  // with mutex_ held
  // Forgets a local tool under all its names, with mutex_ held.
  void erase_names(const std::string& qualified);
  void index_remote();  // rebuilds remote_by_name_, with mutex_ held

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const ToolEntry>, std::less<>> by_name_;  // both names
  std::map<std::string, std::vector<std::string>, std::less<>> by_module_;        // qualified names
  // Other nodes' tools, by node, and by both names (the first node in order
  // wins a name two nodes announce).
  std::map<std::string, ToolList, std::less<>> remote_;
  std::map<std::string, std::shared_ptr<const ToolEntry>, std::less<>> remote_by_name_;
  std::map<std::string, Json, std::less<>> remote_json_;  // as announced, to spot no-op updates
  // Per node, the tools it offers MCP clients under their bare names.
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> remote_bare_;
  std::shared_ptr<const ToolList> snapshot_ = std::make_shared<ToolList>();
  std::atomic<uint64_t> version_{0};
};

}  // namespace lotus::llm
