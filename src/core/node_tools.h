// NodeTools: one tool registry for all the nodes sharing a bus.
//
// Each node announces its own modules' tools on `system.tools`
//   {"node": id, "tools": [{"module", "tool", "description", "parameters",
//    "permissions"}], "ask": bool}
// when they change (and now and then, for a node that missed one); a node
// that starts asks the others for theirs ("ask": true). Other nodes' tools go
// into the registry as remote entries, so the reasoning engine, the API and
// MCP list them, and calls to them are checked and decided by this node's
// broker before they leave. A node that leaves or dies (system.node_left)
// takes its tools along. Inactive on a bus that is this process's alone.
//
// The announcement also carries what the node's modules offer MCP clients
// besides tools (their manifests' `mcp:` resources, templates and prompts),
//   "mcp": [{"module", "resources", "resource_templates", "prompts"}]
// so every node's MCP server lists them; content a module serves on a
// channel is asked for over the bus, which routes it to a node running it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>

#include "bus/bus.h"
#include "core/periodic_timer.h"
#include "llm/tool_registry.h"
#include "lotus/manifest.h"

namespace lotus {

class NodeTools : public std::enable_shared_from_this<NodeTools> {
 public:
  static constexpr std::string_view kChannel = "system.tools";
  // Called (on the bus's pool) after another node's tools, or the MCP
  // content of its modules, changed here.
  struct Change {
    bool tools = false;
    bool content = false;
  };
  using Changed = std::function<void(const std::string& node, Change what)>;
  // This node's modules' MCP content, as announced (see above).
  using LocalContent = std::function<Json()>;

  static std::shared_ptr<NodeTools> create(
      Bus& bus, llm::ToolRegistry& registry, Changed changed,
      std::chrono::milliseconds refresh = std::chrono::seconds(30));
  NodeTools(const NodeTools&) = delete;
  NodeTools& operator=(const NodeTools&) = delete;

  // Before start(): what this node announces as its modules' MCP content.
  void set_local_content(LocalContent content) { local_content_ = std::move(content); }
  // Subscribes and asks the other nodes for their tools.
  Status start();
  void stop();
  // This node's tools or modules changed: announce them (coalesced, off the
  // caller's thread).
  void local_changed();
  // Other nodes' modules that offer MCP content (name and `mcp:` only), the
  // first node in order for a module several run; sorted by module name.
  std::vector<Manifest> remote_content() const;

 private:
  NodeTools(Bus& bus, llm::ToolRegistry& registry, Changed changed,
            std::chrono::milliseconds refresh);
  void on_announcement(const EventPtr& event);
  void on_node_left(const EventPtr& event);
  void announce(bool ask);

  Bus& bus_;
  llm::ToolRegistry& registry_;
  const Changed changed_;
  LocalContent local_content_;
  std::mutex announce_mutex_;  // announcements go out in the order they were made
  mutable std::mutex content_mutex_;
  std::map<std::string, Json, std::less<>> remote_content_;  // by node, as announced
  const std::chrono::milliseconds refresh_;
  std::vector<SubscriptionId> subscriptions_;
  // What other nodes say is handled in the order it arrived: on the pool's
  // threads in any order, a node's older announcement could undo its newer.
  boost::asio::strand<boost::asio::any_io_executor> incoming_;
  std::shared_ptr<PeriodicTimer> timer_;
  std::atomic<bool> running_{false};
  std::atomic<bool> queued_{false};
};

}  // namespace lotus
