// NucleusContent: what a running LOTUS offers MCP clients besides tools.
//
// Resources: module manifests (lotus://modules/NAME/manifest), conversations
// the reasoning module keeps (lotus://conversations/ID), health
// (lotus://health) and memory searches (lotus://memory/search/QUERY, a
// template answered by the memory module's recall). Prompts: lotus_task,
// recall and explain_module.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/nucleus.h"
#include "mcp/content.h"

namespace lotus::mcp {

class NucleusContent : public McpContent {
 public:
  explicit NucleusContent(Nucleus& nucleus,
                          std::chrono::milliseconds recall_timeout = std::chrono::seconds(10))
      : nucleus_(nucleus), recall_timeout_(recall_timeout) {}

  Json resources() override;
  Json resource_templates() override;
  Task<Result<Json>> read_resource(std::string uri) override;
  Json prompts() override;
  Task<Result<Json>> get_prompt(std::string name, Json arguments) override;
  // Module names for explain_module's "module".
  Json complete(const Json& ref, std::string_view argument, std::string_view prefix) override;
  // A module's state change updates its manifest resource and lotus://health;
  // a finished task updates its conversation.
  std::vector<std::string> update_channels() override;
  std::vector<std::string> updated_by(const Event& event) override;

 private:
  // The manifest file of a module that is running (or was found but failed).
  Result<std::string> manifest_text(const std::string& module);
  Task<Result<Json>> recall(std::string query, int64_t limit);

  Nucleus& nucleus_;
  std::chrono::milliseconds recall_timeout_;
};

// "a%20b" -> "a b"; InvalidArgument for a broken escape.
Result<std::string> percent_decode(std::string_view text);

// The nucleus's resources an event changes: a module's state change
// (system.module_*, naming it in "module" or "name") its manifest and
// lotus://health; cognition.task_complete its conversation.
std::vector<std::string> nucleus_resources_updated_by(const Event& event);

}  // namespace lotus::mcp
