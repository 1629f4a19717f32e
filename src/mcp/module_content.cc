#include "mcp/module_content.h"

#include <utility>

#include "lotus/strings.h"
#include "mcp/nucleus_content.h"

namespace lotus::mcp {

namespace {

// The MCP object as clients see it: without where its content comes from.
Json listed(Json entry) {
  for (const char* source : {"text", "blob", "channel", "messages"}) entry.erase(source);
  return entry;
}

}  // namespace

std::optional<Json> match_uri_template(std::string_view uri_template, std::string_view uri) {
  Json variables = Json::object();
  size_t t = 0;
  size_t u = 0;
  while (t < uri_template.size()) {
    if (uri_template[t] != '{') {
      if (u >= uri.size() || uri[u] != uri_template[t]) return std::nullopt;
      ++t;
      ++u;
      continue;
    }
    size_t close = uri_template.find('}', t);
    if (close == std::string_view::npos) return std::nullopt;
    std::string name(uri_template.substr(t + 1, close - t - 1));
    t = close + 1;
    // Up to the next literal character of the template (or '/', or the end).
    char stop = t < uri_template.size() ? uri_template[t] : '\0';
    size_t end = u;
    while (end < uri.size() && uri[end] != '/' && (stop == '\0' || uri[end] != stop)) ++end;
    if (end == u) return std::nullopt;
    auto decoded = percent_decode(uri.substr(u, end - u));
    if (!decoded.ok()) return std::nullopt;
    variables[name] = *decoded;
    u = end;
  }
  if (u != uri.size()) return std::nullopt;
  return variables;
}

Json fill_placeholders(Json value, const Json& values) {
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    std::string out;
    size_t at = 0;
    while (true) {
      size_t open = text.find("{{", at);
      size_t close = open == std::string::npos ? open : text.find("}}", open + 2);
      if (close == std::string::npos) break;
      std::string name = text.substr(open + 2, close - open - 2);
      auto it = values.is_object() ? values.find(name) : values.end();
      out += text.substr(at, open - at);
      if (it == values.end()) {
        out += text.substr(open, close + 2 - open);
      } else {
        out += it->is_string() ? it->get<std::string>() : it->dump();
      }
      at = close + 2;
    }
    out += text.substr(at);
    return out;
  }
  if (value.is_array() || value.is_object()) {
    for (auto& item : value) item = fill_placeholders(std::move(item), values);
  }
  return value;
}

ModuleContent::ModuleContent(Bus& bus, Manifests manifests, std::shared_ptr<McpContent> inner,
                             std::chrono::milliseconds timeout)
    : bus_(bus), manifests_(std::move(manifests)), inner_(std::move(inner)), timeout_(timeout) {}

Json ModuleContent::resources() {
  Json out = inner_ ? inner_->resources() : Json::array();
  for (const Manifest& m : manifests_()) {
    for (const Json& entry : m.mcp.resources) out.push_back(listed(entry));
  }
  return out;
}

Json ModuleContent::resource_templates() {
  Json out = inner_ ? inner_->resource_templates() : Json::array();
  for (const Manifest& m : manifests_()) {
    for (const Json& entry : m.mcp.resource_templates) out.push_back(listed(entry));
  }
  return out;
}

Json ModuleContent::prompts() {
  Json out = inner_ ? inner_->prompts() : Json::array();
  for (const Manifest& m : manifests_()) {
    for (const Json& entry : m.mcp.prompts) out.push_back(listed(entry));
  }
  return out;
}

Json ModuleContent::complete(const Json& ref, std::string_view argument, std::string_view prefix) {
  return inner_ ? inner_->complete(ref, argument, prefix) : Json::array();
}

// Modules announce their own resources' changes on mcp.resource_updated
// (the server listens there itself); the nucleus's are the inner source's.
std::vector<std::string> ModuleContent::update_channels() {
  return inner_ ? inner_->update_channels() : std::vector<std::string>{};
}

std::vector<std::string> ModuleContent::updated_by(const Event& event) {
  return inner_ ? inner_->updated_by(event) : std::vector<std::string>{};
}

