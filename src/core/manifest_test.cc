#include "lotus/manifest.h"

#include <filesystem>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lotus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

const std::filesystem::path kFixtures =
    std::filesystem::path(LOTUS_SOURCE_DIR) / "tests" / "fixtures" / "manifests";

constexpr std::string_view kMinimal = R"(name: mini
version: "0.1.0"
type: core
)";

Manifest parse_ok(std::string_view text) {
  Result<Manifest> m = parse_manifest(text, "modules/x/manifest.yaml");
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : Manifest{};
}

std::string parse_error(std::string_view text) {
  Result<Manifest> m = parse_manifest(text, "modules/x/manifest.yaml");
  EXPECT_FALSE(m.ok()) << "expected an error for:\n" << text;
  if (m.ok()) return "";
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(m.status().message());
}

std::string with_minimal(std::string_view extra) {
  return std::string(kMinimal) + std::string(extra);
}

// ---------------------------------------------------------------------------
// The design's example

TEST(ManifestTest, DesignExampleLoadsFromDiskAsWritten) {
  const std::filesystem::path file = kFixtures / "code_assistant" / "manifest.yaml";
  Result<Manifest> loaded = load_manifest(file);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Manifest& m = *loaded;

  EXPECT_EQ(m.name, "code_assistant");
  EXPECT_EQ(m.version.to_string(), "1.2.0");
  EXPECT_EQ(m.type, ModuleType::kCapability);
  EXPECT_EQ(m.author, "LOTUS Team");
  EXPECT_EQ(m.license, "MIT");
  EXPECT_EQ(m.priority, ModulePriority::kHigh);
  EXPECT_EQ(m.path, file);
  EXPECT_EQ(m.directory, file.parent_path());

  ASSERT_EQ(m.dependencies.modules.size(), 3u);
  EXPECT_EQ(m.dependencies.modules[0].name, "reasoning");
  EXPECT_EQ(m.dependencies.modules[1].name, "memory");
  EXPECT_EQ(m.dependencies.modules[2].name, "providers");
  EXPECT_TRUE(m.dependencies.modules[0].constraint.any());
  ASSERT_EQ(m.dependencies.system.size(), 1u);
  EXPECT_EQ(m.dependencies.system[0].name, "python");
  EXPECT_EQ(m.dependencies.system[0].constraint.text(), ">=3.11");
  EXPECT_EQ(m.dependencies.system[0].to_string(), "python>=3.11");
  EXPECT_THAT(m.dependencies.packages, ElementsAre("tree-sitter", "pygments"));

  ASSERT_EQ(m.subscriptions.size(), 3u);
  EXPECT_EQ(m.subscriptions[0].pattern, "cognition.code_request");
  EXPECT_EQ(m.subscriptions[0].handler, "handle_code_request");
  EXPECT_TRUE(m.subscriptions[0].filter.empty());
  EXPECT_EQ(m.subscriptions[1].pattern, "perception.file_changed");
  EXPECT_EQ(m.subscriptions[1].handler, "on_file_change");
  EXPECT_EQ(m.subscriptions[1].filter.spec(), Json("*.py"));
  EXPECT_EQ(m.subscriptions[2].handler, "debug_code");

  EXPECT_THAT(m.publications, ElementsAre("action.code_suggestion", "action.code_execution",
                                          "cognition.analysis_complete", "memory.store_pattern"));

  EXPECT_EQ(m.providers.primary, "claude-sonnet-4");
  EXPECT_THAT(m.providers.fallback, ElementsAre("gpt-4o", "ollama:deepseek-coder"));
  EXPECT_EQ(m.providers.delegation.size(), 3u);
  EXPECT_EQ(m.providers.delegation.at("complex_architecture"), "claude-opus-4");
  EXPECT_EQ(m.providers.delegation.at("quick_fixes"), "gpt-4o-mini");
  EXPECT_EQ(m.providers.delegation.at("code_review"), "claude-sonnet-4");

  EXPECT_THAT(m.memory.vector_collections,
              ElementsAre("code_patterns", "bug_solutions", "architecture_designs"));
  EXPECT_THAT(m.memory.state_keys,
              ElementsAre("active_project", "recent_files", "user_preferences"));

  ASSERT_EQ(m.tools.size(), 2u);
  EXPECT_EQ(m.tools[0].name, "analyze_code");
  EXPECT_EQ(m.tools[0].description, "Analyze code for bugs and improvements");
  EXPECT_EQ(m.tools[0].parameters, Json::parse(R"({
    "type": "object",
    "properties": {"code": {"type": "string"}, "language": {"type": "string"}},
    "required": ["code"]})"));
  EXPECT_EQ(m.tools[1].name, "write_code");
  EXPECT_EQ(m.tools[1].parameters, Json::parse(R"({
    "type": "object", "properties": {"spec": {"type": "object"}}, "required": ["spec"]})"));

  EXPECT_THAT(m.capabilities, ElementsAre("code_analysis", "bug_fixing", "architecture_design",
                                          "real_time_assistance", "pattern_learning"));

  EXPECT_EQ(m.config_defaults, Json::parse(R"({
    "watch_patterns": ["*.py", "*.js", "*.ts"], "auto_fix": false, "suggestion_delay": 1.0})"));
  EXPECT_EQ(m.config_schema, Json::parse(R"({
    "type": "object",
    "properties": {
      "watch_patterns": {"type": "array", "items": {"type": "string"},
                         "default": ["*.py", "*.js", "*.ts"]},
      "auto_fix": {"type": "boolean", "default": false},
      "suggestion_delay": {"type": "number", "default": 1.0}}})"));

  EXPECT_TRUE(m.hotload);
  EXPECT_THAT(m.permissions,
              ElementsAre("file.read", "file.write", "network.http", "llm.api_call"));

  // Not in the design: the defaults.
  EXPECT_EQ(m.runtime.kind, Manifest::Runtime::Kind::kNative);
  EXPECT_TRUE(m.runtime.library.empty());
  EXPECT_EQ(m.mailbox.capacity, 1024u);
  EXPECT_EQ(m.mailbox.overflow, "wait");
  EXPECT_TRUE(m.extensions.empty());
}

