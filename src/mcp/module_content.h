// ModuleContent: the MCP resources, resource templates and prompts that
// modules declare in their manifests (`mcp:`), next to those of another
// content source (the nucleus's own).
//
// An entry's content comes from the manifest ("text", "blob", "messages",
// with {{name}} filled in from template variables or prompt arguments) or from
// the module, asked over the bus on the entry's "channel". Modules are looked
// up on every call, so what a module offers comes and goes with it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/bus.h"
#include "lotus/manifest.h"
#include "mcp/content.h"

namespace lotus::mcp {

// The variables of an RFC 6570 level-1 template ("test://t/{id}/data")
// in `uri` ("test://t/123/data" -> {"id": "123"}, percent-decoded); nullopt
// when the URI does not match. A variable matches one or more characters
// other than '/'.
std::optional<Json> match_uri_template(std::string_view uri_template, std::string_view uri);

// Every string in `value` with each {{name}} replaced by values[name] (a
// string as it is, anything else as JSON text); unknown names stay.
Json fill_placeholders(Json value, const Json& values);

class ModuleContent : public McpContent {
 public:
  using Manifests = std::function<std::vector<Manifest>()>;

  // `inner` (may be null) is asked for everything no module declares.
  ModuleContent(Bus& bus, Manifests manifests, std::shared_ptr<McpContent> inner,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

  Json resources() override;
  Json resource_templates() override;
  Task<Result<Json>> read_resource(std::string uri) override;
  Json prompts() override;
  Task<Result<Json>> get_prompt(std::string name, Json arguments) override;
  Json complete(const Json& ref, std::string_view argument, std::string_view prefix) override;
  std::vector<std::string> update_channels() override;
  std::vector<std::string> updated_by(const Event& event) override;

 private:
  struct Found {
    std::string module;
    Json entry;      // as the manifest declares it
    Json variables;  // template variables or prompt arguments
  };
  std::optional<Found> find_resource(const std::string& uri);
  std::optional<Found> find_prompt(const std::string& name);
  // Asks the module on the entry's channel; `field` is what its reply holds.
  Task<Result<Json>> ask_module(Found found, Json request, const char* field);

  Bus& bus_;
  Manifests manifests_;
  std::shared_ptr<McpContent> inner_;
  std::chrono::milliseconds timeout_;
};

}  // namespace lotus::mcp
