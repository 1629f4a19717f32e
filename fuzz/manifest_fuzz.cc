// Fuzz target for lotus::parse_manifest: manifests come from module folders
// anyone (or the self-modifier) can write. The parser must return a Status for
// every input, never throw, crash or hang, and whatever it accepts must keep
// the promises manifest.h makes about the fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "lotus/channel.h"
#include "lotus/manifest.h"
#include "lotus/strings.h"

namespace {

constexpr std::string_view kPath = "fuzz/module/manifest.yaml";

bool is_module_name(std::string_view s) {
  if (s.empty() || s.size() > 64 || s[0] < 'a' || s[0] > 'z') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// Everything a module, the config loader or a provider will later serialize
// must serialize: Json::dump() throws on strings that are not UTF-8.
void check_dumps(const nlohmann::json& value, std::string_view what) {
  FUZZ_CHECK(!value.dump().empty(), what);
}

// `{}` (what a manifest without config_schema gets) allows any object too.
void check_object_schema(const nlohmann::json& schema, std::string_view what, bool may_be_empty) {
  FUZZ_CHECK(schema.is_object(), lotus::cat(what, " is not an object: ", schema.dump()));
  if (may_be_empty && schema.empty()) return;
  FUZZ_CHECK(schema.contains("type") && schema["type"] == "object", lotus::cat(what, ".type"));
  FUZZ_CHECK(schema.contains("properties") && schema["properties"].is_object(),
             lotus::cat(what, ".properties"));
  check_dumps(schema, what);
}

void check_requirements(const std::vector<lotus::Manifest::Requirement>& list) {
  for (const lotus::Manifest::Requirement& requirement : list) {
    FUZZ_CHECK(!requirement.name.empty(), "a requirement without a name");
    // The normalized text parses back to the same normalized text.
    auto again = lotus::VersionConstraint::parse(requirement.constraint.text());
    FUZZ_CHECK(again.ok(), lotus::cat("constraint ", requirement.constraint.text(),
                                      " does not parse back: ", lotus::message_of(again.status())));
    FUZZ_CHECK(again->text() == requirement.constraint.text(),
               lotus::cat(requirement.constraint.text(), " became ", again->text()));
    FUZZ_CHECK(again->any() == requirement.constraint.any(), requirement.to_string());
  }
}

void check_manifest(const lotus::Manifest& m) {
  FUZZ_CHECK(is_module_name(m.name), lotus::cat("accepted name ", m.name));
  FUZZ_CHECK(m.path == std::filesystem::path(kPath), m.path.string());
  FUZZ_CHECK(m.directory == std::filesystem::path(kPath).parent_path(), m.directory.string());

  const std::string version = m.version.to_string();
  auto reparsed = lotus::SemVer::parse(version);
  FUZZ_CHECK(reparsed.ok(), lotus::cat("version ", version, " does not parse back"));
  FUZZ_CHECK(*reparsed == m.version && reparsed->to_string() == version, version);

  check_requirements(m.dependencies.modules);
  check_requirements(m.dependencies.system);

  for (const lotus::Manifest::Subscription& sub : m.subscriptions) {
    FUZZ_CHECK(lotus::validate_pattern(sub.pattern).ok(), lotus::cat("pattern ", sub.pattern));
    FUZZ_CHECK(!sub.handler.empty(), lotus::cat("no handler for ", sub.pattern));
    FUZZ_CHECK(lotus::SubscriptionFilter::parse(sub.filter.spec()).ok(), sub.pattern);
    check_dumps(sub.filter.spec(), "subscription filter");
    // Filters run against arbitrary event data; they must answer, not throw.
    sub.filter.matches(nlohmann::json::object());
    sub.filter.matches(nlohmann::json{{"path", "src/main.py"}});
  }
  for (const std::string& publication : m.publications) {
    FUZZ_CHECK(lotus::validate_pattern(publication).ok(), lotus::cat("publication ", publication));
    // What the module host asks before every publish.
    if (lotus::validate_channel(publication).ok()) {
      FUZZ_CHECK(m.may_publish(publication), lotus::cat("may not publish ", publication));
    }
  }
  for (const lotus::Manifest::Tool& tool : m.tools) {
    FUZZ_CHECK(!tool.name.empty() && tool.name.size() <= 64, lotus::cat("tool ", tool.name));
    FUZZ_CHECK(m.find_tool(tool.name) == &tool, lotus::cat("two tools named ", tool.name));
    check_object_schema(tool.parameters, lotus::cat("tools.", tool.name, ".parameters"), false);
  }
  check_object_schema(m.config_schema, "config_schema", true);
  FUZZ_CHECK(m.config_defaults.is_object(), m.config_defaults.dump());
  check_dumps(m.config_defaults, "config_defaults");
  FUZZ_CHECK(m.extensions.is_object(), m.extensions.dump());
  check_dumps(m.extensions, "extensions");
  for (const auto& [key, value] : m.extensions.items()) {
    FUZZ_CHECK(std::string_view(key).starts_with("x-"), lotus::cat("extension ", key));
  }
  for (const std::string& permission : m.permissions) {
    FUZZ_CHECK(m.has_permission(permission), lotus::cat("permission ", permission));
  }
  for (const std::filesystem::path& p : {m.runtime.library, m.runtime.entry}) {
    FUZZ_CHECK(p.is_relative(), lotus::cat("runtime path ", p.string(), " is absolute"));
    for (const std::filesystem::path& part : p) {
      FUZZ_CHECK(part != "..", lotus::cat("runtime path ", p.string(), " climbs out"));
    }
  }
  FUZZ_CHECK(m.runtime.kind == lotus::Manifest::Runtime::Kind::kNative || m.runtime.library.empty(),
             "a lua module with a library");
  FUZZ_CHECK(m.mailbox.capacity > 0, "mailbox capacity 0");
  FUZZ_CHECK(m.mailbox.overflow == "wait" || m.mailbox.overflow == "drop_oldest" ||
                 m.mailbox.overflow == "drop_newest",
             lotus::cat("overflow ", m.mailbox.overflow));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  lotus::Result<lotus::Manifest> manifest = lotus::parse_manifest(text, kPath);
  if (!manifest.ok()) {
    const std::string_view message = lotus::message_of(manifest.status());
    FUZZ_CHECK(manifest.status().code() == absl::StatusCode::kInvalidArgument, message);
    FUZZ_CHECK(message.starts_with(kPath), message);
    // parse_manifest turns an exception that escaped the parser into this
    // message; the parser is meant to check before it converts, so reaching
    // that safety net is a bug.
    FUZZ_CHECK(!message.starts_with(lotus::cat(kPath, ": cannot parse the manifest: ")), message);
    return 0;
  }
  check_manifest(*manifest);
  return 0;
}
