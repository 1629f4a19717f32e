// The embedded memory store end to end on a temporary folder: recall by
// meaning and by keyword, restarts, a killed writer, a damaged or foreign
// index, forgetting and consolidation. Also the pieces it is made of.
#include "memory/embedded_memory.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <sqlite3.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lotus/strings.h"
#include "memory/hashing_embedder.h"
#include "memory/importance.h"
#include "memory/vector_index.h"
#include "memory/working_memory.h"
#include "testing/temp_dir.h"

namespace lotus::memory {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

using testing::TempDir;

MemoryInput input_of(std::string content) {
  MemoryInput input;
  input.content = std::move(content);
  return input;
}

float cosine(const std::vector<float>& a, const std::vector<float>& b) {
  return dot(a.data(), b.data(), a.size());
}

TEST(HashingEmbedderTest, IsDeterministicNormalizedAndMeasuresSharedWords) {
  HashingEmbedder embedder;
  EXPECT_EQ(embedder.dimension(), 384u);
  auto a = *embedder.embed("The deployment script restarts the web server");
  auto b = *embedder.embed("How do I deploy and restart the server?");
  auto c = *embedder.embed("Grandmother's apple pie recipe uses cinnamon");
  EXPECT_EQ(a, *embedder.embed("The deployment script restarts the web server"));
  EXPECT_NEAR(cosine(a, a), 1.0f, 1e-5f);
  EXPECT_GT(cosine(a, b), 0.3f);
  EXPECT_LT(std::abs(cosine(a, c)), 0.15f);
  EXPECT_GT(cosine(a, b), cosine(a, c) + 0.2f);
  auto empty = *embedder.embed("  ...  ");
  EXPECT_EQ(cosine(empty, empty), 0.0f);
}

TEST(WorkingMemoryTest, EvictsLeastRecentlyUsedAndExpiresAfterTtl) {
  WorkingMemory working(2, /*ttl_seconds=*/10);
  auto record = [](std::string id) {
    MemoryRecord r;
    r.id = std::move(id);
    return r;
  };
  working.put(record("a"), {1, 0}, 100);
  working.put(record("b"), {0, 1}, 101);
  ASSERT_NE(working.touch("a", 102), nullptr);  // a is now the most recent
  working.put(record("c"), {0.6f, 0.8f}, 103);
  EXPECT_TRUE(working.contains("a", 103));
  EXPECT_FALSE(working.contains("b", 103));
  auto hits = working.search({1, 0}, 1, 104);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].second->record.id, "a");
  EXPECT_EQ(working.expire(112.5), 1u);  // a used at 102 lives; c from 103 too
  EXPECT_EQ(working.expire(114), 1u);
  EXPECT_EQ(working.size(), 0u);
}

TEST(ImportanceTest, ScoresCuesFactsAndTypes) {
  const Json none = Json::object();
  const double chatter = score_importance("ok thanks", MemoryType::kEpisodic, none);
  const double fact =
      score_importance("Remember: the staging database listens on port 5433, always use it",
                       MemoryType::kSemantic, none);
  EXPECT_LT(chatter, 0.3);
  EXPECT_GE(fact, 0.7);
  EXPECT_EQ(score_importance("x", MemoryType::kEpisodic, Json{{"pinned", true}}), 1.0);
}

TEST(VectorIndexTest, RefusesAnotherEmbedderAndDetectsDamage) {
  TempDir dir;
  const fs::path file = dir.path() / "index.hnsw";
  HashingEmbedder embedder(64);
  VectorIndex index("hashing-v1", 64, {});
  for (uint64_t i = 1; i <= 50; ++i) {
    auto v = *embedder.embed(cat("memory number ", i, " about topic ", i % 7));
    ASSERT_TRUE(index.add(i, v.data()).ok());
  }
  index.remove(3);
  EXPECT_FALSE(index.contains(3));
  EXPECT_EQ(index.size(), 49u);
  ASSERT_TRUE(index.save(file, 42).ok());

  int64_t position = 0;
  auto loaded = VectorIndex::load(file, "hashing-v1", 64, {}, &position);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(position, 42);
  EXPECT_EQ((*loaded)->size(), 49u);
  auto q = *embedder.embed("memory number 17 about topic 3");
  EXPECT_EQ((*loaded)->search(q.data(), 1).at(0).second, 17u);

  auto other = VectorIndex::load(file, "openai:text-embedding-3-small", 64, {}, &position);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(message_of(other.status())), HasSubstr("lotus memory reindex"));
  auto wrong_dimension = VectorIndex::load(file, "hashing-v1", 384, {}, &position);
  EXPECT_EQ(wrong_dimension.status().code(), absl::StatusCode::kFailedPrecondition);

  fs::resize_file(file, fs::file_size(file) / 2);
  EXPECT_EQ(VectorIndex::load(file, "hashing-v1", 64, {}, &position).status().code(),
            absl::StatusCode::kDataLoss);
  fs::remove(file);
  EXPECT_EQ(VectorIndex::load(file, "hashing-v1", 64, {}, &position).status().code(),
            absl::StatusCode::kDataLoss);
  fs::remove(VectorIndex::meta_file(file));
  EXPECT_EQ(VectorIndex::load(file, "hashing-v1", 64, {}, &position).status().code(),
            absl::StatusCode::kNotFound);
}

