// Boots a real nucleus with the built-in memory module on a temporary data
// folder and talks to it only over the bus: store, recall (request/reply),
// forget, consolidate, the remember/recall tools, memory_updates, restarts;
// in both profiles (the server one on a real PostgreSQL and Redis), and two
// nodes sharing one PostgreSQL and Redis.
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/module_host.h"
#include "core/nucleus.h"
#include "lotus/manifest.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "runtime/module_factory.h"
#include "testing/postgres_server.h"
#include "testing/redis_server.h"
#include "testing/sync_wait.h"
#include "testing/temp_dir.h"

namespace lotus {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const fs::path kManifest =
    fs::path(LOTUS_SOURCE_DIR) / "modules" / "core" / "memory" / "manifest.yaml";

using testing::TempDir;

// A module that only declares vector collections, to store into them.
class NotebookModule final : public Module {
 public:
  Task<void> initialize() override { co_return; }
};
static RegisterBuiltinModule<NotebookModule> registered_notebook("notebook");
constexpr const char* kNotebookManifest = R"(name: notebook
version: "1.0.0"
type: capability
description: Keeps recipes (test module)
memory:
  vector_collections: [recipes, menus]
)";

// Collects memory_updates from the moment it is attached.
class Updates {
 public:
  explicit Updates(Bus& bus) : bus_(bus) {
    Subscriber tap;
    tap.tap = [this](const EventPtr& event) {
      std::lock_guard lock(mutex_);
      seen_.push_back(event->data);
      changed_.notify_all();
    };
    id_ = *bus.subscribe("memory_updates", SubscriptionFilter(), tap);
  }
  ~Updates() { bus_.unsubscribe(id_); }
  // The first update with this operation, or null.
  Json find(std::string_view operation) {
    std::lock_guard lock(mutex_);
    for (const Json& j : seen_) {
      if (j.value("operation", "") == operation) return j;
    }
    return Json();
  }
  bool wait_for(std::string_view operation) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 10s, [&] {
      for (const Json& j : seen_) {
        if (j.value("operation", "") == operation) return true;
      }
      return false;
    });
  }

 private:
  Bus& bus_;
  SubscriptionId id_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Json> seen_;
};

// The parameter: whether the memory module runs the server profile.
class MemoryModuleTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    fs::create_directories(dir_.path() / "modules" / "memory");
    fs::copy_file(kManifest, dir_.path() / "modules" / "memory" / "manifest.yaml");
    fs::create_directories(dir_.path() / "modules" / "notebook");
    std::ofstream(dir_.path() / "modules" / "notebook" / "manifest.yaml") << kNotebookManifest;
    if (GetParam()) {
      postgres_ = std::make_unique<testing::PostgresServer>();
      redis_ = std::make_unique<testing::RedisServer>();
      postgres_url_ = postgres_->create_database("memory");
    }
  }

  // `node` names the node's own folders; nodes share PostgreSQL and Redis.
  Config config(Json extra = Json::object(), const std::string& node = "") const {
    Config c;
    c.module_dirs = {dir_.path() / "modules"};
    c.data_dir = dir_.path() / ("data" + node);
    c.threads = 2;
    c.shutdown_deadline = 5000ms;
    Json module_config{{"data_dir", (dir_.path() / ("memory" + node)).string()}};
    if (GetParam()) {
      module_config["profile"] = "server";
      module_config["postgres"] = postgres_url_;
      module_config["redis"] = redis_->url();
    }
    module_config.update(extra);
    c.module_config["memory"] = std::move(module_config);
    return c;
  }

  static void boot(Nucleus& nucleus) {
    ASSERT_TRUE(nucleus.boot().ok());
    for (const auto& m : nucleus.modules()) {
      if (m.name == "memory") {
        ASSERT_EQ(m.state, "running") << m.error;
        return;
      }
    }
    FAIL() << "memory was not discovered";
  }

  static Json request(Nucleus& nucleus, std::string channel, Json data,
                      std::string source = "tester") {
    Event event = Event::make(std::move(channel), std::move(source), std::move(data));
    auto reply =
        testing::sync_wait(nucleus.bus().executor(), nucleus.bus().request(std::move(event), 5s));
    if (!reply.ok()) return Json{{"ok", false}, {"error", std::string(message_of(reply.status()))}};
    return (*reply)->data;
  }
  static Json call_tool(Nucleus& nucleus, std::string_view tool, Json arguments) {
    return request(nucleus, ModuleHost::tool_channel("memory", tool),
                   Json{{"arguments", std::move(arguments)}});
  }
  static std::string top(const Json& reply) {
    const Json& results = reply.contains("result") ? reply["result"]["results"] : reply["results"];
    if (!results.is_array() || results.empty()) return cat("(nothing) ", reply.dump());
    return results[0]["content"].get<std::string>();
  }

  TempDir dir_;
  std::unique_ptr<testing::PostgresServer> postgres_;
  std::unique_ptr<testing::RedisServer> redis_;
  std::string postgres_url_;
};

