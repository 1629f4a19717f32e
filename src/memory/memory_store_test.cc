// One behavioural suite for both memory profiles: the embedded store on a
// temporary folder, and the server store on a real PostgreSQL and Redis that
// each test starts on loopback. Remember and recall by meaning and keyword,
// filters, module state, restarts, a killed writer, forgetting, consolidation
// and an index rebuilt from the source of truth; then what only the server
// profile has: several nodes on one Redis and PostgreSQL.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lotus/strings.h"
#include "memory/embedded_memory.h"
#include "memory/hashing_embedder.h"
#include "memory/memory_config.h"
#include "memory/server_memory.h"
#include "testing/memory_test_support.h"
#include "testing/postgres_server.h"
#include "testing/redis_server.h"
#include "testing/temp_dir.h"

namespace lotus::memory {
namespace {

using testing::contents;
using testing::everyday_corpus;
using testing::top;

using ::testing::HasSubstr;
namespace fs = std::filesystem;

enum class Profile { kEmbedded, kServer };

class MemoryStoreTest : public ::testing::TestWithParam<Profile> {
 protected:
  void SetUp() override {
    if (server()) {
      postgres_ = std::make_unique<testing::PostgresServer>();
      redis_ = std::make_unique<testing::RedisServer>();
      postgres_url_ = postgres_->create_database("memory");
    }
  }

  bool server() const { return GetParam() == Profile::kServer; }

  // The options of node `node`: its own folder, the shared clock.
  EmbeddedMemoryOptions options(const std::string& node = "a") {
    EmbeddedMemoryOptions o;
    o.dir = dir_.path() / node;
    o.clock = [this] { return clock_; };
    return o;
  }
  Result<std::unique_ptr<MemoryStore>> try_open(EmbeddedMemoryOptions o) {
    if (server()) {
      ServerMemoryOptions s;
      s.postgres_url = postgres_url_;
      s.redis_url = redis_->url();
      s.local = std::move(o);
      auto store = ServerMemory::open(std::move(s));
      if (!store.ok()) return store.status();
      return std::unique_ptr<MemoryStore>(std::move(*store));
    }
    auto store = EmbeddedMemory::open(std::move(o));
    if (!store.ok()) return store.status();
    return std::unique_ptr<MemoryStore>(std::move(*store));
  }
  std::unique_ptr<MemoryStore> open(EmbeddedMemoryOptions o) {
    auto store = try_open(std::move(o));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::unique_ptr<MemoryStore> open() { return open(options()); }

  static Json stats(MemoryStore& store) {
    auto s = store.stats();
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : Json::object();
  }
  static std::string rebuild_reason(MemoryStore& store) {
    return stats(store)["index"].value("rebuilt_because", "");
  }
  void store_corpus(MemoryStore& store) {
    for (const std::string& text : everyday_corpus()) {
      ASSERT_TRUE(store.remember(text).ok());
      clock_ += 1;
    }
  }

  testing::TempDir dir_;
  double clock_ = 1'700'000'000.0;
  std::unique_ptr<testing::PostgresServer> postgres_;
  std::unique_ptr<testing::RedisServer> redis_;
  std::string postgres_url_;
};

TEST_P(MemoryStoreTest, RecallsByMeaningAndByKeyword) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(rebuild_reason(*store), "") << "a new store has nothing to rebuild";
  store_corpus(*store);
  EXPECT_THAT(top(store->recall("how do I deploy and restart the server", 3, {})),
              HasSubstr("deploy.sh"));
  EXPECT_THAT(top(store->recall("which editor theme does alice like", 3, {})),
              HasSubstr("dark mode"));
  EXPECT_THAT(top(store->recall("pie recipes", 3, {})), HasSubstr("apple pie"));
  auto hits = store->recall("zanzibar", 3, {});
  ASSERT_TRUE(hits.ok()) << hits.status();
  ASSERT_FALSE(hits->empty());
  EXPECT_THAT(hits->front().record.content, HasSubstr("VPN gateway"));
  EXPECT_TRUE(hits->front().keyword_match);
  auto nothing = store->recall("quantum chromodynamics", 3, {});
  ASSERT_TRUE(nothing.ok());
  EXPECT_TRUE(nothing->empty()) << ::testing::PrintToString(contents(*nothing));
}

TEST_P(MemoryStoreTest, ImportantMemoriesGoLongTermAndRankHigher) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto minor = store->remember("the build server was slow today", MemoryType::kEpisodic);
  auto major = store->remember("the build server password rotates monthly", MemoryType::kSemantic,
                               Json::object(), 0.9);
  ASSERT_TRUE(minor.ok() && major.ok());
  EXPECT_EQ(minor->tier, MemoryTier::kShortTerm);
  EXPECT_EQ(major->tier, MemoryTier::kLongTerm);
  auto hits = store->recall("build server", 2, {});
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 2u);
  EXPECT_EQ(hits->front().record.id, major->id);
  EXPECT_TRUE(hits->front().in_working_memory);
  const Json s = stats(*store);
  EXPECT_EQ(s["tiers"]["short_term"], 1);
  EXPECT_EQ(s["tiers"]["long_term"], 1);
  EXPECT_EQ(s["index"]["vectors"], 1);
  EXPECT_EQ(s["working"]["size"], 2);
}