TEST(ManifestTest, MinimalManifestGetsDefaults) {
  Manifest m = parse_ok(kMinimal);
  EXPECT_EQ(m.name, "mini");
  EXPECT_EQ(m.version.to_string(), "0.1.0");
  EXPECT_EQ(m.type, ModuleType::kCore);
  EXPECT_EQ(m.priority, ModulePriority::kNormal);
  EXPECT_FALSE(m.hotload);
  EXPECT_TRUE(m.tools.empty());
  EXPECT_EQ(m.config_schema, Json::object());
  EXPECT_EQ(m.config_defaults, Json::object());
  EXPECT_EQ(m.path, std::filesystem::path("modules/x/manifest.yaml"));
  EXPECT_EQ(m.directory, std::filesystem::path("modules/x"));
}

TEST(ManifestTest, IntegersTooBigFor64BitsStayApproximateNumbersInEveryBase) {
  Manifest m = parse_ok(with_minimal(
      "config_schema:\n  octal: 0o777777777777777777777777\n  hex: 0xFFFFFFFFFFFFFFFFFFFF\n"
      "  decimal: 123456789012345678901234567890\n"));
  EXPECT_NEAR(m.config_defaults["octal"].get<double>(), 4.722366482869645e21, 1e7);
  EXPECT_NEAR(m.config_defaults["hex"].get<double>(), 1.2089258196146292e24, 1e9);
  EXPECT_NEAR(m.config_defaults["decimal"].get<double>(), 1.2345678901234568e29, 1e14);
}

TEST(ManifestTest, EmptyValuesMeanNotGiven) {
  Manifest m = parse_ok(with_minimal("author:\nproviders:\ntools:\nhotload: ~\n"));
  EXPECT_EQ(m.author, "");
  EXPECT_FALSE(m.hotload);
}

TEST(ManifestTest, McpSectionDeclaresToolNamingResourcesAndPrompts) {
  auto m = parse_manifest(R"(name: kit
version: 1.0.0
type: integration
mcp:
  tool_names: bare
  resources:
    - {uri: "test://a", name: a, mimeType: text/plain, text: "A"}
  resource_templates:
    - {uriTemplate: "test://t/{id}", name: t, channel: kit.read}
  prompts:
    - name: p
      arguments: [{name: x, required: true}]
      messages: [{role: user, content: {type: text, text: "{{x}}"}}]
)",
                          "kit/manifest.yaml");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->mcp.bare_tool_names);
  EXPECT_EQ(m->mcp.resources[0]["text"], "A");
  EXPECT_EQ(m->mcp.resource_templates[0]["channel"], "kit.read");
  EXPECT_EQ(m->mcp.prompts[0]["arguments"][0]["required"], true);
  auto plain = parse_manifest("name: kit\nversion: 1.0.0\ntype: core\n", "kit/manifest.yaml");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->mcp.bare_tool_names);
  EXPECT_TRUE(plain->mcp.resources.empty());
}

TEST(ManifestTest, McpSectionProblemsNameTheEntry) {
  auto m = parse_manifest(R"(name: kit
version: 1.0.0
type: integration
mcp:
  tool_names: short
  resources:
    - {uri: "test://a", text: "A"}
    - {uri: "test://b", name: b, text: "B", channel: kit.read}
    - {uri: "test://c", name: c, channel: "bad..channel"}
  prompts:
    - {name: p, messages: "hello"}
)",
                          "kit/manifest.yaml");
  ASSERT_FALSE(m.ok());
  std::string message(m.status().message());
  EXPECT_NE(message.find("mcp.tool_names: \"short\" is not a naming"), std::string::npos)
      << message;
  EXPECT_NE(message.find("mcp.resources[0]: \"name\" is required"), std::string::npos) << message;
  EXPECT_NE(message.find("mcp.resources[1]: give exactly one of text, blob, channel"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("mcp.resources[2]: \"channel\" must be"), std::string::npos) << message;
  EXPECT_NE(message.find("mcp.prompts[0]: \"messages\" must be a list"), std::string::npos)
      << message;
}

