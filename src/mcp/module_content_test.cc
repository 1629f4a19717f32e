#include "mcp/module_content.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bus/local_bus.h"
#include "lotus/strings.h"
#include "testing/sync_wait.h"

namespace lotus::mcp {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

Manifest fixture_manifest() {
  auto m = parse_manifest(R"(name: fixture
version: 1.0.0
type: integration
mcp:
  resources:
    - {uri: "test://text", name: text, mimeType: text/plain, text: "plain text"}
    - {uri: "test://blob", name: blob, mimeType: image/png, blob: "AAEC"}
  resource_templates:
    - {uriTemplate: "test://t/{id}/static", name: static, mimeType: text/plain, text: "id={{id}}"}
    - {uriTemplate: "test://t/{id}/served", name: served, channel: fixture.read}
  prompts:
    - name: greet
      arguments: [{name: who, required: true}]
      messages: [{role: user, content: {type: text, text: "hello {{who}}"}}]
    - {name: asked, channel: fixture.prompt}
)",
                          "fixture/manifest.yaml");
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

// The nucleus's own content, stood in for.
class Inner : public McpContent {
 public:
  Json resources() override { return Json::array({{{"uri", "lotus://health"}, {"name", "h"}}}); }
  Json resource_templates() override { return Json::array(); }
  Task<Result<Json>> read_resource(std::string uri) override {
    if (uri != "lotus://health") co_return absl::NotFoundError(cat("resource not found: ", uri));
    co_return Json::array({{{"uri", uri}, {"text", "ok"}}});
  }
  Json prompts() override { return Json::array({{{"name", "lotus_task"}}}); }
  Task<Result<Json>> get_prompt(std::string name, Json) override {
    co_return absl::NotFoundError(cat("unknown prompt \"", name, "\""));
  }
};

class ModuleContentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Subscriber module;
    module.tap = [this](const EventPtr& event) {
      if (event->channel == "fixture.read") {
        std::string id = event->data["variables"].value("id", "");
        if (id == "bad") {
          (void)bus_.reply(*event, "fixture", Json{{"error", "no such id"}});
          return;
        }
        (void)bus_.reply(
            *event, "fixture",
            Json{{"contents",
                  Json::array({{{"uri", event->data["uri"]}, {"text", cat("served ", id)}}})}});
      } else {
        (void)bus_.reply(
            *event, "fixture",
            Json{{"description", "asked"},
                 {"messages", Json::array({{{"role", "user"},
                                            {"content",
                                             {{"type", "text"},
                                              {"text", event->data["arguments"].dump()}}}}})}});
      }
    };
    ASSERT_TRUE(bus_.subscribe("fixture.*", SubscriptionFilter(), module).ok());
  }

  Result<Json> read(std::string uri) {
    return testing::sync_wait(bus_.executor(), content_.read_resource(std::move(uri)));
  }
  Result<Json> prompt(std::string name, Json arguments) {
    return testing::sync_wait(bus_.executor(),
                              content_.get_prompt(std::move(name), std::move(arguments)));
  }

  LocalBus bus_{2};
  bool running_ = true;
  ModuleContent content_{bus_,
                         [this] {
                           return running_ ? std::vector<Manifest>{fixture_manifest()}
                                           : std::vector<Manifest>{};
                         },
                         std::make_shared<Inner>(), 2s};
};

TEST(UriTemplateTest, MatchesLevelOneTemplates) {
  EXPECT_EQ(match_uri_template("test://t/{id}/data", "test://t/123/data"), Json({{"id", "123"}}));
  EXPECT_EQ(match_uri_template("a/{x}", "a/b%20c"), Json({{"x", "b c"}}));
  EXPECT_EQ(match_uri_template("a/{x}-{y}", "a/1-2"), Json({{"x", "1"}, {"y", "2"}}));
  EXPECT_FALSE(match_uri_template("test://t/{id}/data", "test://t/1/2/data").has_value());
  EXPECT_FALSE(match_uri_template("test://t/{id}/data", "test://t//data").has_value());
  EXPECT_FALSE(match_uri_template("test://t/{id}", "test://u/1").has_value());
  EXPECT_FALSE(match_uri_template("a/{x}", "a/%zz").has_value());
}

TEST(PlaceholderTest, FillsEveryStringAndLeavesUnknownNames) {
  Json filled = fill_placeholders(Json{{"text", "a={{a}} b={{b}} c={{c}}"}, {"list", {"{{a}}", 3}}},
                                  Json{{"a", "x"}, {"b", 2}});
  EXPECT_EQ(filled["text"], "a=x b=2 c={{c}}");
  EXPECT_EQ(filled["list"], Json::array({"x", 3}));
  EXPECT_EQ(fill_placeholders("{{a", Json{{"a", "x"}}), "{{a");
}

TEST_F(ModuleContentTest, ListsTheModulesEntriesAfterTheInnerOnesWithoutTheirSources) {
  Json resources = content_.resources();
  ASSERT_EQ(resources.size(), 3u);
  EXPECT_EQ(resources[0]["uri"], "lotus://health");
  EXPECT_EQ(resources[1],
            Json({{"uri", "test://text"}, {"name", "text"}, {"mimeType", "text/plain"}}));
  EXPECT_EQ(content_.resource_templates().size(), 2u);
  EXPECT_FALSE(content_.resource_templates()[1].contains("channel"));
  Json prompts = content_.prompts();
  ASSERT_EQ(prompts.size(), 3u);
  EXPECT_FALSE(prompts[1].contains("messages"));
  EXPECT_EQ(prompts[1]["arguments"][0]["name"], "who");
  running_ = false;  // the module stopped: its entries go with it
  EXPECT_EQ(content_.resources().size(), 1u);
  EXPECT_EQ(read("test://text").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModuleContentTest, ReadsStaticTemplatedAndServedResources) {
  EXPECT_EQ(
      *read("test://text"),
      Json::array({{{"uri", "test://text"}, {"mimeType", "text/plain"}, {"text", "plain text"}}}));
  EXPECT_EQ((*read("test://blob"))[0]["blob"], "AAEC");
  EXPECT_FALSE((*read("test://blob"))[0].contains("text"));
  EXPECT_EQ((*read("test://t/42/static"))[0]["text"], "id=42");
  EXPECT_EQ((*read("test://t/42/static"))[0]["uri"], "test://t/42/static");
  EXPECT_EQ((*read("test://t/7/served"))[0]["text"], "served 7");
  Result<Json> bad = read("test://t/bad/served");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("no such id"));
  EXPECT_EQ((*read("lotus://health"))[0]["text"], "ok");  // the inner content's
  EXPECT_EQ(read("test://nothing").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModuleContentTest, GetsStaticAndServedPrompts) {
  Result<Json> greet = prompt("greet", {{"who", "ada"}});
  ASSERT_TRUE(greet.ok()) << greet.status();
  EXPECT_EQ((*greet)["messages"][0]["content"]["text"], "hello ada");
  Result<Json> missing = prompt("greet", Json::object());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("\"who\""));
  Result<Json> asked = prompt("asked", {{"x", 1}});
  ASSERT_TRUE(asked.ok()) << asked.status();
  EXPECT_EQ((*asked)["description"], "asked");
  EXPECT_EQ((*asked)["messages"][0]["content"]["text"], R"({"x":1})");
  EXPECT_EQ(prompt("nope", Json::object()).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace lotus::mcp