TEST_P(MemoryStoreTest, FiltersByTypeModuleCollectionAndTime) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  MemoryInput a;
  a.content = "restart the database after upgrades";
  a.type = MemoryType::kProcedural;
  a.module = "code_assistant";
  a.collection = "code_patterns";
  ASSERT_TRUE(store->remember(a).ok());
  clock_ += 100;
  ASSERT_TRUE(store->remember("we restarted the database yesterday").ok());
  MemoryFilter procedural;
  procedural.types = {MemoryType::kProcedural};
  EXPECT_THAT(contents(*store->recall("restart database", 5, procedural)),
              ::testing::ElementsAre("restart the database after upgrades"));
  MemoryFilter by_module;
  by_module.module = "code_assistant";
  by_module.collection = "code_patterns";
  EXPECT_EQ(store->recall("restart database", 5, by_module)->size(), 1u);
  MemoryFilter recent;
  recent.since = clock_ - 10;
  EXPECT_THAT(contents(*store->recall("restart database", 5, recent)),
              ::testing::ElementsAre("we restarted the database yesterday"));
}

TEST_P(MemoryStoreTest, EverythingSurvivesARestart) {
  std::string long_id, short_id;
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    store_corpus(*store);
    long_id = store
                  ->remember("Always back up /etc before upgrades", MemoryType::kProcedural,
                             Json{{"source", "user"}}, 0.95)
                  ->id;
    short_id = store->remember("lunch was pasta")->id;
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(rebuild_reason(*store), "");
  auto hits = store->recall("backup etc before upgrading", 3, {});
  ASSERT_TRUE(hits.ok());
  ASSERT_FALSE(hits->empty());
  EXPECT_EQ(hits->front().record.id, long_id);
  EXPECT_EQ(hits->front().record.metadata["source"], "user");
  // Working memory is the process's in the embedded profile; in the server
  // profile it lives in Redis and outlasts a node's restart.
  EXPECT_EQ(hits->front().in_working_memory, server());
  EXPECT_EQ(top(store->recall("pasta for lunch", 3, {})), "lunch was pasta");
  EXPECT_THAT(top(store->recall("zanzibar", 1, {})), HasSubstr("VPN"));
  EXPECT_EQ(store->get(short_id)->content, "lunch was pasta");
  EXPECT_EQ(store->get("no-such-id").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(MemoryStoreTest, AKilledWriterLosesNothingItAcknowledged) {
  { ASSERT_NE(open(), nullptr); }  // an index file exists, so the child's changes are replayed
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = try_open(options());
    if (!store.ok()) _exit(2);
    for (int i = 0; i < 100; ++i) {
      auto stored =
          (*store)->remember(cat("burst memory ", i, " mentions kumquat ", i),
                             MemoryType::kSemantic, Json::object(), i % 2 == 0 ? 0.9 : 0.2);
      if (!stored.ok()) _exit(3);
    }
    // As kill -9 would: no destructor, no index save.
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto store = open();
  ASSERT_NE(store, nullptr);
  const Json s = stats(*store);
  EXPECT_EQ(s["tiers"]["long_term"], 50);
  EXPECT_EQ(s["tiers"]["short_term"], 50);
  EXPECT_EQ(s["index"]["vectors"], 50) << "the changes were replayed into the index";
  EXPECT_EQ(rebuild_reason(*store), "") << "replayed, not rebuilt";
  EXPECT_EQ(top(store->recall("burst memory 42 mentions kumquat 42", 1, {})),
            "burst memory 42 mentions kumquat 42");
  EXPECT_EQ(top(store->recall("burst memory 43 mentions kumquat 43", 1, {})),
            "burst memory 43 mentions kumquat 43");
}

TEST_P(MemoryStoreTest, AMissingOrDamagedIndexIsRebuiltFromTheSourceOfTruth) {
  std::vector<std::string> progress;
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(
          store->remember(cat("fact ", i, " about planet ", i * 7), MemoryType::kSemantic, {}, 0.8)
              .ok());
    }
  }
  const fs::path index = dir_.path() / "a" / "index.hnsw";
  ASSERT_TRUE(fs::exists(index));
  fs::remove(index);
  auto o = options();
  o.progress = [&](std::string_view what, size_t done, size_t total) {
    progress.push_back(cat(what, " ", done, "/", total));
  };
  {
    auto store = open(o);
    ASSERT_NE(store, nullptr);
    EXPECT_THAT(rebuild_reason(*store), HasSubstr("incomplete"));
    EXPECT_THAT(progress, ::testing::Contains("rebuilding memory index 30/30"));
    EXPECT_EQ(stats(*store)["index"]["vectors"], 30);
    EXPECT_EQ(top(store->recall("fact 12 about planet 84", 1, {})), "fact 12 about planet 84");
  }
  {
    std::fstream f(index, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.write("garbage garbage garbage", 23);
  }
  auto store = open(o);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(rebuild_reason(*store), HasSubstr("checksum"));
  EXPECT_EQ(top(store->recall("fact 13 about planet 91", 1, {})), "fact 13 about planet 91");
}

TEST_P(MemoryStoreTest, ForgetsByIdAndByFilterForGood) {
  std::string gone;
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    store_corpus(*store);
    gone =
        store->remember("the secret launch code is tangerine", MemoryType::kSemantic, {}, 0.9)->id;
    MemoryInput scratch;
    scratch.content = "scratch note about tangerine marmalade";
    scratch.module = "scratchpad";
    ASSERT_TRUE(store->remember(scratch).ok());
    EXPECT_EQ(*store->forget(gone), 1u);
    EXPECT_EQ(*store->forget(gone), 0u);
    MemoryFilter by_module;
    by_module.module = "scratchpad";
    EXPECT_EQ(*store->forget(by_module), 1u);
    EXPECT_EQ(store->forget(MemoryFilter()).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(store->recall("tangerine", 5, {})->empty());
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->recall("tangerine launch code", 5, {})->empty());
  EXPECT_EQ(store->get(gone).status().code(), absl::StatusCode::kNotFound);
  const Json s = stats(*store);
  EXPECT_EQ(s["index"]["vectors"], 0);
  EXPECT_EQ(s["tiers"]["short_term"], 7);
  if (server()) {
    EXPECT_EQ(s["short_term_stream"]["length"], 7) << "L2 follows what was forgotten";
  }
}

TEST_P(MemoryStoreTest, ConsolidationPromotesArchivesAndSummarizes) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto keep = store->remember("We decided the API will use port 8080 for the gateway",
                              MemoryType::kSemantic);
  ASSERT_TRUE(keep.ok());
  EXPECT_EQ(keep->tier, MemoryTier::kShortTerm);
  EXPECT_GE(keep->importance, 0.5);
  auto recalled = store->remember("the coffee machine on floor two is broken");
  ASSERT_TRUE(recalled.ok());
  ASSERT_FALSE(store->recall("coffee machine broken", 1, {})->empty());
  ASSERT_FALSE(store->recall("is the coffee machine working", 1, {})->empty());
  for (const char* text :
       {"user asked about the gateway timeout settings.",
        "user said the gateway timeout happens on large uploads.", "user said hello"}) {
    ASSERT_TRUE(store->remember(text).ok());
  }
  clock_ += 60;
  auto early = store->consolidate();
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(early->promoted + early->archived, 0u) << "nothing is old enough yet";

  clock_ += 2 * 3600;
  auto report = store->consolidate();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->promoted, 2u);  // important, and recalled twice
  EXPECT_THAT(report->promoted_ids, ::testing::UnorderedElementsAre(keep->id, recalled->id));
  EXPECT_EQ(report->archived, 3u);
  EXPECT_EQ(to_json(*report)["archived"], 3);
  EXPECT_EQ(report->working_expired, 5u);
  ASSERT_FALSE(report->summary_id.empty());
  auto summary = store->get(report->summary_id);
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->type, MemoryType::kSemantic);
  EXPECT_EQ(summary->tier, MemoryTier::kLongTerm);
  EXPECT_THAT(summary->content, HasSubstr("gateway timeout"));
  EXPECT_EQ(summary->metadata["summarizes"], 3);
  EXPECT_THAT(contents(*store->recall("uploads", 5, {})),
              ::testing::Contains("user said the gateway timeout happens on large uploads."));
  auto again = store->consolidate();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->promoted + again->archived, 0u) << "each memory is consolidated once";
  store.reset();

  auto reopened = open();
  ASSERT_NE(reopened, nullptr);
  const Json s = stats(*reopened);
  EXPECT_EQ(s["tiers"]["long_term"], 3);
  EXPECT_EQ(s["tiers"]["archived"], 3);
  EXPECT_EQ(s["index"]["vectors"], 3);
  if (server()) {
    EXPECT_EQ(s["short_term_stream"]["length"], 0);
  }
  EXPECT_THAT(top(reopened->recall("which port does the API gateway use", 1, {})),
              HasSubstr("8080"));
}