TEST(ManifestTest, ExtensionKeysAreKept) {
  Manifest m = parse_ok(with_minimal("x-homepage: https://example.org\nx-tags: [a, 1]\n"));
  EXPECT_EQ(m.extensions,
            Json::parse(R"({"x-homepage": "https://example.org", "x-tags": ["a", 1]})"));
}

TEST(ManifestTest, PrereleaseVersionAndEnumsParse) {
  Manifest m = parse_ok(R"(
name: m2
version: 2.0.0-rc.1+build.5
type: integration
priority: critical
description: "does things"
)");
  EXPECT_EQ(m.version.prerelease, "rc.1");
  EXPECT_EQ(m.version.build, "build.5");
  EXPECT_EQ(m.version.to_string(), "2.0.0-rc.1+build.5");
  EXPECT_EQ(m.type, ModuleType::kIntegration);
  EXPECT_EQ(m.priority, ModulePriority::kCritical);
  EXPECT_EQ(m.description, "does things");
}

// ---------------------------------------------------------------------------
// Tools

TEST(ManifestTest, ListFormParametersBecomeJsonSchema) {
  Manifest m = parse_ok(with_minimal(R"(
tools:
  - name: search
    description: Search files
    parameters:
      - name: query
        type: string
        required: true
        description: what to look for
      - name: limit
        type: int
        default: 10
      - name: ratio
        type: float
        default: 0.5
      - name: exact
        type: bool
        default: false
      - name: options
        type: dict
      - name: paths
        type: list
        items: string
      - name: mode
        type: string
        enum: [fast, thorough]
        default: fast
      - name: anything
        type: any
        default: "42"
)"));
  ASSERT_EQ(m.tools.size(), 1u);
  EXPECT_EQ(m.tools[0].parameters, Json::parse(R"({
    "type": "object",
    "properties": {
      "query": {"type": "string", "description": "what to look for"},
      "limit": {"type": "integer", "default": 10},
      "ratio": {"type": "number", "default": 0.5},
      "exact": {"type": "boolean", "default": false},
      "options": {"type": "object"},
      "paths": {"type": "array", "items": {"type": "string"}},
      "mode": {"type": "string", "enum": ["fast", "thorough"], "default": "fast"},
      "anything": {"default": "42"}},
    "required": ["query"]})"));
  EXPECT_EQ(m.find_tool("search"), &m.tools[0]);
  EXPECT_EQ(m.find_tool("nope"), nullptr);
}

TEST(ManifestTest, ToolWithoutParametersTakesAnEmptyObject) {
  Manifest m = parse_ok(with_minimal("tools:\n  - name: ping\n"));
  ASSERT_EQ(m.tools.size(), 1u);
  EXPECT_EQ(m.tools[0].parameters,
            Json::parse(R"({"type": "object", "properties": {}, "required": []})"));
}

TEST(ManifestTest, JsonSchemaParametersAreKept) {
  Manifest m = parse_ok(with_minimal(R"(
tools:
  - name: read_file
    description: Read a file
    parameters:
      type: object
      properties:
        path: {type: string, minLength: 1}
        encoding: {type: [string, "null"]}
      required: [path]
      additionalProperties: false
  - name: no_type_given
    parameters:
      properties:
        n: {type: integer}
)"));
  ASSERT_EQ(m.tools.size(), 2u);
  EXPECT_EQ(m.tools[0].parameters, Json::parse(R"({
    "type": "object",
    "properties": {"path": {"type": "string", "minLength": 1},
                   "encoding": {"type": ["string", "null"]}},
    "required": ["path"],
    "additionalProperties": false})"));
  EXPECT_EQ(m.tools[1].parameters, Json::parse(R"({
    "type": "object", "properties": {"n": {"type": "integer"}}, "required": []})"));
}

TEST(ManifestTest, ToolErrorsNameTheField) {
  std::string e = parse_error(with_minimal(R"(tools:
  - name: ok_tool
  - name: second
    parameters:
      - name: a
        type: string
      - name: b
        type: text
)"));
  EXPECT_EQ(e,
            "modules/x/manifest.yaml:11:15: tools[1].parameters[1].type: \"text\" is not a "
            "parameter type; expected one of: string, int/integer, float/number, bool/boolean, "
            "dict/object, list/array, any");

  EXPECT_THAT(parse_error(with_minimal("tools:\n  - name: a b\n")),
              HasSubstr("tools[0].name: \"a b\" is not a valid tool name"));
  EXPECT_THAT(parse_error(with_minimal("tools:\n  - name: t\n  - name: t\n")),
              HasSubstr("tools[1].name: another tool is already called \"t\""));
  EXPECT_THAT(parse_error(with_minimal("tools:\n  - description: x\n")),
              HasSubstr("tools[0]: \"name\" is required"));
  EXPECT_THAT(parse_error(with_minimal("tools:\n  - name: t\n    parameters: [{name: p}]\n")),
              HasSubstr("tools[0].parameters[0]: \"type\" is required"));
  EXPECT_THAT(
      parse_error(with_minimal(
          "tools:\n  - name: t\n    parameters: [{name: p, type: int, default: many}]\n")),
      HasSubstr("tools[0].parameters[0].default: the default is a string (\"many\"), but the "
                "type is integer"));
  EXPECT_THAT(
      parse_error(with_minimal(
          "tools:\n  - name: t\n    parameters: [{name: p, type: string, required: yes}]\n")),
      HasSubstr("tools[0].parameters[0].required: expected true or false"));
  EXPECT_THAT(parse_error(with_minimal("tools:\n  - name: t\n    parameters: [{name: p, type: "
                                       "string}, {name: p, type: int}]\n")),
              HasSubstr("tools[0].parameters[1].name: another parameter is already called \"p\""));
  EXPECT_THAT(parse_error(with_minimal(
                  "tools:\n  - name: t\n    parameters: [{name: p, type: string, items: int}]\n")),
              HasSubstr("tools[0].parameters[0].items: only a parameter of type list/array"));
  EXPECT_THAT(parse_error(with_minimal("tools:\n  - name: t\n    parameters: \"code\"\n")),
              HasSubstr("tools[0].parameters: expected a list of parameters"));
  EXPECT_THAT(parse_error(with_minimal("tools:\n  - name: t\n    parameters: {code: string}\n")),
              HasSubstr("or a JSON Schema object"));
  EXPECT_THAT(parse_error(with_minimal("tools:\n  - name: t\n    parameters: {type: string}\n")),
              HasSubstr("tools[0].parameters.type: must be \"object\""));
  EXPECT_THAT(
      parse_error(with_minimal("tools:\n  - name: t\n    parameters:\n      properties: {a: "
                               "{type: string}}\n      required: [b]\n")),
      HasSubstr("tools[0].parameters.required[0]: \"b\" is not one of the declared properties"));
  EXPECT_THAT(parse_error(with_minimal("tools:\n  - name: t\n    parameters:\n      properties: "
                                       "{a: {type: dict}}\n")),
              HasSubstr("tools[0].parameters.properties.a.type: \"dict\" is not a JSON Schema "
                        "type (did you mean \"object\"?)"));
  EXPECT_THAT(parse_error(with_minimal("tools:\n  - name: t\n    paramters: []\n")),
              HasSubstr("tools[0].paramters: unknown field (did you mean \"parameters\"?)"));
}

// ---------------------------------------------------------------------------
// Config

TEST(ManifestTest, ConfigDefaultsInferASchema) {
  Manifest m = parse_ok(with_minimal(R"(
config_schema:
  name: "lotus"
  retries: 3
  quoted_bool: "true"
  hex: 0x1F
  nothing: ~
  mixed: [1, "a"]
  nested: {depth: 2, on: true}
  type: plain   # a defaults map may have a key called type
)"));
  EXPECT_EQ(m.config_defaults, Json::parse(R"({
    "name": "lotus", "retries": 3, "quoted_bool": "true", "hex": 31, "nothing": null,
    "mixed": [1, "a"], "nested": {"depth": 2, "on": true}, "type": "plain"})"));
  EXPECT_EQ(m.config_schema, Json::parse(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "default": "lotus"},
      "retries": {"type": "integer", "default": 3},
      "quoted_bool": {"type": "string", "default": "true"},
      "hex": {"type": "integer", "default": 31},
      "nothing": {"default": null},
      "mixed": {"type": "array", "default": [1, "a"]},
      "nested": {"type": "object",
                 "properties": {"depth": {"type": "integer", "default": 2},
                                "on": {"type": "boolean", "default": true}},
                 "default": {"depth": 2, "on": true}},
      "type": {"type": "string", "default": "plain"}}})"));
}

TEST(ManifestTest, ConfigJsonSchemaIsKeptAndItsDefaultsCollected) {
  Manifest m = parse_ok(with_minimal(R"(
config_schema:
  type: object
  properties:
    interval: {type: number, default: 2.5, minimum: 0}
    token: {type: string}
    limits:
      type: object
      properties:
        max: {type: integer, default: 100}
  required: [token]
)"));
  EXPECT_EQ(m.config_schema["properties"]["interval"]["minimum"], 0);
  EXPECT_EQ(m.config_schema["required"], Json::parse(R"(["token"])"));
  EXPECT_EQ(m.config_defaults, Json::parse(R"({"interval": 2.5, "limits": {"max": 100}})"));

  Manifest by_properties = parse_ok(with_minimal(R"(
config_schema:
  properties:
    level: {type: string, default: info}
)"));
  EXPECT_EQ(by_properties.config_schema["type"], "object");
  EXPECT_EQ(by_properties.config_defaults, Json::parse(R"({"level": "info"})"));
}

TEST(ManifestTest, ConfigErrors) {
  EXPECT_THAT(parse_error(with_minimal("config_schema: [1, 2]\n")),
              HasSubstr("config_schema: expected a mapping"));
  EXPECT_THAT(
      parse_error(with_minimal(
          "config_schema:\n  type: object\n  properties:\n    n: {type: integer, default: x}\n")),
      HasSubstr("config_schema.properties.n.default: the default is a string (\"x\"), but the "
                "type is \"integer\""));
  EXPECT_THAT(parse_error(with_minimal(
                  "config_schema:\n  type: object\n  properties:\n    n: {type: float}\n")),
              HasSubstr("\"float\" is not a JSON Schema type (did you mean \"number\"?)"));
}

// ---------------------------------------------------------------------------
// Other sections

TEST(ManifestTest, DependencyForms) {
  Manifest m = parse_ok(with_minimal(R"(
dependencies:
  modules: ["memory>=1.0", "providers", "bus ^2", {name: reasoning, version: "~1.2"}]
  system: ["python>=3.11", "node >= 18, < 23", "tree-sitter"]
)"));
  ASSERT_EQ(m.dependencies.modules.size(), 4u);
  EXPECT_EQ(m.dependencies.modules[0].name, "memory");
  EXPECT_EQ(m.dependencies.modules[0].constraint.text(), ">=1.0");
  EXPECT_TRUE(m.dependencies.modules[1].constraint.any());
  EXPECT_EQ(m.dependencies.modules[2].to_string(), "bus^2");
  EXPECT_EQ(m.dependencies.modules[3].to_string(), "reasoning~1.2");
  ASSERT_EQ(m.dependencies.system.size(), 3u);
  EXPECT_EQ(m.dependencies.system[1].name, "node");
  EXPECT_EQ(m.dependencies.system[1].constraint.text(), ">=18,<23");
  EXPECT_EQ(m.dependencies.system[2].name, "tree-sitter");

  EXPECT_THAT(parse_error(with_minimal("dependencies:\n  modules: [\"Memory\"]\n")),
              HasSubstr("dependencies.modules[0]: \"Memory\" is not a valid module name"));
  EXPECT_THAT(parse_error(with_minimal("dependencies:\n  modules: [\"memory>=one\"]\n")),
              HasSubstr("dependencies.modules[0]: bad version requirement \">=one\""));
  EXPECT_THAT(parse_error(with_minimal("dependencies:\n  modules: [memory, memory]\n")),
              HasSubstr("dependencies.modules[1]: \"memory\" is listed more than once"));
  EXPECT_THAT(parse_error(with_minimal("dependencies:\n  modules: memory\n")),
              HasSubstr("dependencies.modules: expected a list, got a string (\"memory\")"));
  EXPECT_THAT(parse_error(with_minimal("dependencies:\n  module: [memory]\n")),
              HasSubstr("dependencies.module: unknown field (did you mean \"modules\"?)"));
}

TEST(ManifestTest, SubscriptionFilters) {
  Manifest m = parse_ok(with_minimal(R"(
subscriptions:
  - pattern: "perception.**"
    handler: on_any
    filter: {kind: "file", size: 3}
)"));
  ASSERT_EQ(m.subscriptions.size(), 1u);
  EXPECT_EQ(m.subscriptions[0].filter.spec(), Json::parse(R"({"kind": "file", "size": 3})"));
  EXPECT_TRUE(m.subscriptions[0].filter.matches(Json::parse(R"({"kind": "file", "size": 3})")));

  EXPECT_THAT(parse_error(with_minimal(
                  "subscriptions:\n  - pattern: a.b\n    handler: h\n    filter: [1]\n")),
              HasSubstr("subscriptions[0].filter: subscription filter must be"));
  EXPECT_THAT(parse_error(with_minimal("subscriptions:\n  - pattern: a.b\n")),
              HasSubstr("subscriptions[0]: \"handler\" is required"));
  EXPECT_THAT(parse_error(with_minimal("subscriptions:\n  - pattern: a.b\n    handler: 1st\n")),
              HasSubstr("subscriptions[0].handler: \"1st\" is not a valid handler name"));
}

TEST(ManifestTest, RuntimeForms) {
  EXPECT_EQ(parse_ok(with_minimal("runtime: lua\n")).runtime.kind, Manifest::Runtime::Kind::kLua);
  Manifest native = parse_ok(with_minimal("runtime: {kind: native, library: lib/./libx.so}\n"));
  EXPECT_EQ(native.runtime.kind, Manifest::Runtime::Kind::kNative);
  EXPECT_EQ(native.runtime.library, std::filesystem::path("lib/libx.so"));
  Manifest lua = parse_ok(with_minimal("runtime:\n  kind: lua\n  entry: main.lua\n"));
  EXPECT_EQ(lua.runtime.entry, std::filesystem::path("main.lua"));
  EXPECT_EQ(to_string(lua.runtime.kind), "lua");

  EXPECT_THAT(parse_error(with_minimal("runtime: python\n")),
              HasSubstr("runtime: \"python\" is not a runtime; expected native or lua"));
  EXPECT_THAT(parse_error(with_minimal("runtime: {kind: lua, library: x.so}\n")),
              HasSubstr("runtime.library: only a native module has a library"));
  EXPECT_THAT(parse_error(with_minimal("runtime: {library: /usr/lib/x.so}\n")),
              HasSubstr("runtime.library: \"/usr/lib/x.so\" must be a path inside the module's"));
  EXPECT_THAT(parse_error(with_minimal("runtime: {kind: lua, entry: ../../x.lua}\n")),
              HasSubstr("runtime.entry: \"../../x.lua\" must be a path inside"));
}

TEST(ManifestTest, Mailbox) {
  Manifest m = parse_ok(with_minimal("mailbox: {capacity: 16, overflow: drop_oldest}\n"));
  EXPECT_EQ(m.mailbox.capacity, 16u);
  EXPECT_EQ(m.mailbox.overflow, "drop_oldest");
  EXPECT_THAT(parse_error(with_minimal("mailbox: {capacity: 0}\n")),
              HasSubstr("mailbox.capacity: must be greater than 0, got 0"));
  EXPECT_THAT(parse_error(with_minimal("mailbox: {capacity: lots}\n")),
              HasSubstr("mailbox.capacity: expected a whole number, got a string (\"lots\")"));
  EXPECT_THAT(parse_error(with_minimal("mailbox: {overflow: drop}\n")),
              HasSubstr("mailbox.overflow: \"drop\" is not an overflow policy"));
}

TEST(ManifestTest, PermissionsAndPublications) {
  Manifest m = parse_ok(with_minimal(R"(
permissions: [file.read, "network.*"]
publications: [action.reply, "memory.*"]
)"));
  EXPECT_TRUE(m.has_permission("file.read"));
  EXPECT_FALSE(m.has_permission("file.write"));
  EXPECT_TRUE(m.has_permission("network.http"));
  EXPECT_FALSE(m.has_permission("network"));
  EXPECT_TRUE(m.may_publish("action.reply"));
  EXPECT_TRUE(m.may_publish("memory.store_pattern"));
  EXPECT_FALSE(m.may_publish("action.other"));

  EXPECT_THAT(parse_error(with_minimal("permissions: [\"File Read\"]\n")),
              HasSubstr("permissions[0]: \"File Read\" is not a permission"));
  EXPECT_THAT(parse_error(with_minimal("publications: [\"action..x\"]\n")),
              HasSubstr("publications[0]: pattern \"action..x\": segment 2 is empty"));
}

// ---------------------------------------------------------------------------
// Errors in general

TEST(ManifestTest, BadNameVersionTypePriority) {
  EXPECT_EQ(parse_error("name: Code-Assistant\nversion: 1.0.0\ntype: core\n"),
            "modules/x/manifest.yaml:1:7: name: \"Code-Assistant\" is not a valid module name; "
            "use up to 64 lowercase letters, digits and underscores, starting with a letter");
  EXPECT_EQ(parse_error("name: a\nversion: 1.0\ntype: core\n"),
            "modules/x/manifest.yaml:2:10: version: \"1.0\" is not a semantic version "
            "(MAJOR.MINOR.PATCH such as \"1.2.0\", optionally with a pre-release such as "
            "\"1.2.0-beta.1\")");
  EXPECT_EQ(parse_error("name: a\nversion: 1.0.0\ntype: plugin\n"),
            "modules/x/manifest.yaml:3:7: type: \"plugin\" is not a module type; expected core, "
            "capability or integration");
  EXPECT_THAT(parse_error(with_minimal("priority: urgent\n")),
              HasSubstr("modules/x/manifest.yaml:4:11: priority: \"urgent\" is not a priority"));
}

TEST(ManifestTest, BadSubscriptionPatternHasLineAndColumn) {
  std::string e = parse_error(with_minimal(R"(subscriptions:
  - pattern: "cognition.code_request"
    handler: ok
  - pattern: "perception.*.py*"
    handler: on_file
)"));
  EXPECT_THAT(e, HasSubstr("modules/x/manifest.yaml:7:14: subscriptions[1].pattern: pattern "
                           "\"perception.*.py*\""));
  EXPECT_THAT(e, HasSubstr("contains '*'"));
}

TEST(ManifestTest, UnknownTopLevelFieldListsKnownOnes) {
  std::string e = parse_error(with_minimal("hotlaod: true\n"));
  EXPECT_THAT(e, HasSubstr("modules/x/manifest.yaml:4:1: hotlaod: unknown field (did you mean "
                           "\"hotload\"?); known fields: name, version, type,"));
  EXPECT_THAT(e, HasSubstr("permissions, runtime, mailbox"));
  EXPECT_THAT(parse_error(with_minimal("colour: red\n")), Not(HasSubstr("did you mean")));
}

TEST(ManifestTest, WrongTypeForAField) {
  EXPECT_THAT(parse_error(with_minimal("hotload: \"yes\"\n")),
              HasSubstr("hotload: expected true or false, got a string (\"yes\")"));
  EXPECT_THAT(parse_error(with_minimal("hotload: yes\n")),
              HasSubstr("hotload: expected true or false"));
  EXPECT_THAT(parse_error(with_minimal("capabilities: {a: 1}\n")),
              HasSubstr("capabilities: expected a list, got a mapping"));
  EXPECT_THAT(parse_error(with_minimal("tools: analyze\n")),
              HasSubstr("tools: expected a list, got a string (\"analyze\")"));
  EXPECT_THAT(parse_error(with_minimal("providers: [a]\n")),
              HasSubstr("providers: expected a mapping with keys primary, fallback, delegation, "
                        "got a list"));
  EXPECT_THAT(parse_error(with_minimal("author: [a, b]\n")),
              HasSubstr("author: expected a string, got a list"));
  EXPECT_THAT(parse_error(with_minimal("memory:\n  state_keys: [a, [b]]\n")),
              HasSubstr("memory.state_keys[1]: expected a string, got a list"));
  EXPECT_THAT(parse_error("- just\n- a list\n"), HasSubstr("a manifest is a mapping of fields"));
}

TEST(ManifestTest, MissingRequiredFields) {
  std::string e = parse_error("author: me\n");
  EXPECT_THAT(e, HasSubstr("modules/x/manifest.yaml:1:1: name: is required"));
  EXPECT_THAT(e, HasSubstr("version: is required"));
  EXPECT_THAT(e, HasSubstr("type: is required"));
  EXPECT_THAT(parse_error("name:\nversion: 1.0.0\ntype: core\n"), HasSubstr("name: is required"));
}

TEST(ManifestTest, YamlSyntaxErrorHasLine) {
  EXPECT_EQ(parse_error("name: a\nversion: 1.0.0\ntools: [a, b\ntype: core\n"),
            "modules/x/manifest.yaml:4:5: YAML syntax error: end of sequence flow not found");
  EXPECT_THAT(parse_error("name: a\n  version: 1\n"),
              HasSubstr("modules/x/manifest.yaml:2:10: YAML syntax error:"));
  // yaml-cpp 0.7's LoadAll would loop forever on these (jbeder/yaml-cpp#1040).
  EXPECT_EQ(parse_error(",name: a\n"),
            "modules/x/manifest.yaml:1:1: YAML syntax error: unexpected \",\"");
  EXPECT_THAT(parse_error("# comment\n,\n"),
              HasSubstr("modules/x/manifest.yaml:2:1: YAML syntax error: unexpected \",\""));
  EXPECT_THAT(parse_error(with_minimal("---\n,\n")), HasSubstr("YAML syntax error"));
  EXPECT_THAT(parse_error(""), HasSubstr("modules/x/manifest.yaml: the manifest is empty"));
  EXPECT_THAT(parse_error("# only a comment\n"), HasSubstr("the manifest is empty"));
}

TEST(ManifestTest, DuplicateKeysAndSeveralDocuments) {
  EXPECT_THAT(parse_error(with_minimal("name: again\n")),
              HasSubstr("modules/x/manifest.yaml:4:1: name: appears more than once"));
  EXPECT_THAT(parse_error(with_minimal("---\nname: b\n")), HasSubstr("several"));
}

TEST(ManifestTest, ReportsEveryProblemAtOnce) {
  std::string e = parse_error("name: Bad\nversion: x\ntype: core\nhotload: 3\n");
  EXPECT_THAT(e, HasSubstr("1:7: name:"));
  EXPECT_THAT(e, HasSubstr("\nmodules/x/manifest.yaml:2:10: version:"));
  EXPECT_THAT(e, HasSubstr("\nmodules/x/manifest.yaml:4:10: hotload:"));
}

TEST(ManifestTest, HostileTextIsEscapedAndInvalidUtf8Refused) {
  EXPECT_THAT(parse_error("name: \"a\\x1b[31mb\"\nversion: 1.0.0\ntype: core\n"),
              HasSubstr("name: \"a\\x1b[31mb\" is not a valid module name"));
  EXPECT_EQ(parse_error(with_minimal("author: \"caf\xc3\"\n")),
            "modules/x/manifest.yaml:4:13: the manifest is not valid UTF-8");
  EXPECT_EQ(parse_ok(with_minimal("author: \"caf\xc3\xa9 \xf0\x9f\x8c\xb8\"\n")).author,
            "caf\xc3\xa9 \xf0\x9f\x8c\xb8");
}

TEST(ManifestTest, AliasBombIsRefused) {
  std::string text = with_minimal("config_schema:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
  for (int i = 1; i < 9; ++i) {
    text += "  a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) text += (j ? ", *a" : "*a") + std::to_string(i - 1);
    text += "]\n";
  }
  EXPECT_THAT(parse_error(text), HasSubstr("config_schema: too large or too deeply nested"));
}

TEST(ManifestTest, LoadManifestFromDiskReportsFileAndLine) {
  Result<Manifest> bad = load_manifest(kFixtures / "bad_version" / "manifest.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(),
              HasSubstr("bad_version/manifest.yaml:4:10: version: \"one\" is not a semantic "
                        "version"));

  Result<Manifest> missing = load_manifest(kFixtures / "does_not_exist" / "manifest.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("does_not_exist/manifest.yaml"));

  for (const char* name : {"cycle_a", "cycle_b", "needs_missing"}) {
    Result<Manifest> m = load_manifest(kFixtures / name / "manifest.yaml");
    EXPECT_TRUE(m.ok()) << m.status();
  }
}

// ---------------------------------------------------------------------------
// Versions

TEST(SemVerTest, ParsesAndOrders) {
  auto v = [](std::string_view s) {
    Result<SemVer> r = SemVer::parse(s);
    EXPECT_TRUE(r.ok()) << s;
    return r.ok() ? *r : SemVer{};
  };
  EXPECT_EQ(v("1.2.3").minor, 2u);
  for (const char* bad :
       {"1", "1.2", "01.2.3", "1.2.3.4", "v1.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "a.b.c", ""}) {
    EXPECT_FALSE(SemVer::parse(bad).ok()) << bad;
  }
  // semver.org precedence example.
  EXPECT_LT(v("1.0.0-alpha"), v("1.0.0-alpha.1"));
  EXPECT_LT(v("1.0.0-alpha.1"), v("1.0.0-alpha.beta"));
  EXPECT_LT(v("1.0.0-alpha.beta"), v("1.0.0-beta"));
  EXPECT_LT(v("1.0.0-beta"), v("1.0.0-beta.2"));
  EXPECT_LT(v("1.0.0-beta.2"), v("1.0.0-beta.11"));
  EXPECT_LT(v("1.0.0-beta.11"), v("1.0.0-rc.1"));
  EXPECT_LT(v("1.0.0-rc.1"), v("1.0.0"));
  EXPECT_LT(v("1.9.0"), v("1.10.0"));
  EXPECT_EQ(v("1.0.0+a"), v("1.0.0+b"));
}

TEST(VersionConstraintTest, Operators) {
  auto allows = [](std::string_view constraint, std::string_view version) {
    Result<VersionConstraint> c = VersionConstraint::parse(constraint);
    Result<SemVer> v = SemVer::parse(version);
    EXPECT_TRUE(c.ok()) << constraint << ": " << c.status();
    EXPECT_TRUE(v.ok()) << version;
    return c.ok() && v.ok() && c->allows(*v);
  };
  EXPECT_TRUE(allows("", "0.0.1"));
  EXPECT_TRUE(allows("*", "9.9.9"));
  EXPECT_TRUE(allows(">=1.0", "1.0.0"));
  EXPECT_FALSE(allows(">=1.0", "0.9.9"));
  EXPECT_TRUE(allows(">1.0", "1.0.1"));
  EXPECT_FALSE(allows(">1.0", "1.0.0"));
  EXPECT_TRUE(allows("=1.2", "1.2.0"));
  EXPECT_TRUE(allows("==1.2.0", "1.2.0"));
  EXPECT_FALSE(allows("==1.2", "1.2.1"));
  EXPECT_TRUE(allows("1.2.0", "1.2.0"));
  EXPECT_FALSE(allows("!=1.2.0", "1.2.0"));
  EXPECT_TRUE(allows("<2", "1.99.0"));
  EXPECT_FALSE(allows("<2", "2.0.0"));
  EXPECT_TRUE(allows("<=2", "2.0.0"));
  EXPECT_TRUE(allows("^1.2", "1.9.0"));
  EXPECT_FALSE(allows("^1.2", "2.0.0"));
  EXPECT_FALSE(allows("^1.2", "2.0.0-beta"));
  EXPECT_FALSE(allows("^1.2", "1.1.9"));
  EXPECT_TRUE(allows("^0.2.3", "0.2.9"));
  EXPECT_FALSE(allows("^0.2.3", "0.3.0"));
  EXPECT_FALSE(allows("^0.0.3", "0.0.4"));
  EXPECT_TRUE(allows("~1.2", "1.2.7"));
  EXPECT_FALSE(allows("~1.2", "1.3.0"));
  EXPECT_TRUE(allows("~1", "1.9.0"));
  EXPECT_TRUE(allows("~=1.4", "1.9.0"));
  EXPECT_FALSE(allows("~=1.4.2", "1.5.0"));
  EXPECT_TRUE(allows(">=1.0, <2", "1.5.0"));
  EXPECT_FALSE(allows(">=1.0, <2", "2.1.0"));
  EXPECT_TRUE(allows(">=3.11", "3.11.4"));

  for (const char* bad : {">=", ">=x", ">=1.0,", "=>1.0", "~=1", ">=1.2.3.4"}) {
    EXPECT_FALSE(VersionConstraint::parse(bad).ok()) << bad;
  }
  EXPECT_EQ(VersionConstraint::parse(" >= 1.0 , < 2 ")->text(), ">=1.0,<2");
  EXPECT_EQ(VersionConstraint::parse("1.2")->text(), "==1.2");
}

TEST(ManifestEnumsTest, NamesAndRanks) {
  EXPECT_EQ(to_string(ModuleType::kIntegration), "integration");
  EXPECT_EQ(to_string(ModulePriority::kLow), "low");
  EXPECT_LT(priority_rank(ModulePriority::kCritical), priority_rank(ModulePriority::kHigh));
  EXPECT_LT(priority_rank(ModulePriority::kHigh), priority_rank(ModulePriority::kNormal));
  EXPECT_LT(priority_rank(ModulePriority::kNormal), priority_rank(ModulePriority::kLow));
}

}  // namespace
}  // namespace lotus

namespace lotus {
namespace {

TEST(ManifestToolPermissionsTest, ToolsNarrowTheModulesPermissions) {
  Manifest m = parse_ok(with_minimal(R"(permissions: [file.read, file.write]
tools:
  - name: read
    permissions: [file.read]
  - name: write
)"));
  ASSERT_EQ(m.tools.size(), 2u);
  EXPECT_EQ(m.tools[0].permissions, std::vector<std::string>{"file.read"});
  EXPECT_TRUE(m.tools[0].has_own_permissions);
  // Without a list of its own a tool needs everything its module may do.
  EXPECT_EQ(m.tools[1].permissions, (std::vector<std::string>{"file.read", "file.write"}));
  EXPECT_FALSE(m.tools[1].has_own_permissions);
}

TEST(ManifestToolPermissionsTest, AToolCannotWidenThem) {
  EXPECT_THAT(parse_error(with_minimal(R"(permissions: [file.read]
tools:
  - name: run
    permissions: [process.exec]
)")),
              HasSubstr("tools[0].permissions: \"process.exec\" is not among the module's "
                        "permissions"));
  // A family grant covers its members.
  Manifest m = parse_ok(with_minimal(
      "permissions: [\"file.*\"]\ntools:\n  - name: w\n    permissions: [file.write]\n"));
  EXPECT_EQ(m.tools[0].permissions, std::vector<std::string>{"file.write"});
}

}  // namespace
}  // namespace lotus