class EmbeddedMemoryTest : public ::testing::Test {
 protected:
  EmbeddedMemoryOptions options() {
    EmbeddedMemoryOptions o;
    o.dir = dir_.path() / "memory";
    o.clock = [this] { return clock_; };
    return o;
  }
  std::unique_ptr<EmbeddedMemory> open(EmbeddedMemoryOptions o) {
    auto store = EmbeddedMemory::open(std::move(o));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }
  std::unique_ptr<EmbeddedMemory> open() { return open(options()); }

  static std::vector<std::string> contents(const std::vector<RecallHit>& hits) {
    std::vector<std::string> out;
    for (const auto& h : hits) out.push_back(h.record.content);
    return out;
  }
  static std::string top(Result<std::vector<RecallHit>> hits) {
    if (!hits.ok()) return cat("error: ", message_of(hits.status()));
    return hits->empty() ? "(nothing)" : hits->front().record.content;
  }

  void store_corpus(EmbeddedMemory& store) {
    for (const char* text : {
             "The deployment script scripts/deploy.sh restarts the web server",
             "Alice prefers dark mode in every editor",
             "Grandmother's apple pie recipe uses cinnamon and nutmeg",
             "The quarterly report is due on the first Monday of the month",
             "Unit tests run with ctest from the build directory",
             "The cat knocked a glass of water off the kitchen table",
             "Our VPN gateway is called zanzibar and lives in Frankfurt",
         }) {
      ASSERT_TRUE(store.remember(text).ok());
      clock_ += 1;
    }
  }

  TempDir dir_;
  double clock_ = 1'700'000'000.0;
};

TEST_F(EmbeddedMemoryTest, RecallsByMeaningAndByKeyword) {
  auto store = open();
  EXPECT_EQ(store->index_rebuild_reason(), "") << "a new store has nothing to rebuild";
  store_corpus(*store);
  EXPECT_THAT(top(store->recall("how do I deploy and restart the server", 3, {})),
              HasSubstr("deploy.sh"));
  EXPECT_THAT(top(store->recall("which editor theme does alice like", 3, {})),
              HasSubstr("dark mode"));
  EXPECT_THAT(top(store->recall("pie recipes", 3, {})), HasSubstr("apple pie"));
  // A word that appears once, found by keyword search even among near misses.
  auto hits = store->recall("zanzibar", 3, {});
  ASSERT_TRUE(hits.ok());
  ASSERT_FALSE(hits->empty());
  EXPECT_THAT(hits->front().record.content, HasSubstr("VPN gateway"));
  EXPECT_TRUE(hits->front().keyword_match);
  // Unrelated queries find nothing rather than noise.
  auto nothing = store->recall("quantum chromodynamics", 3, {});
  ASSERT_TRUE(nothing.ok());
  EXPECT_TRUE(nothing->empty()) << ::testing::PrintToString(contents(*nothing));
}

TEST_F(EmbeddedMemoryTest, ImportantMemoriesGoLongTermAndRankHigher) {
  auto store = open();
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
  auto stats = store->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)["tiers"]["short_term"], 1);
  EXPECT_EQ((*stats)["tiers"]["long_term"], 1);
  EXPECT_EQ((*stats)["index"]["vectors"], 1);
}

TEST_F(EmbeddedMemoryTest, FiltersByTypeModuleCollectionAndTime) {
  auto store = open();
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
  auto parsed = memory_filter_from_json(Json{{"types", {"semantic"}}, {"module", "x"}});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->types, std::vector<MemoryType>{MemoryType::kSemantic});
  EXPECT_THAT(std::string(message_of(memory_filter_from_json(Json{{"kind", 1}}).status())),
              HasSubstr("filter.kind"));
}