TEST_P(MemoryStoreTest, KeepsEachModulesStateApart) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  for (const auto& [module, text] :
       {std::pair{"file_watcher", "watching /srv/app for changes since the last restart"},
        std::pair{"code_assistant", "last refactoring touched the parser; tests were green"}}) {
    MemoryInput state;
    state.content = text;
    state.type = MemoryType::kModuleState;
    state.module = module;
    ASSERT_TRUE(store->remember(state).ok());
  }
  ASSERT_TRUE(store->remember("the parser of the config file was rewritten").ok());
  MemoryFilter mine;
  mine.module = "code_assistant";
  mine.types = {MemoryType::kModuleState};
  auto hits = store->recall("parser refactoring", 5, mine);
  ASSERT_TRUE(hits.ok()) << hits.status();
  ASSERT_EQ(hits->size(), 1u) << ::testing::PrintToString(contents(*hits));
  EXPECT_EQ(hits->front().record.type, MemoryType::kModuleState);
  EXPECT_EQ(hits->front().record.module, "code_assistant");
  EXPECT_EQ(*store->forget(mine), 1u);
  MemoryFilter watcher;
  watcher.module = "file_watcher";
  EXPECT_EQ(store->recall("watching for changes", 5, watcher)->size(), 1u);
}

TEST_P(MemoryStoreTest, KeepsFactsAsRelationsBetweenEntities) {
  std::string works_at;
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    auto relate = [&](std::string s, std::string p, std::string o, double confidence = 1.0) {
      Relation r;
      r.subject = std::move(s);
      r.predicate = std::move(p);
      r.object = std::move(o);
      r.confidence = confidence;
      r.module = "tester";
      return store->relate(std::move(r));
    };
    auto first = relate("  Alice ", "works_at", "Acme", 0.6);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(first->subject, "Alice") << "names are trimmed";
    works_at = first->id;
    ASSERT_TRUE(relate("Alice", "lives_in", "Lisbon").ok());
    ASSERT_TRUE(relate("Bob", "manages", "Alice").ok());
    // The same fact again: one relation, its confidence updated, its id kept.
    auto again = relate("Alice", "works_at", "Acme", 0.9);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->id, works_at);
    EXPECT_EQ(again->created_at, first->created_at);

    auto empty = relate("Alice", " ", "Acme");
    EXPECT_TRUE(absl::IsInvalidArgument(empty.status()));
    EXPECT_THAT(message_of(empty.status()), HasSubstr("predicate"));
    EXPECT_TRUE(absl::IsInvalidArgument(relate("A", "b", "C", 1.5).status()));
  }
  auto store = open();  // facts are L4: they survive a restart
  ASSERT_NE(store, nullptr);
  RelationQuery about_alice;
  about_alice.entity = "Alice";
  auto alice = store->relations(about_alice);
  ASSERT_TRUE(alice.ok()) << alice.status();
  ASSERT_EQ(alice->size(), 3u);
  EXPECT_EQ((*alice)[0].predicate, "works_at");
  EXPECT_DOUBLE_EQ((*alice)[0].confidence, 0.9);
  EXPECT_EQ((*alice)[0].module, "tester");
  EXPECT_EQ((*alice)[2].subject, "Bob") << "either end matches an entity";
  RelationQuery managers;
  managers.predicate = "manages";
  EXPECT_EQ(store->relations(managers)->size(), 1u);
  RelationQuery exact;
  exact.subject = "Alice";
  exact.object = "Lisbon";
  EXPECT_EQ(store->relations(exact)->front().predicate, "lives_in");
  RelationQuery capped;
  capped.limit = 1;
  EXPECT_EQ(store->relations(capped)->size(), 1u);
  EXPECT_EQ(stats(*store)["facts"], (Json{{"entities", 4}, {"relations", 3}}));

  EXPECT_EQ(*store->unrelate(works_at), 1u);
  EXPECT_EQ(*store->unrelate(works_at), 0u);
  EXPECT_EQ(store->relations(about_alice)->size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Profiles, MemoryStoreTest,
                         ::testing::Values(Profile::kEmbedded, Profile::kServer),
                         [](const ::testing::TestParamInfo<Profile>& param) {
                           return param.param == Profile::kServer ? "Server" : "Embedded";
                         });

