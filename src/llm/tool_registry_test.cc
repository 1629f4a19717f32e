#include "llm/tool_registry.h"

#include <gtest/gtest.h>

#include "llm/tool_policy.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

Manifest fs_manifest() {
  auto m = parse_manifest(R"(name: fs
version: 1.0.0
type: core
permissions: [file.read, file.write]
tools:
  - name: read
    description: Read a file
    permissions: [file.read]
    parameters:
      type: object
      properties: {path: {type: string}}
      required: [path]
  - name: write
    description: Write a file
    parameters:
      - {name: path, type: string, required: true}
      - {name: content, type: string, required: true}
)",
                          "fs/manifest.yaml");
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

TEST(ToolRiskTest, FollowsThePermissions) {
  EXPECT_EQ(risk_of({}), ToolRisk::kLow);
  EXPECT_EQ(risk_of({"file.read"}), ToolRisk::kLow);
  EXPECT_EQ(risk_of({"memory.recall"}), ToolRisk::kLow);
  EXPECT_EQ(risk_of({"network.http"}), ToolRisk::kMedium);
  EXPECT_EQ(risk_of({"something.new"}), ToolRisk::kMedium);
  EXPECT_EQ(risk_of({"file.read", "file.write"}), ToolRisk::kHigh);
  EXPECT_EQ(risk_of({"process.exec"}), ToolRisk::kHigh);
  EXPECT_EQ(risk_of({"computer.mouse"}), ToolRisk::kHigh);
  EXPECT_EQ(risk_of({"file.*"}), ToolRisk::kHigh);
  // A family name is matched as a whole segment.
  EXPECT_EQ(risk_of({"processing.read"}), ToolRisk::kMedium);
}

TEST(ToolRegistryTest, ListsToolsWithSchemaAndRisk) {
  ToolRegistry registry;
  uint64_t before = registry.version();
  registry.add_module(fs_manifest());
  EXPECT_GT(registry.version(), before);

  auto list = registry.list();
  ASSERT_EQ(list->size(), 2u);
  const ToolEntry& read = *(*list)[0];
  EXPECT_EQ(read.qualified, "fs.read");
  EXPECT_EQ(read.model_name, "fs__read");
  EXPECT_EQ(read.channel, "tool.fs.read");
  EXPECT_EQ(read.risk, ToolRisk::kLow);
  ASSERT_NE(read.schema, nullptr);
  EXPECT_FALSE(read.schema->validate(Json::object()).ok());
  EXPECT_TRUE(read.schema->validate(Json{{"path", "x"}}).ok());
  EXPECT_EQ((*list)[1]->risk, ToolRisk::kHigh);  // write: both of the module's permissions

  EXPECT_EQ(registry.find("fs.write"), (*list)[1]);
  EXPECT_EQ(registry.find("fs__write"), (*list)[1]);
  EXPECT_EQ(registry.find("fs.delete"), nullptr);
}

TEST(ToolRegistryTest, ReplacingAndRemovingAModuleUpdatesTheList) {
  ToolRegistry registry;
  registry.add_module(fs_manifest());
  auto old_list = registry.list();

  Manifest smaller = fs_manifest();
  smaller.tools.pop_back();
  registry.add_module(smaller);
  EXPECT_EQ(registry.list()->size(), 1u);
  EXPECT_EQ(registry.find("fs__write"), nullptr);
  EXPECT_EQ(old_list->size(), 2u);  // a snapshot handed out earlier stays intact

  uint64_t version = registry.version();
  EXPECT_TRUE(registry.remove_module("fs"));
  EXPECT_GT(registry.version(), version);
  EXPECT_TRUE(registry.list()->empty());
  EXPECT_FALSE(registry.remove_module("fs"));
}

TEST(ToolRegistryTest, ABadSchemaIsKeptWithItsReason) {
  Manifest m = fs_manifest();
  m.tools[0].parameters = Json{{"type", "object"}, {"required", "path"}};
  ToolRegistry registry;
  registry.add_module(m);
  auto read = registry.find("fs.read");
  ASSERT_NE(read, nullptr);
  EXPECT_EQ(read->schema, nullptr);
  EXPECT_FALSE(read->schema_error.empty());
}

