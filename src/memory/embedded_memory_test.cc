// The pieces memory is made of (embedder, working memory, importance, the
// vector index, filters) and what only the embedded store has: a foreign
// index, keyword search limits, an old database. What both profiles share is
// tested on both in memory_store_test.cc.
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
#include "testing/memory_test_support.h"
#include "testing/temp_dir.h"

namespace lotus::memory {
namespace {

using testing::contents;
using testing::everyday_corpus;
using testing::top;

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

TEST(VectorIndexTest, AddsManyOnSeveralThreadsAsOneByOne) {
  HashingEmbedder embedder(64);
  std::vector<uint64_t> labels;
  std::vector<std::vector<float>> vectors;
  for (uint64_t i = 1; i <= 3000; ++i) {
    labels.push_back(i);
    vectors.push_back(*embedder.embed(cat("record ", i, " of batch ", i % 13, " word", i * 7919)));
  }
  VectorIndex index("hashing-v1", 64, {});
  ASSERT_TRUE(index.add(9999, vectors[0].data()).ok());  // not empty before, and grown past 1024
  ASSERT_TRUE(index.add_many(labels, vectors, 4).ok());
  EXPECT_EQ(index.size(), 3001u);
  size_t found_itself = 0;
  for (size_t i = 1; i < vectors.size(); i += 97) {
    const auto hits = index.search(vectors[i].data(), 1);
    ASSERT_EQ(hits.size(), 1u);
    found_itself += hits[0].second == labels[i] ? 1 : 0;
  }
  EXPECT_EQ(found_itself, (vectors.size() - 1 + 96) / 97) << "each vector is its own nearest";

  EXPECT_EQ(index.add_many({1, 2}, {vectors[0]}, 2).code(), absl::StatusCode::kInvalidArgument);
}

// At a fixed beam, recall falls as the index grows (memory_bench: 400 gives
// recall@10 0.975 at 100k but 0.875 at 1M): by default the beam grows too.
TEST(VectorIndexTest, TheDefaultBeamGrowsWithTheIndexAndAConfiguredOneStays) {
  EXPECT_EQ(auto_ef_search(0), 400u);
  EXPECT_EQ(auto_ef_search(40'000), 400u);
  EXPECT_EQ(auto_ef_search(100'000), 632u);
  EXPECT_EQ(auto_ef_search(1'000'000), 2000u);
  VectorIndex automatic("e", 4, VectorIndexOptions());
  EXPECT_EQ(automatic.effective_ef_search(), 400u);
  VectorIndexOptions fixed;
  fixed.ef_search = 64;
  VectorIndex configured("e", 4, fixed);
  EXPECT_EQ(configured.effective_ef_search(), 64u);
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

TEST(MemoryFilterTest, ReadsJsonAndNamesTheFieldThatIsWrong) {
  auto parsed = memory_filter_from_json(Json{{"types", {"semantic"}}, {"module", "x"}});
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->types, std::vector<MemoryType>{MemoryType::kSemantic});
  EXPECT_EQ(parsed->module, "x");
  EXPECT_THAT(std::string(message_of(memory_filter_from_json(Json{{"kind", 1}}).status())),
              HasSubstr("filter.kind"));
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

  void store_corpus(EmbeddedMemory& store) {
    for (const std::string& text : everyday_corpus()) {
      ASSERT_TRUE(store.remember(text).ok());
      clock_ += 1;
    }
  }

  TempDir dir_;
  double clock_ = 1'700'000'000.0;
};

TEST_F(EmbeddedMemoryTest, ALargeImportIsIndexedWholeAndSurvivesARestart) {
  std::vector<MemoryInput> inputs;
  for (int i = 0; i < 300; ++i) {
    MemoryInput input;
    input.content = cat("imported note ", i, " on subject ", i * 31, " kept for later");
    input.type = MemoryType::kSemantic;
    input.importance = 0.9;  // long-term: straight into the index
    inputs.push_back(std::move(input));
  }
  {
    auto store = open();
    ASSERT_TRUE(store->remember_all(std::move(inputs)).ok());
    EXPECT_EQ((*store->stats())["index"]["vectors"], 300);
    EXPECT_EQ(top(store->recall("imported note 123 on subject 3813", 1, {})),
              "imported note 123 on subject 3813 kept for later");
  }
  auto store = open();
  EXPECT_EQ((*store->stats())["index"]["vectors"], 300);
  EXPECT_EQ(store->index_rebuild_reason(), "");
  EXPECT_EQ(top(store->recall("imported note 277 on subject 8587", 1, {})),
            "imported note 277 on subject 8587 kept for later");
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