TEST_F(EmbeddedMemoryTest, EverythingSurvivesARestart) {
  std::string long_id, short_id;
  {
    auto store = open();
    store_corpus(*store);
    long_id = store
                  ->remember("Always back up /etc before upgrades", MemoryType::kProcedural,
                             Json{{"source", "user"}}, 0.95)
                  ->id;
    short_id = store->remember("lunch was pasta")->id;
  }
  auto store = open();
  EXPECT_TRUE(store->index_rebuild_reason().empty()) << store->index_rebuild_reason();
  auto hits = store->recall("backup etc before upgrading", 3, {});
  ASSERT_TRUE(hits.ok());
  ASSERT_FALSE(hits->empty());
  EXPECT_EQ(hits->front().record.id, long_id);
  EXPECT_EQ(hits->front().record.metadata["source"], "user");
  EXPECT_FALSE(hits->front().in_working_memory);  // working memory does not survive
  EXPECT_THAT(top(store->recall("pasta for lunch", 3, {})), "lunch was pasta");
  EXPECT_THAT(top(store->recall("zanzibar", 1, {})), HasSubstr("VPN"));
  EXPECT_EQ(store->get(short_id)->content, "lunch was pasta");
}

TEST_F(EmbeddedMemoryTest, AKilledWriterLosesNothingItAcknowledged) {
  { auto store = open(); }  // an index file exists, so the child must replay the journal
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = EmbeddedMemory::open(options());
    if (!store.ok()) _exit(2);
    for (int i = 0; i < 200; ++i) {
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
  auto stats = *store->stats();
  EXPECT_EQ(stats["tiers"]["long_term"], 100);
  EXPECT_EQ(stats["tiers"]["short_term"], 100);
  EXPECT_EQ(stats["index"]["vectors"], 100) << "the journal was replayed into the index";
  EXPECT_THAT(top(store->recall("burst memory 42 mentions kumquat 42", 1, {})),
              "burst memory 42 mentions kumquat 42");
  EXPECT_THAT(top(store->recall("burst memory 43 mentions kumquat 43", 1, {})),
              "burst memory 43 mentions kumquat 43");
}

TEST_F(EmbeddedMemoryTest, ADamagedOrMissingIndexIsRebuiltFromTheDatabase) {
  std::vector<std::string> progress;
  {
    auto store = open();
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(
          store->remember(cat("fact ", i, " about planet ", i * 7), MemoryType::kSemantic, {}, 0.8)
              .ok());
    }
  }
  const fs::path index = dir_.path() / "memory" / "index.hnsw";
  ASSERT_TRUE(fs::exists(index));
  {
    std::fstream f(index, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.write("garbage garbage garbage", 23);
  }
  auto o = options();
  o.progress = [&](std::string_view what, size_t done, size_t total) {
    progress.push_back(cat(what, " ", done, "/", total));
  };
  {
    auto store = open(o);
    EXPECT_THAT(store->index_rebuild_reason(), HasSubstr("checksum"));
    EXPECT_THAT(progress, ::testing::Contains("rebuilding memory index 30/30"));
    EXPECT_EQ(top(store->recall("fact 12 about planet 84", 1, {})), "fact 12 about planet 84");
  }
  fs::remove(index);
  auto store = open(o);
  EXPECT_THAT(store->index_rebuild_reason(), HasSubstr("incomplete"));
  EXPECT_EQ((*store->stats())["index"]["vectors"], 30);
}

TEST_F(EmbeddedMemoryTest, AnotherEmbedderIsRefusedUntilReindexed) {
  {
    auto store = open();
    store_corpus(*store);
    ASSERT_TRUE(store->remember("pinned fact about kumquats", MemoryType::kSemantic, {}, 0.9).ok());
  }
  auto o = options();
  o.embedder = std::make_shared<HashingEmbedder>(128);
  auto refused = EmbeddedMemory::open(o);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(message_of(refused.status())), HasSubstr("lotus memory reindex"));
  EXPECT_THAT(std::string(message_of(refused.status())), HasSubstr("dimension 384"));

  o.reindex = true;
  auto store = open(o);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(top(store->recall("kumquats", 1, {})), "pinned fact about kumquats");
  EXPECT_EQ((*store->stats())["embedder"]["dimension"], 128);
  store.reset();
  o.reindex = false;
  EXPECT_NE(open(o), nullptr) << "after a reindex the new embedder opens normally";
}

TEST_F(EmbeddedMemoryTest, ForgetsByIdAndByFilterForGood) {
  std::string gone;
  {
    auto store = open();
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
  EXPECT_TRUE(store->recall("tangerine launch code", 5, {})->empty());
  EXPECT_EQ(store->get(gone).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store->stats())["index"]["vectors"], 0);
}

