#include "mcp/nucleus_content.h"

#include <fstream>
#include <iterator>

#include "lotus/strings.h"

namespace lotus::mcp {

namespace {

constexpr std::string_view kModules = "lotus://modules/";
constexpr std::string_view kManifestSuffix = "/manifest";
constexpr std::string_view kConversations = "lotus://conversations/";
constexpr std::string_view kMemorySearch = "lotus://memory/search/";
constexpr std::string_view kHealth = "lotus://health";
constexpr std::string_view kConversationKey = "conversation.";

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

Json text_message(std::string text) {
  return {{"role", "user"}, {"content", {{"type", "text"}, {"text", std::move(text)}}}};
}

Result<std::string> required_string(const Json& arguments, const char* name) {
  auto it = arguments.find(name);
  if (it == arguments.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError(cat("argument \"", name, "\" is required (a string)"));
  }
  return it->get<std::string>();
}

}  // namespace

Result<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      return absl::InvalidArgumentError(
          cat("broken percent escape at offset ", i, " in \"", text, "\""));
    }
    out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16)));
    i += 2;
  }
  return out;
}

Json NucleusContent::resources() {
  Json list = Json::array();
  list.push_back({{"uri", kHealth},
                  {"name", "health"},
                  {"title", "LOTUS health"},
                  {"description", "State, restarts, errors and latency of every module"},
                  {"mimeType", "application/json"}});
  for (const ModuleSummary& module : nucleus_.modules()) {
    list.push_back({{"uri", cat(kModules, module.name, kManifestSuffix)},
                    {"name", cat(module.name, " manifest")},
                    {"title", cat("Module ", module.name, " ", module.version)},
                    {"description", cat("manifest.yaml of the ", module.type, " module ",
                                        module.name, " (", module.state, ")")},
                    {"mimeType", "application/yaml"}});
  }
  if (StateStore* state = nucleus_.state_store()) {
    auto all = state->all("reasoning");
    if (all.ok()) {
      for (const auto& [key, value] : *all) {
        if (!starts_with(key, kConversationKey)) continue;
        std::string id = key.substr(kConversationKey.size());
        list.push_back({{"uri", cat(kConversations, id)},
                        {"name", cat("conversation ", id)},
                        {"description", "Messages of a conversation with the reasoning engine"},
                        {"mimeType", "application/json"}});
      }
    }
  }
  return list;
}

std::vector<std::string> NucleusContent::update_channels() {
  return {"system.*", "cognition.task_complete"};
}

std::vector<std::string> NucleusContent::updated_by(const Event& event) {
  return nucleus_resources_updated_by(event);
}

std::vector<std::string> nucleus_resources_updated_by(const Event& event) {
  if (!event.data.is_object()) return {};
  if (event.channel == "cognition.task_complete") {
    auto id = event.data.find("conversation_id");
    if (id == event.data.end() || !id->is_string()) return {};
    return {cat(kConversations, id->get<std::string>())};
  }
  if (!starts_with(event.channel, "system.module_")) return {};
  std::vector<std::string> uris = {std::string(kHealth)};
  for (const char* field : {"module", "name"}) {
    auto name = event.data.find(field);
    if (name != event.data.end() && name->is_string()) {
      uris.push_back(cat(kModules, name->get<std::string>(), kManifestSuffix));
      break;
    }
  }
  return uris;
}

Json NucleusContent::resource_templates() {
  return Json::array(
      {{{"uriTemplate", cat(kModules, "{name}", kManifestSuffix)},
        {"name", "module manifest"},
        {"description", "The manifest.yaml of a module, by name"},
        {"mimeType", "application/yaml"}},
       {{"uriTemplate", cat(kConversations, "{id}")},
        {"name", "conversation"},
        {"description", "A conversation's messages, by id"},
        {"mimeType", "application/json"}},
       {{"uriTemplate", cat(kMemorySearch, "{query}")},
        {"name", "memory search"},
        {"description", "Memories relevant to a query (percent-encoded), best first"},
        {"mimeType", "application/json"}}});
}

