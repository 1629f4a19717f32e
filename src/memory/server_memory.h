// ServerMemory: the MemoryStore of the server profile, shared by every node
// that points at the same Redis and PostgreSQL.
//
//   L1 working      Redis: a hash per memory (<prefix>working:<id>) with a TTL,
//                   and a sorted set <prefix>working of last use, for LRU
//                   capacity and expiry by the store's clock
//   L2 short-term   Redis Stream <prefix>short_term, one entry per short-term
//                   memory in arrival order: what consolidation works through
//   L3 long-term    on every node: a local VectorIndex (index.hnsw in `dir`) of
//                   the long-term vectors; keyword search is PostgreSQL
//                   full-text search (a GIN-indexed tsvector, ranked by ts_rank)
//   L4 persistent   PostgreSQL: lotus_memories (every record, its vector and
//                   tier) and lotus_memory_changes, a log of every change to
//                   what the index or short-term set holds
//
// PostgreSQL is the source of truth and what acknowledges a store. Each node
// follows lotus_memory_changes from its high-water mark (saved with the index
// file): sync() applies what other nodes did, and runs on every recall, on
// consolidation and when the memory module sees a `memory_updates` event. A
// missing, damaged or stale index (its vector count differs from PostgreSQL's
// long-term count after catching up) is rebuilt from PostgreSQL; the short-term
// stream is reconciled with PostgreSQL at open and before consolidating. Redis
// writes that fail after PostgreSQL committed do not fail the store: L1 is a
// cache and L2 is reconciled.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "lotus/memory.h"
#include "memory/embedded_memory.h"
#include "memory/vector_index.h"

namespace lotus {
class IoThread;
class RedisConnection;
struct RedisReply;
}  // namespace lotus

namespace lotus::memory {

class PgConnection;
struct StoredMemory;

struct ServerMemoryOptions {
  std::string postgres_url;                  // postgresql://user[:password]@host[:port]/database
  std::string redis_url;                     // redis://[user[:password]@]host[:port][/db]
  std::string key_prefix = "lotus:memory:";  // Redis keys
  // The node's local part and every policy setting: `dir` holds index.hnsw;
  // embedder, tiers, ranking, clock and progress as in the embedded profile.
  // `reindex` rebuilds the index from PostgreSQL; `reembed` is not supported.
  EmbeddedMemoryOptions local;
};

class ServerMemory final : public MemoryStore {
 public:
  static Result<std::unique_ptr<ServerMemory>> open(ServerMemoryOptions options);
  ~ServerMemory() override;
  ServerMemory(const ServerMemory&) = delete;
  ServerMemory& operator=(const ServerMemory&) = delete;

  using MemoryStore::remember;
  Result<MemoryRecord> remember(MemoryInput input) override;
  Result<std::vector<MemoryRecord>> remember_all(std::vector<MemoryInput> inputs);
  Result<std::vector<RecallHit>> recall(std::string_view query, size_t limit,
                                        const MemoryFilter& filter) override;
  Result<MemoryRecord> get(std::string_view id) override;
  Result<ConsolidationReport> consolidate() override;
  Result<Relation> relate(Relation relation) override;
  Result<std::vector<Relation>> relations(const RelationQuery& query) override;
  Result<size_t> unrelate(std::string_view id) override;
  Result<Json> stats() override;
  Status sync() override;

  // Writes the index file if it lags what the node applied.
  Status save_index();

  std::filesystem::path index_file() const { return options_.local.dir / "index.hnsw"; }
  // Why the index was rebuilt at open ("" when the file was loaded).
  const std::string& index_rebuild_reason() const { return rebuild_reason_; }

 protected:
  Result<size_t> forget_matching(const MemoryFilter& filter) override;

 private:
  using Row = StoredMemory;
  struct StreamEntry;

  explicit ServerMemory(ServerMemoryOptions options);

  double now() const { return options_.local.clock(); }
  Status create_schema();
  Status check_embedder();
  Status load_or_rebuild_index();
  Status rebuild_index();
  Status load_short_term();
  Status sync_locked();
  // Brings the node's view of memory `seq` to its tier now (absent: gone).
  void apply(int64_t seq, const std::string& tier, std::vector<float> vector);
  Status save_index_locked();
  Result<int64_t> high_water_mark();
  Result<int64_t> long_term_count();

  Result<std::vector<Row>> fetch_rows(const std::vector<int64_t>& seqs, const MemoryFilter& filter,
                                      bool with_vectors);
  Result<std::vector<int64_t>> keyword_search(std::string_view query, size_t k);

  // Redis.
  Result<RedisReply> redis(std::vector<std::string> args);
  Result<std::vector<RedisReply>> redis_pipeline(const std::vector<std::vector<std::string>>& cmds);
  std::string key(std::string_view name) const { return options_.key_prefix + std::string(name); }
  void put_working(const std::vector<MemoryRecord>& records, double t);
  void touch_working(std::vector<RecallHit>& hits, double t);
  void erase_working(const std::vector<std::string>& ids);
  size_t expire_working(double t);
  // Makes the short-term stream hold exactly PostgreSQL's short-term set;
  // returns its entries, oldest first.
  Result<std::vector<StreamEntry>> reconcile_stream();

  ServerMemoryOptions options_;
  std::mutex mutex_;
  std::unique_ptr<PgConnection> pg_;
  std::unique_ptr<IoThread> io_;
  std::shared_ptr<RedisConnection> redis_;
  std::unique_ptr<VectorIndex> index_;
  std::unordered_map<int64_t, std::vector<float>> short_term_;
  int64_t applied_ = 0;    // the last change applied to index_ and short_term_
  int64_t saved_at_ = -1;  // the change the index file reflects
  std::string rebuild_reason_;
};

}  // namespace lotus::memory