std::optional<ModuleContent::Found> ModuleContent::find_resource(const std::string& uri) {
  std::vector<Manifest> manifests = manifests_();
  // A resource by its exact URI before any template that would match it.
  for (const Manifest& m : manifests) {
    for (const Json& entry : m.mcp.resources) {
      if (entry.value("uri", "") == uri) return Found{m.name, entry, Json::object()};
    }
  }
  for (const Manifest& m : manifests) {
    for (const Json& entry : m.mcp.resource_templates) {
      if (auto variables = match_uri_template(entry.value("uriTemplate", ""), uri)) {
        return Found{m.name, entry, std::move(*variables)};
      }
    }
  }
  return std::nullopt;
}

std::optional<ModuleContent::Found> ModuleContent::find_prompt(const std::string& name) {
  for (const Manifest& m : manifests_()) {
    for (const Json& entry : m.mcp.prompts) {
      if (entry.value("name", "") == name) return Found{m.name, entry, Json::object()};
    }
  }
  return std::nullopt;
}

Task<Result<Json>> ModuleContent::ask_module(Found found, Json request, const char* field) {
  std::string channel = found.entry.value("channel", "");
  Event event = Event::make(channel, "mcp", std::move(request));
  auto pending = bus_.request(std::move(event), timeout_);
  Result<EventPtr> reply = co_await std::move(pending);
  if (!reply.ok()) {
    co_return absl::UnavailableError(cat("module ", found.module, " did not answer on ", channel,
                                         ": ", message_of(reply.status())));
  }
  const Json& data = (*reply)->data;
  if (data.contains("error")) {
    std::string error =
        data["error"].is_string() ? data["error"].get<std::string>() : data["error"].dump();
    co_return absl::InvalidArgumentError(cat("module ", found.module, ": ", error));
  }
  auto it = data.find(field);
  if (it == data.end() || !it->is_array()) {
    co_return absl::InternalError(
        cat("module ", found.module, " answered on ", channel, " without a \"", field, "\" list"));
  }
  if (std::string_view(field) == "messages") {
    Json out = {{"messages", *it}};
    if (data.contains("description")) out["description"] = data["description"];
    co_return out;
  }
  co_return *it;
}

Task<Result<Json>> ModuleContent::read_resource(std::string uri) {
  std::optional<Found> found = find_resource(uri);
  if (!found) {
    if (!inner_) co_return absl::NotFoundError(cat("resource not found: ", uri));
    auto reading = inner_->read_resource(std::move(uri));
    Result<Json> inner = co_await std::move(reading);
    co_return inner;
  }
  const Json& entry = found->entry;
  if (entry.contains("channel")) {
    Json request = {{"uri", uri}, {"variables", found->variables}};
    auto asking = ask_module(*found, std::move(request), "contents");
    Result<Json> contents = co_await std::move(asking);
    co_return contents;
  }
  Json content = {{"uri", uri}};
  if (entry.contains("mimeType")) content["mimeType"] = entry["mimeType"];
  if (entry.contains("blob")) {
    content["blob"] = entry["blob"];
  } else {
    content["text"] = fill_placeholders(entry.value("text", ""), found->variables);
  }
  co_return Json::array({std::move(content)});
}

Task<Result<Json>> ModuleContent::get_prompt(std::string name, Json arguments) {
  std::optional<Found> found = find_prompt(name);
  if (!found) {
    if (!inner_) co_return absl::NotFoundError(cat("unknown prompt \"", name, "\""));
    auto getting = inner_->get_prompt(std::move(name), std::move(arguments));
    Result<Json> inner = co_await std::move(getting);
    co_return inner;
  }
  const Json& entry = found->entry;
  for (const Json& argument : entry.value("arguments", Json::array())) {
    if (!argument.is_object() || !argument.contains("required") || argument["required"] != true) {
      continue;
    }
    std::string arg = argument.value("name", "");
    if (!arguments.contains(arg)) {
      co_return absl::InvalidArgumentError(
          cat("prompt \"", name, "\" needs the argument \"", arg, "\""));
    }
  }
  if (entry.contains("channel")) {
    Json request = {{"name", name}, {"arguments", std::move(arguments)}};
    auto asking = ask_module(*found, std::move(request), "messages");
    Result<Json> prompt = co_await std::move(asking);
    co_return prompt;
  }
  Json out = {{"messages", fill_placeholders(entry["messages"], arguments)}};
  if (entry.contains("description")) out["description"] = entry["description"];
  co_return out;
}

}  // namespace lotus::mcp