Manifest bare_manifest(const char* name, const char* tool) {
  auto m = parse_manifest(cat("name: ", name, R"(
version: 1.0.0
type: integration
mcp: {tool_names: bare}
tools:
  - name: )",
                              tool, "\n  - name: other_", name, "\n"),
                          cat(name, "/manifest.yaml"));
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

TEST(ToolRegistryTest, BareMcpNamesUnlessAnotherToolHasTheName) {
  ToolRegistry registry;
  EXPECT_TRUE(registry.add_module(fs_manifest()).empty());
  EXPECT_EQ(registry.find("fs.read")->mcp_name, "fs__read");  // not asked for: qualified

  EXPECT_TRUE(registry.add_module(bare_manifest("kit", "ping")).empty());
  auto ping = registry.find("ping");
  ASSERT_NE(ping, nullptr);
  EXPECT_EQ(ping->qualified, "kit.ping");
  EXPECT_EQ(ping->mcp_name, "ping");
  EXPECT_EQ(registry.find("kit__ping"), ping);

  // A second module wanting the same bare name keeps module__tool, and says so.
  std::vector<std::string> warnings = registry.add_module(bare_manifest("box", "ping"));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("box/manifest.yaml"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("kit.ping already has it"), std::string::npos) << warnings[0];
  EXPECT_EQ(registry.find("box.ping")->mcp_name, "box__ping");
  EXPECT_EQ(registry.find("other_box")->mcp_name, "other_box");
  EXPECT_EQ(registry.find("ping"), ping);

  // Reloading the module keeps its names; removing it frees them.
  EXPECT_TRUE(registry.add_module(bare_manifest("kit", "ping")).empty());
  EXPECT_EQ(registry.find("ping")->qualified, "kit.ping");
  EXPECT_TRUE(registry.remove_module("kit"));
  EXPECT_EQ(registry.find("ping"), nullptr);
  EXPECT_EQ(registry.find("kit__ping"), nullptr);
  EXPECT_NE(registry.find("other_box"), nullptr);
}

TEST(ToolPolicyTest, DefaultsFollowRisk) {
  ToolRegistry registry;
  registry.add_module(fs_manifest());
  ToolPolicy policy;
  EXPECT_EQ(policy.decide(*registry.find("fs.read")).decision, ToolDecision::kAllow);
  PolicyVerdict write = policy.decide(*registry.find("fs.write"));
  EXPECT_EQ(write.decision, ToolDecision::kAsk);
  EXPECT_EQ(write.because, "risk high");
}

TEST(ToolRegistryTest, HoldsOtherNodesToolsBesideItsOwn) {
  ToolRegistry local;
  local.add_module(fs_manifest());
  Json announced = local.local_tools_json();
  ASSERT_EQ(announced.size(), 2u);

  ToolRegistry registry;
  uint64_t before = registry.version();
  EXPECT_TRUE(registry.set_node_tools("node-b", announced));
  EXPECT_GT(registry.version(), before);
  auto read = registry.find("fs__read");
  ASSERT_NE(read, nullptr);
  EXPECT_EQ(read->node, "node-b");
  EXPECT_EQ(read->channel, "tool.fs.read");
  EXPECT_EQ(read->risk, ToolRisk::kLow);
  EXPECT_EQ(registry.find("fs.write")->risk, ToolRisk::kHigh);
  ASSERT_NE(read->schema, nullptr);
  EXPECT_FALSE(read->schema->validate(Json{{"path", 3}}).ok());
  EXPECT_EQ(registry.list()->size(), 2u);
  EXPECT_TRUE(registry.local_tools_json().empty());  // not announced onwards

  // The same announcement again changes nothing.
  uint64_t version = registry.version();
  EXPECT_FALSE(registry.set_node_tools("node-b", announced));
  EXPECT_EQ(registry.version(), version);

  // A second node with the same module: listed once; a local module of
  // that name wins over both.
  EXPECT_TRUE(registry.set_node_tools("node-c", announced));
  EXPECT_EQ(registry.list()->size(), 2u);
  registry.add_module(fs_manifest());
  EXPECT_EQ(registry.list()->size(), 2u);
  EXPECT_TRUE(registry.find("fs.read")->node.empty());
  registry.remove_module("fs");
  EXPECT_EQ(registry.find("fs.read")->node, "node-b");

  EXPECT_TRUE(registry.remove_node("node-b"));
  EXPECT_EQ(registry.find("fs.read")->node, "node-c");
  EXPECT_TRUE(registry.set_node_tools("node-c", Json::array()));
  EXPECT_EQ(registry.find("fs.read"), nullptr);
  EXPECT_TRUE(registry.list()->empty());
  EXPECT_FALSE(registry.remove_node("node-c"));
}