TEST(MemoryManifest, IsAValidBuiltInContract) {
  auto manifest = load_manifest(kManifest);
  ASSERT_TRUE(manifest.ok()) << message_of(manifest.status());
  EXPECT_EQ(manifest->name, "memory");
  EXPECT_TRUE(manifest->runtime.library.empty()) << "built in, not a plugin";
  EXPECT_TRUE(manifest->may_publish("memory_updates"));
  EXPECT_EQ(manifest->config_defaults["consolidate_interval_seconds"], 300);
  ASSERT_NE(manifest->find_tool("remember"), nullptr);
  EXPECT_EQ(manifest->find_tool("remember")->parameters["required"], Json::array({"content"}));
  ASSERT_NE(manifest->find_tool("recall"), nullptr);
}

TEST_P(MemoryModuleTest, StoresRecallsForgetsOverTheBusAndSurvivesARestart) {
  std::string id;
  {
    Nucleus nucleus(config());
    boot(nucleus);
    Updates updates(nucleus.bus());
    Json stored = request(nucleus, "memory.store",
                          Json{{"content", "The staging database listens on port 5433"},
                               {"type", "semantic"},
                               {"metadata", {{"source", "ops"}}}});
    ASSERT_EQ(stored["ok"], true) << stored.dump();
    id = stored["memory"]["id"].get<std::string>();
    EXPECT_EQ(stored["memory"]["module"], "tester");
    EXPECT_TRUE(updates.wait_for("store"));
    ASSERT_EQ(request(nucleus, "memory.store", Json{{"content", "Bob likes green tea"}})["ok"],
              true);

    Json bad = request(nucleus, "memory.store", Json{{"content", 5}});
    EXPECT_EQ(bad["ok"], false);
    EXPECT_THAT(bad["error"].get<std::string>(), HasSubstr("content"));

    Json recalled =
        request(nucleus, "memory.recall", Json{{"query", "staging database port"}, {"limit", 3}});
    ASSERT_EQ(recalled["ok"], true) << recalled.dump();
    EXPECT_THAT(top(recalled), HasSubstr("5433"));
    EXPECT_EQ(recalled["results"][0]["metadata"]["source"], "ops");
    Json filtered = request(nucleus, "memory.recall",
                            Json{{"query", "tea"}, {"filter", {{"types", {"semantic"}}}}});
    EXPECT_TRUE(filtered["results"].empty()) << filtered.dump();
    ASSERT_TRUE(nucleus.shutdown().ok());
  }
  Nucleus nucleus(config());
  boot(nucleus);
  Updates updates(nucleus.bus());
  EXPECT_THAT(top(request(nucleus, "memory.recall", Json{{"query", "green tea"}})),
              "Bob likes green tea");
  Json forgot = request(nucleus, "memory.forget", Json{{"id", id}});
  EXPECT_EQ(forgot["forgotten"], 1) << forgot.dump();
  EXPECT_TRUE(updates.wait_for("forget"));
  Json gone = request(nucleus, "memory.recall", Json{{"query", "staging database port 5433"}});
  EXPECT_TRUE(gone["results"].empty()) << gone.dump();
  EXPECT_EQ(request(nucleus, "memory.forget", Json::object())["ok"], false);
  Json health = nucleus.health()["modules"]["memory"];
  EXPECT_EQ(health["state"], "running") << health.dump();
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_P(MemoryModuleTest, StoresIntoACollectionOnlyWhereAManifestDeclaresIt) {
  Nucleus nucleus(config());
  boot(nucleus);
  auto store = [&](const char* collection, const char* source) {
    return request(nucleus, "memory.store",
                   Json{{"content", cat("Lentil soup wants cumin (", source, ")")},
                        {"collection", collection}},
                   source);
  };
  // Its own module: only what its manifest lists.
  Json own = store("recipes", "notebook");
  ASSERT_EQ(own["ok"], true) << own.dump();
  EXPECT_EQ(own["memory"]["collection"], "recipes");
  Json undeclared = store("bugs", "notebook");
  EXPECT_EQ(undeclared["ok"], false);
  EXPECT_THAT(undeclared["error"].get<std::string>(),
              HasSubstr("collection \"bugs\": module notebook does not declare it"));
  EXPECT_THAT(undeclared["error"].get<std::string>(), HasSubstr("declared: recipes, menus"));
  // Someone who is not a module (the API, a person): any declared collection.
  EXPECT_EQ(store("menus", "tester")["ok"], true);
  Json nowhere = store("nowhere", "tester");
  EXPECT_EQ(nowhere["ok"], false);
  EXPECT_THAT(nowhere["error"].get<std::string>(), HasSubstr("no module declares it"));
  // The default collection is open to all; the model's tool follows the second rule.
  EXPECT_EQ(store("", "notebook")["ok"], true);
  EXPECT_EQ(call_tool(nucleus, "remember", Json{{"content", "x"}, {"collection", "nowhere"}})["ok"],
            false);
  Json in_recipes =
      request(nucleus, "memory.recall",
              Json{{"query", "lentil soup"}, {"filter", {{"collection", "recipes"}}}});
  ASSERT_EQ(in_recipes["results"].size(), 1u) << in_recipes.dump();
  EXPECT_EQ(in_recipes["results"][0]["module"], "notebook");
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_P(MemoryModuleTest, KeepsFactsOverTheBusAndThroughTools) {
  Nucleus nucleus(config());
  boot(nucleus);
  Updates updates(nucleus.bus());
  Json stated = request(nucleus, "memory.relate",
                        Json{{"subject", "Dana"}, {"predicate", "owns"}, {"object", "a red bike"}});
  ASSERT_EQ(stated["ok"], true) << stated.dump();
  EXPECT_EQ(stated["relation"]["module"], "tester");
  EXPECT_TRUE(updates.wait_for("relate"));
  Json tool = call_tool(nucleus, "relate",
                        Json{{"subject", "Dana"}, {"predicate", "lives_in"}, {"object", "Porto"}});
  ASSERT_EQ(tool["ok"], true) << tool.dump();
  Json missing = request(nucleus, "memory.relate", Json{{"subject", "Dana"}, {"object", "x"}});
  EXPECT_EQ(missing["ok"], false);
  EXPECT_THAT(missing["error"].get<std::string>(), HasSubstr("predicate: required"));

  Json found = call_tool(nucleus, "relations", Json{{"entity", "Dana"}});
  ASSERT_EQ(found["ok"], true) << found.dump();
  ASSERT_EQ(found["result"]["relations"].size(), 2u) << found.dump();
  EXPECT_EQ(found["result"]["relations"][1]["object"], "Porto");
  Json removed = request(nucleus, "memory.unrelate", Json{{"id", stated["relation"]["id"]}});
  EXPECT_EQ(removed["removed"], 1) << removed.dump();
  EXPECT_TRUE(updates.wait_for("unrelate"));
  Json left = request(nucleus, "memory.relations", Json{{"subject", "Dana"}});
  ASSERT_EQ(left["relations"].size(), 1u) << left.dump();
  EXPECT_EQ(left["relations"][0]["predicate"], "lives_in");
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_P(MemoryModuleTest, OffersRememberAndRecallTools) {
  Nucleus nucleus(config());
  boot(nucleus);
  Json remembered = call_tool(nucleus, "remember",
                              Json{{"content", "To release, tag vX.Y.Z and run scripts/release.sh"},
                                   {"type", "procedural"},
                                   {"importance", 0.9}});
  ASSERT_EQ(remembered["ok"], true) << remembered.dump();
  EXPECT_EQ(remembered["result"]["tier"], "long_term");
  Json recalled = call_tool(nucleus, "recall", Json{{"query", "how do I release"}});
  ASSERT_EQ(recalled["ok"], true) << recalled.dump();
  EXPECT_THAT(top(recalled), HasSubstr("release.sh"));
  Json bad = call_tool(nucleus, "recall", Json{{"query", "x"}, {"limit", -1}});
  EXPECT_EQ(bad["ok"], false);
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_P(MemoryModuleTest, ConsolidatesOnRequestAndOnSchedule) {
  Nucleus nucleus(config(Json{{"short_term_seconds", 0}, {"consolidate_interval_seconds", 0.2}}));
  boot(nucleus);
  Updates updates(nucleus.bus());
  ASSERT_EQ(request(nucleus, "memory.store",
                    Json{{"content", "We decided to keep the API on port 8080"},
                         {"type", "semantic"}})["ok"],
            true);
  // Either the scheduled run or this request consolidates it.
  Json report = request(nucleus, "memory.consolidate", Json::object());
  ASSERT_EQ(report["ok"], true) << report.dump();
  EXPECT_TRUE(updates.wait_for("consolidate"));
  Json recalled = request(nucleus, "memory.recall", Json{{"query", "API port"}});
  ASSERT_FALSE(recalled["results"].empty()) << recalled.dump();
  EXPECT_EQ(recalled["results"][0]["tier"], "long_term");
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_P(MemoryModuleTest, AModelSummaryReplacesTheExtractiveOneWhenAnLlmIsConfigured) {
  const std::string summary = "Alice moved the standup to 9:30; the build server is called kiln.";
  Config c = config(Json{{"short_term_seconds", 0}, {"consolidate_interval_seconds", 3600}});
  c.llm =
      Json{{"providers", {{"script", {{"type", "scripted"}, {"script", {{{"text", summary}}}}}}}},
           {"default_model", "script:replay"}};
  Nucleus nucleus(c);
  boot(nucleus);
  Updates updates(nucleus.bus());
  for (const char* note : {"Alice said the standup moves to 9:30 from next week",
                           "The build server got renamed to kiln"}) {
    ASSERT_EQ(request(nucleus, "memory.store", Json{{"content", note}, {"importance", 0.1}})["ok"],
              true);
  }
  Json report = request(nucleus, "memory.consolidate", Json::object());
  ASSERT_EQ(report["ok"], true) << report.dump();
  EXPECT_EQ(report["archived"], 2) << report.dump();
  const std::string extractive = report.value("summary_id", "");
  ASSERT_FALSE(extractive.empty()) << report.dump();

  ASSERT_TRUE(updates.wait_for("summarize"));
  Json replaced = updates.find("summarize");
  EXPECT_EQ(replaced["replaces"], extractive);
  EXPECT_EQ(replaced["method"], "llm");
  Json found =
      request(nucleus, "memory.recall",
              Json{{"query", "standup kiln"}, {"filter", {{"ids", {replaced["id"], extractive}}}}});
  ASSERT_EQ(found["results"].size(), 1u) << found.dump();
  EXPECT_EQ(found["results"][0]["content"], summary);
  EXPECT_EQ(found["results"][0]["metadata"]["method"], "llm");
  EXPECT_EQ(found["results"][0]["metadata"]["summarizes"], 2);
  EXPECT_EQ(found["results"][0]["type"], "semantic");
  ASSERT_TRUE(nucleus.shutdown().ok());
}

TEST_P(MemoryModuleTest, WithoutAnLlmTheExtractiveSummaryStays) {
  Config c = config(Json{{"short_term_seconds", 0}, {"consolidate_interval_seconds", 3600}});
  c.llm = Json{{"providers", Json::object()}};
  Nucleus nucleus(c);
  boot(nucleus);
  Updates updates(nucleus.bus());
  ASSERT_EQ(request(nucleus, "memory.store",
                    Json{{"content", "The printer on floor two jams on glossy paper"},
                         {"importance", 0.1}})["ok"],
            true);
  Json report = request(nucleus, "memory.consolidate", Json::object());
  const std::string extractive = report.value("summary_id", "");
  ASSERT_FALSE(extractive.empty()) << report.dump();
  // A later store's update arriving means the summary step had its turn.
  ASSERT_EQ(request(nucleus, "memory.store", Json{{"content", "marker"}})["ok"], true);
  ASSERT_TRUE(updates.wait_for("store"));
  EXPECT_TRUE(updates.find("summarize").is_null());
  Json found = request(nucleus, "memory.recall",
                       Json{{"query", "printer"}, {"filter", {{"ids", {extractive}}}}});
  ASSERT_EQ(found["results"].size(), 1u) << found.dump();
  EXPECT_EQ(found["results"][0]["metadata"]["method"], "extractive");
  ASSERT_TRUE(nucleus.shutdown().ok());
}

INSTANTIATE_TEST_SUITE_P(Profiles, MemoryModuleTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Server" : "Embedded";
                         });

class MemoryModuleNodesTest : public MemoryModuleTest {};

TEST_P(MemoryModuleNodesTest, TwoNodesOnOnePostgresAndRedisShareTheirMemories) {
  Nucleus a(config(Json::object(), "a"));
  boot(a);
  Nucleus b(config(Json::object(), "b"));
  boot(b);
  Updates updates(a.bus());
  Json stored = request(a, "memory.store",
                        Json{{"content", "The release train leaves every second Tuesday"},
                             {"type", "semantic"},
                             {"importance", 0.9}});
  ASSERT_EQ(stored["ok"], true) << stored.dump();
  EXPECT_TRUE(updates.wait_for("store"));
  EXPECT_THAT(
      top(request(b, "memory.recall", Json{{"query", "when does the release train leave"}})),
      HasSubstr("second Tuesday"));
  ASSERT_EQ(
      request(b, "memory.store", Json{{"content", "Carol reviews the database migrations"}})["ok"],
      true);
  EXPECT_THAT(top(request(a, "memory.recall", Json{{"query", "who reviews migrations"}})),
              HasSubstr("Carol"));
  Json forgot = request(b, "memory.forget", Json{{"id", stored["memory"]["id"]}});
  EXPECT_EQ(forgot["forgotten"], 1) << forgot.dump();
  Json gone = request(a, "memory.recall", Json{{"query", "release train second Tuesday"}});
  EXPECT_TRUE(gone["results"].empty()) << gone.dump();
  EXPECT_EQ(b.health()["modules"]["memory"]["state"], "running");
  ASSERT_TRUE(b.shutdown().ok());
  ASSERT_TRUE(a.shutdown().ok());
}

INSTANTIATE_TEST_SUITE_P(Profiles, MemoryModuleNodesTest, ::testing::Values(true),
                         [](const ::testing::TestParamInfo<bool>&) { return "Server"; });

}  // namespace
}  // namespace lotus