// --- The server profile only --------------------------------------------

class ServerMemoryNodesTest : public MemoryStoreTest {};

TEST_P(ServerMemoryNodesTest, TwoNodesSeeEachOthersMemories) {
  auto a = open(options("a"));
  auto b = open(options("b"));
  ASSERT_TRUE(a != nullptr && b != nullptr);
  auto fact = a->remember("The backup server is called hornbill", MemoryType::kSemantic, {}, 0.9);
  auto chat = a->remember("we talked about the weather in Lisbon");
  ASSERT_TRUE(fact.ok() && chat.ok());
  ASSERT_TRUE(b->sync().ok());
  EXPECT_EQ(stats(*b)["index"]["vectors"], 1) << "B's index took A's long-term memory";
  EXPECT_EQ(top(b->recall("what is the backup server called", 1, {})),
            "The backup server is called hornbill");
  EXPECT_EQ(top(b->recall("weather in Lisbon", 1, {})), "we talked about the weather in Lisbon");

  // B forgets, A no longer finds it.
  EXPECT_EQ(*b->forget(fact->id), 1u);
  EXPECT_TRUE(a->recall("hornbill backup server", 3, {})->empty());
  EXPECT_EQ(stats(*a)["index"]["vectors"], 0);

  // A consolidates; B's index follows the promotion.
  ASSERT_FALSE(a->recall("Lisbon weather", 1, {})->empty());
  ASSERT_FALSE(b->recall("the weather in Lisbon", 1, {})->empty());
  clock_ += 2 * 3600;
  auto report = a->consolidate();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->promoted, 1u);
  auto none = b->consolidate();
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->promoted + none->archived, 0u) << "B finds nothing left to consolidate";
  ASSERT_TRUE(b->sync().ok());
  EXPECT_EQ(stats(*b)["index"]["vectors"], 1);
  auto hit = b->recall("Lisbon", 1, {});
  ASSERT_TRUE(hit.ok());
  ASSERT_FALSE(hit->empty());
  EXPECT_EQ(hit->front().record.tier, MemoryTier::kLongTerm);
}