TEST(ToolRegistryTest, OtherNodesBareMcpNamesHoldHereTooUnlessTaken) {
  ToolRegistry there;
  EXPECT_TRUE(there.add_module(bare_manifest("kit", "ping")).empty());
  Json announced = there.local_tools_json();
  ASSERT_EQ(announced.size(), 2u);
  EXPECT_EQ(announced[0]["mcp_name"], "ping");

  ToolRegistry registry;
  EXPECT_TRUE(registry.set_node_tools("node-b", announced));
  auto ping = registry.find("ping");
  ASSERT_NE(ping, nullptr);
  EXPECT_EQ(ping->qualified, "kit.ping");
  EXPECT_EQ(ping->mcp_name, "ping");
  EXPECT_EQ(ping->node, "node-b");

  // The same module here as well: its bare name is no clash with itself.
  EXPECT_TRUE(registry.add_module(bare_manifest("kit", "ping")).empty());
  EXPECT_TRUE(registry.find("ping")->node.empty());
  EXPECT_TRUE(registry.remove_module("kit"));
  EXPECT_EQ(registry.find("ping")->node, "node-b");

  // A different local tool with that name: the remote one keeps
  // module__tool while it is here, and gets its bare name back after.
  registry.add_module(bare_manifest("box", "ping"));  // (warns: node-b's kit.ping has it)
  EXPECT_EQ(registry.find("ping")->qualified, "kit.ping");
  EXPECT_TRUE(registry.remove_module("box"));
  ToolRegistry clash;
  EXPECT_TRUE(clash.add_module(bare_manifest("box", "ping")).empty());
  EXPECT_TRUE(clash.set_node_tools("node-b", announced));
  EXPECT_EQ(clash.find("ping")->qualified, "box.ping");
  EXPECT_EQ(clash.find("kit.ping")->mcp_name, "kit__ping");
  EXPECT_TRUE(clash.remove_module("box"));
  EXPECT_EQ(clash.find("ping")->qualified, "kit.ping");
  EXPECT_EQ(clash.find("kit.ping")->mcp_name, "ping");

  // A tool announced without a bare name keeps module__tool.
  Json plain = announced;
  for (Json& tool : plain) tool.erase("mcp_name");
  EXPECT_TRUE(registry.set_node_tools("node-b", plain));
  EXPECT_EQ(registry.find("ping"), nullptr);
  EXPECT_EQ(registry.find("kit.ping")->mcp_name, "kit__ping");
}

TEST(ToolPolicyTest, TheMostSpecificRuleWins) {
  ToolRegistry registry;
  registry.add_module(fs_manifest());
  auto policy = ToolPolicy::create({{"fs.*", "deny"}, {"*", "ask"}, {"fs.read", "allow"}},
                                   {{"high", "deny"}});
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->decide(*registry.find("fs.read")).decision, ToolDecision::kAllow);
  PolicyVerdict write = policy->decide(*registry.find("fs.write"));
  EXPECT_EQ(write.decision, ToolDecision::kDeny);
  EXPECT_EQ(write.because, "policy \"fs.*\"");
}

TEST(ToolPolicyTest, RejectsWhatItCannotUnderstand) {
  auto bad = ToolPolicy::create({{"fs.*", "maybe"}}, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("tools.policy.fs.*"), std::string::npos);
  EXPECT_FALSE(ToolPolicy::create({}, {{"extreme", "deny"}}).ok());
}

}  // namespace
}  // namespace lotus::llm
