// McpContent: the resources and prompts an MCP server offers, apart from
// tools. The server speaks the protocol; a content source knows where the
// things live (the nucleus's modules, memory, conversations), so the protocol
// is tested without a nucleus and the nucleus knows nothing of MCP.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lotus/event.h"
#include "lotus/status.h"
#include "lotus/task.h"

namespace lotus::mcp {

class McpContent {
 public:
  virtual ~McpContent() = default;

  // MCP Resource objects: {uri, name, title?, description?, mimeType?}.
  virtual Json resources() = 0;
  // MCP ResourceTemplate objects: {uriTemplate, name, description?, mimeType?}.
  virtual Json resource_templates() = 0;
  // The "contents" array of a resources/read result. NotFound for a URI
  // nothing answers to, InvalidArgument for one that is malformed.
  virtual Task<Result<Json>> read_resource(std::string uri) = 0;

  // MCP Prompt objects: {name, title?, description?, arguments: [{name, description, required}]}.
  virtual Json prompts() = 0;
  // A prompts/get result ({description, messages}). NotFound for an unknown
  // prompt, InvalidArgument for missing or wrong arguments.
  virtual Task<Result<Json>> get_prompt(std::string name, Json arguments) = 0;

  // Values for completion/complete: what the argument `argument` of `ref`
  // ({"type": "ref/prompt", "name"} or {"type": "ref/resource", "uri"}) may be,
  // starting with `prefix`. None by default.
  virtual Json complete(const Json& ref, std::string_view argument, std::string_view prefix) {
    (void)ref;
    (void)argument;
    (void)prefix;
    return Json::array();
  }

  // Bus channels (patterns) whose events change resources; the server
  // subscribes to them and asks `updated_by` which URIs an event changed,
  // to tell clients subscribed to those (notifications/resources/updated).
  virtual std::vector<std::string> update_channels() { return {}; }
  virtual std::vector<std::string> updated_by(const Event& event) {
    (void)event;
    return {};
  }
};

}  // namespace lotus::mcp
