// EmbeddedMemory: the MemoryStore of the embedded profile, needing no server.
//
//   L1 working      WorkingMemory, in-process LRU with TTL
//   L2 short-term   rows of memory.db (SQLite, WAL) with tier short_term; their
//                   vectors are kept in memory and searched exhaustively
//   L3 long-term    VectorIndex (HNSW file index.hnsw) + SQLite FTS5, fused by
//                   reciprocal rank fusion
//   L4 persistent   memory.db: every record, its vector, tier and metadata;
//                   facts as entities and relations (memory/relations.h)
//
// SQLite is the source of truth and what acknowledges a store: remember()
// returns after its transaction commits, so the memory survives kill -9. The
// HNSW file is a cache: every change to the long-term set is also written to
// an index journal table in the same transaction, the file records the
// journal position it reflects, and open() replays the rest; a missing or
// damaged file is rebuilt from the stored vectors. Vectors are only valid for
// the embedder that made them: a database or index built by another embedder
// or dimension is refused until `lotus memory reindex` (open with
// `reindex = true`) re-embeds everything.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lotus/memory.h"
#include "memory/vector_index.h"
#include "memory/working_memory.h"

struct sqlite3;

namespace lotus::memory {

struct StoredMemory;

struct EmbeddedMemoryOptions {
  std::filesystem::path dir;           // holds memory.db and index.hnsw; created if needed
  std::shared_ptr<Embedder> embedder;  // default: HashingEmbedder(384)
  VectorIndexOptions index;

  size_t working_capacity = 256;
  double working_ttl_seconds = 600;
  // Short-term memories older than this are consolidated (promoted or
  // archived); so are the oldest beyond short_term_max.
  double short_term_seconds = 3600;
  size_t short_term_max = 5000;
  double long_term_threshold = 0.7;  // importance that goes to long-term memory at once
  double promote_threshold = 0.5;    // importance promoted at consolidation ...
  int promote_recalls = 2;           // ... or this many recalls

  // Ranking (see MemoryStore).
  double weight_relevance = 0.75;
  double weight_importance = 0.15;
  double weight_recency = 0.10;
  double recency_half_life_seconds = 7 * 24 * 3600.0;
  double min_similarity = 0.15;  // vector candidates below this are not relevant
  double rrf_k = 10;             // reciprocal rank fusion constant
  // Keyword search looks for the query's rarest words whose document counts
  // add up to at most this: ranking every row a common word matches is what
  // makes full-text search slow, and such words say little about relevance
  // (the vector side still sees them). A query of only common words skips
  // keyword search.
  size_t keyword_max_postings = 10000;

  // consolidate() saves the index file once this many index changes wait in
  // the journal (the store saves it on close regardless).
  size_t index_save_min_changes = 1000;

  // Rebuild the index from the stored vectors at open, re-embedding every
  // record first when they were made by another embedder (or `reembed`).
  bool reindex = false;
  bool reembed = false;
  // Seconds since the epoch; tests inject time.
  std::function<double()> clock;
  // Called while the index is rebuilt or records are re-embedded.
  std::function<void(std::string_view what, size_t done, size_t total)> progress;
};

class EmbeddedMemory final : public MemoryStore {
 public:
  static Result<std::unique_ptr<EmbeddedMemory>> open(EmbeddedMemoryOptions options);
  ~EmbeddedMemory() override;
  EmbeddedMemory(const EmbeddedMemory&) = delete;
  EmbeddedMemory& operator=(const EmbeddedMemory&) = delete;

  using MemoryStore::remember;
  Result<MemoryRecord> remember(MemoryInput input) override;
  // Stores many at once: one embedding batch, one transaction (a bulk
  // import). All or none are stored.
  Result<std::vector<MemoryRecord>> remember_all(std::vector<MemoryInput> inputs);
  Result<std::vector<RecallHit>> recall(std::string_view query, size_t limit,
                                        const MemoryFilter& filter) override;
  Result<MemoryRecord> get(std::string_view id) override;
  Result<ConsolidationReport> consolidate() override;
  Result<Relation> relate(Relation relation) override;
  Result<std::vector<Relation>> relations(const RelationQuery& query) override;
  Result<size_t> unrelate(std::string_view id) override;
  Result<Json> stats() override;

  // How many memories `filter` matches (an empty filter: all of them), and up
  // to `limit` of them, newest first: what a forget would remove.
  Result<size_t> count(const MemoryFilter& filter);
  Result<std::vector<MemoryRecord>> list(const MemoryFilter& filter, size_t limit);

  // Writes the index file if it lags the journal.
  Status save_index();

  std::filesystem::path database_file() const { return options_.dir / "memory.db"; }
  std::filesystem::path index_file() const { return options_.dir / "index.hnsw"; }
  // Why the index was rebuilt at open ("" when the file was loaded).
  const std::string& index_rebuild_reason() const { return rebuild_reason_; }

 protected:
  Result<size_t> forget_matching(const MemoryFilter& filter) override;

 private:
  using Row = StoredMemory;

  explicit EmbeddedMemory(EmbeddedMemoryOptions options);

  Status open_database();
  Status count_all_terms();
  Status check_embedder();
  // The embedder name and dimension memory.db records ("" when new).
  std::pair<std::string, std::string> stored_embedder();
  Status reembed_all();
  Status load_or_rebuild_index();
  Status rebuild_index();
  Status replay_journal(int64_t after);
  Status load_short_term();

  Status exec(const char* sql);
  Status sqlite_error(std::string_view action) const;
  double now() const { return options_.clock(); }
  // Rows by seq, filtered; the SQL and binding of `filter` live here.
  Result<std::vector<Row>> fetch_rows(const std::vector<int64_t>& seqs, const MemoryFilter& filter,
                                      bool with_vectors);
  // Seqs of up to `k` memories holding the query's rarest words, best first.
  Result<std::vector<int64_t>> keyword_search(std::string_view query, size_t k);
  Result<std::vector<int64_t>> matching_seqs(const MemoryFilter& filter);
  Result<size_t> forget_seqs(const std::vector<int64_t>& seqs);
  Status save_index_locked();

  EmbeddedMemoryOptions options_;
  std::mutex mutex_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<VectorIndex> index_;
  WorkingMemory working_;
  std::unordered_map<int64_t, std::vector<float>> short_term_;
  // Keyword scores by row key, kept between searches (zeroed again after
  // each): a hash map allocated a node for each of up to thousands of
  // postings per search.
  std::vector<double> keyword_scores_;
  std::string rebuild_reason_;
  bool index_dirty_ = false;
};

}  // namespace lotus::memory