TEST_F(EmbeddedMemoryTest, ConsolidationPromotesArchivesAndSummarizes) {
  auto o = options();
  o.working_ttl_seconds = 600;
  auto store = open(o);
  auto keep = store->remember("We decided the API will use port 8080 for the gateway",
                              MemoryType::kSemantic);
  ASSERT_TRUE(keep.ok());
  EXPECT_EQ(keep->tier, MemoryTier::kShortTerm);
  EXPECT_GE(keep->importance, 0.5);
  auto recalled = store->remember("the coffee machine on floor two is broken");
  ASSERT_TRUE(recalled.ok());
  ASSERT_FALSE(store->recall("coffee machine broken", 1, {})->empty());
  ASSERT_FALSE(store->recall("is the coffee machine working", 1, {})->empty());
  std::vector<std::string> chatter;
  for (const char* text :
       {"user asked about the gateway timeout settings.",
        "user said the gateway timeout happens on large uploads.", "user said hello"}) {
    chatter.push_back(store->remember(text)->id);
  }
  clock_ += 60;
  auto early = store->consolidate();
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->promoted + early->archived, 0u) << "nothing is old enough yet";

  clock_ += 2 * 3600;
  auto report = store->consolidate();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->promoted, 2u);  // important, and recalled twice
  EXPECT_THAT(report->promoted_ids, ::testing::UnorderedElementsAre(keep->id, recalled->id));
  EXPECT_EQ(report->archived, 3u);
  EXPECT_EQ(report->working_expired, 5u);
  ASSERT_FALSE(report->summary_id.empty());
  auto summary = store->get(report->summary_id);
  ASSERT_TRUE(summary.ok());
  EXPECT_EQ(summary->type, MemoryType::kSemantic);
  EXPECT_EQ(summary->tier, MemoryTier::kLongTerm);
  EXPECT_THAT(summary->content, HasSubstr("gateway timeout"));
  EXPECT_EQ(summary->metadata["summarizes"], 3);
  EXPECT_EQ(to_json(*report)["archived"], 3);

  // Archived memories are still found by keyword.
  auto hits = store->recall("uploads", 5, {});
  ASSERT_TRUE(hits.ok());
  EXPECT_THAT(contents(*hits),
              ::testing::Contains("user said the gateway timeout happens on large uploads."));
  store.reset();
  auto again = open(o);
  auto stats = *again->stats();
  EXPECT_EQ(stats["tiers"]["long_term"], 3);
  EXPECT_EQ(stats["tiers"]["archived"], 3);
  EXPECT_EQ(stats["index"]["vectors"], 3);
  EXPECT_THAT(top(again->recall("which port does the API gateway use", 1, {})), HasSubstr("8080"));
}

TEST_F(EmbeddedMemoryTest, KeywordSearchSkipsWordsThatMatchTooMuch) {
  auto o = options();
  o.keyword_max_postings = 10;
  auto store = open(o);
  std::vector<MemoryInput> inputs;
  for (int i = 0; i < 30; ++i) inputs.push_back(input_of(cat("alpha report number ", i)));
  inputs.push_back(input_of("alpha zyzzyva sighting"));
  ASSERT_TRUE(store->remember_all(std::move(inputs)).ok());
  auto keyword_matches = [&](const std::string& query) {
    std::vector<std::string> out;
    auto hits = store->recall(query, 50, {});
    EXPECT_TRUE(hits.ok()) << hits.status();
    for (const auto& h : *hits) {
      if (h.keyword_match) out.push_back(h.record.content);
    }
    return out;
  };
  // "alpha" is in 31 memories, past the budget of 10: only zyzzyva is looked for.
  EXPECT_EQ(keyword_matches("alpha zyzzyva"), std::vector<std::string>{"alpha zyzzyva sighting"});
  EXPECT_TRUE(keyword_matches("alpha").empty()) << "nothing selective: no keyword search";
  EXPECT_EQ(top(store->recall("alpha", 1, {})).substr(0, 5), "alpha") << "meaning still finds it";

  // Counts follow forgetting, and survive reopening.
  MemoryFilter reports;
  reports.until = clock_ + 1;
  ASSERT_EQ(*store->forget(reports), 31u);
  ASSERT_TRUE(store->remember("alpha centauri is the nearest star system").ok());
  store.reset();
  store = open(o);
  EXPECT_EQ(keyword_matches("alpha"),
            std::vector<std::string>{"alpha centauri is the nearest star system"});
}

TEST_F(EmbeddedMemoryTest, ADatabaseWithoutTermCountsGetsThemAtOpen) {
  {
    auto store = open();
    store_corpus(*store);
  }
  // What schema 1 looked like: no counts.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_.path() / "memory" / "memory.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(db, "DROP TABLE term_stats; PRAGMA user_version=1;", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(db);
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto hits = store->recall("zanzibar", 1, {});
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_TRUE(hits->front().keyword_match);
}

}  // namespace
}  // namespace lotus::memory