TEST_P(ServerMemoryNodesTest, ANodeCatchesUpAtOpenAndRebuildsAStaleIndex) {
  auto a = open(options("a"));
  ASSERT_NE(a, nullptr);
  { ASSERT_NE(open(options("b")), nullptr); }  // B saved an index and left
  ASSERT_TRUE(
      a->remember("The office wifi password is on the fridge", MemoryType::kSemantic, {}, 0.9)
          .ok());
  {
    auto b = open(options("b"));
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(rebuild_reason(*b), "") << "B replayed the change log";
    EXPECT_EQ(stats(*b)["index"]["vectors"], 1);
  }
  // A change B cannot replay (the log was trimmed): B's count no longer
  // matches PostgreSQL's, so B rebuilds.
  ASSERT_TRUE(
      a->remember("The printer on floor three jams on A3 paper", MemoryType::kSemantic, {}, 0.9)
          .ok());
  EXPECT_EQ(testing::PostgresServer::execute(
                postgres_url_,
                "DELETE FROM lotus_memory_changes WHERE n = (SELECT max(n) FROM "
                "lotus_memory_changes)"),
            "");
  auto b = open(options("b"));
  ASSERT_NE(b, nullptr);
  EXPECT_THAT(rebuild_reason(*b),
              HasSubstr("holds 1 vectors but PostgreSQL has 2 long-term memories"));
  EXPECT_EQ(top(b->recall("printer paper jams", 1, {})),
            "The printer on floor three jams on A3 paper");
}