Result<std::string> NucleusContent::manifest_text(const std::string& module) {
  for (const Manifest& manifest : discover_modules(nucleus_.config().module_dirs).manifests) {
    if (manifest.name != module) continue;
    std::ifstream in(manifest.path, std::ios::binary);
    if (!in) return absl::NotFoundError(cat("cannot read ", manifest.path.string()));
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return absl::NotFoundError(cat("resource not found: no module \"", module, "\""));
}

Task<Result<Json>> NucleusContent::recall(std::string query, int64_t limit) {
  Event request = Event::make("memory.recall", "mcp", Json{{"query", query}, {"limit", limit}});
  auto pending = nucleus_.bus().request(std::move(request), recall_timeout_);
  Result<EventPtr> reply = co_await std::move(pending);
  if (!reply.ok()) {
    co_return absl::UnavailableError(
        cat("memory recall failed (is the memory module running?): ", message_of(reply.status())));
  }
  const Json& data = (*reply)->data;
  if (!data.value("ok", false)) {
    co_return absl::InvalidArgumentError(
        cat("memory recall failed: ", data.value("error", std::string("no reason given"))));
  }
  co_return data.value("results", Json::array());
}

Task<Result<Json>> NucleusContent::read_resource(std::string uri) {
  auto contents = [&uri](std::string mime, std::string text) {
    return Json::array({{{"uri", uri}, {"mimeType", std::move(mime)}, {"text", std::move(text)}}});
  };
  if (uri == kHealth) co_return contents("application/json", nucleus_.health().dump(2));
  if (starts_with(uri, kModules) && uri.size() > kModules.size() + kManifestSuffix.size() &&
      uri.substr(uri.size() - kManifestSuffix.size()) == kManifestSuffix) {
    std::string name =
        uri.substr(kModules.size(), uri.size() - kModules.size() - kManifestSuffix.size());
    auto text = manifest_text(name);
    if (!text.ok()) co_return text.status();
    co_return contents("application/yaml", std::move(*text));
  }
  if (starts_with(uri, kConversations)) {
    std::string id = uri.substr(kConversations.size());
    StateStore* state = nucleus_.state_store();
    if (state == nullptr) co_return absl::UnavailableError("LOTUS is not running");
    auto value = state->get("reasoning", cat(kConversationKey, id));
    if (!value.ok()) co_return value.status();
    if (value->is_null())
      co_return absl::NotFoundError(cat("resource not found: no conversation \"", id, "\""));
    co_return contents("application/json", value->dump(2));
  }
  if (starts_with(uri, kMemorySearch)) {
    auto query = percent_decode(std::string_view(uri).substr(kMemorySearch.size()));
    if (!query.ok()) co_return query.status();
    if (query->empty()) co_return absl::InvalidArgumentError("the memory search query is empty");
    auto recalling = recall(*query, 10);
    Result<Json> results = co_await std::move(recalling);
    if (!results.ok()) co_return results.status();
    co_return contents("application/json", results->dump(2));
  }
  co_return absl::NotFoundError(cat("resource not found: ", uri));
}

Json NucleusContent::prompts() {
  return Json::array(
      {{{"name", "lotus_task"},
        {"title", "Do a task with LOTUS's tools"},
        {"description", "Asks for a task to be carried out with the tools LOTUS offers"},
        {"arguments",
         Json::array({{{"name", "task"}, {"description", "What to do"}, {"required", true}}})}},
       {{"name", "recall"},
        {"title", "Answer from LOTUS's memory"},
        {"description", "Recalls memories about a topic and asks for an answer grounded in them"},
        {"arguments", Json::array({{{"name", "topic"},
                                    {"description", "What to recall and ask about"},
                                    {"required", true}},
                                   {{"name", "limit"},
                                    {"description", "How many memories (default 5)"},
                                    {"required", false}}})}},
       {{"name", "explain_module"},
        {"title", "Explain a LOTUS module"},
        {"description", "Shows a module's manifest and asks what it does and how to use it"},
        {"arguments", Json::array({{{"name", "module"},
                                    {"description", "The module's name (e.g. memory, fs)"},
                                    {"required", true}}})}}});
}

Json NucleusContent::complete(const Json& ref, std::string_view argument, std::string_view prefix) {
  Json values = Json::array();
  if (ref.value("type", "") != "ref/prompt" || ref.value("name", "") != "explain_module" ||
      argument != "module") {
    return values;
  }
  for (const ModuleSummary& m : nucleus_.modules()) {
    if (std::string_view(m.name).starts_with(prefix)) values.push_back(m.name);
  }
  return values;
}

Task<Result<Json>> NucleusContent::get_prompt(std::string name, Json arguments) {
  if (name == "lotus_task") {
    auto task = required_string(arguments, "task");
    if (!task.ok()) co_return task.status();
    co_return Json{
        {"description", "A task for LOTUS's tools"},
        {"messages", Json::array({text_message(
                         cat("Carry out this task using the LOTUS tools available (their names "
                             "are module__tool). Check what a tool returns before relying on it, "
                             "and say which tools you used.\n\nTask: ",
                             *task))})}};
  }
  if (name == "recall") {
    auto topic = required_string(arguments, "topic");
    if (!topic.ok()) co_return topic.status();
    int64_t limit = 5;
    if (auto it = arguments.find("limit"); it != arguments.end()) {
      std::string text = it->is_string() ? it->get<std::string>() : it->dump();
      char* end = nullptr;
      limit = std::strtoll(text.c_str(), &end, 10);
      if (end == text.c_str() || *end != '\0' || limit < 1 || limit > 100) {
        co_return absl::InvalidArgumentError("argument \"limit\" must be a number from 1 to 100");
      }
    }
    auto recalling = recall(*topic, limit);
    Result<Json> memories = co_await std::move(recalling);
    if (!memories.ok()) co_return memories.status();
    std::string listed;
    for (const Json& hit : *memories) {
      const Json& memory = hit.contains("memory") ? hit["memory"] : hit;
      listed += cat("- ", memory.value("content", memory.dump()), "\n");
    }
    if (listed.empty()) listed = "(nothing relevant is remembered)\n";
    co_return Json{
        {"description", cat("What LOTUS remembers about ", *topic)},
        {"messages", Json::array({text_message(cat("Here is what LOTUS remembers about \"", *topic,
                                                   "\":\n", listed,
                                                   "\nUsing these memories (and saying when they "
                                                   "are not enough), tell me about ",
                                                   *topic, "."))})}};
  }
  if (name == "explain_module") {
    auto module = required_string(arguments, "module");
    if (!module.ok()) co_return module.status();
    auto text = manifest_text(*module);
    if (!text.ok()) co_return absl::InvalidArgumentError(std::string(message_of(text.status())));
    std::string uri = cat(kModules, *module, kManifestSuffix);
    co_return Json{
        {"description", cat("Explain the module ", *module)},
        {"messages",
         Json::array(
             {{{"role", "user"},
               {"content",
                {{"type", "resource"},
                 {"resource", {{"uri", uri}, {"mimeType", "application/yaml"}, {"text", *text}}}}}},
              text_message(cat("This is the manifest of the LOTUS module \"", *module,
                               "\". Explain what it does, which events it listens to "
                               "and publishes, what its tools do, and how to "
                               "configure it."))})}};
  }
  co_return absl::NotFoundError(cat("unknown prompt \"", name, "\"; prompts/list names them"));
}

}  // namespace lotus::mcp