TEST_P(ServerMemoryNodesTest, RefusesAnotherEmbedderAndNamesWhatIsWrong) {
  { ASSERT_NE(open(), nullptr); }
  auto o = options();
  o.embedder = std::make_shared<HashingEmbedder>(128);
  auto refused = try_open(o);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(message_of(refused.status())), HasSubstr("dimension 384"));

  ServerMemoryOptions bad;
  bad.local = options();
  bad.redis_url = redis_->url();
  bad.postgres_url = "postgresql://lotus:secret@127.0.0.1:1/nowhere";
  auto unreachable = ServerMemory::open(bad);
  ASSERT_EQ(unreachable.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(message_of(unreachable.status())), HasSubstr("lotus:***@127.0.0.1:1"));
  EXPECT_THAT(std::string(message_of(unreachable.status())), ::testing::Not(HasSubstr("secret")));
}

TEST(MemoryConfigTest, ChoosesTheProfileAndChecksTheServerKeys) {
  EXPECT_FALSE(*server_profile(Json::object()));
  EXPECT_TRUE(*server_profile(Json{{"profile", "server"}}));
  EXPECT_THAT(std::string(message_of(server_profile(Json{{"profile", "cloud"}}).status())),
              HasSubstr("modules.memory.profile"));
  auto missing = server_memory_options(Json{{"profile", "server"}}, "/tmp/x");
  EXPECT_THAT(std::string(message_of(missing.status())), HasSubstr("modules.memory.postgres"));
  auto from_bus =
      server_memory_options(Json{{"profile", "server"}, {"postgres", "postgresql://u@h/db"}},
                            "/tmp/x", "redis://127.0.0.1:6390");
  ASSERT_TRUE(from_bus.ok()) << from_bus.status();
  EXPECT_EQ(from_bus->redis_url, "redis://127.0.0.1:6390");
  EXPECT_EQ(from_bus->key_prefix, "lotus:memory:");
  auto no_redis = server_memory_options(
      Json{{"profile", "server"}, {"postgres", "postgresql://u@h/db"}}, "/tmp/x", "local");
  EXPECT_THAT(std::string(message_of(no_redis.status())), HasSubstr("modules.memory.redis"));
}

INSTANTIATE_TEST_SUITE_P(Profiles, ServerMemoryNodesTest, ::testing::Values(Profile::kServer),
                         [](const ::testing::TestParamInfo<Profile>&) { return "Server"; });

}  // namespace
}  // namespace lotus::memory
