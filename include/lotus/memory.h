// Memory: what LOTUS remembers, and how it finds it again.
//
// A MemoryStore keeps MemoryRecords in tiers (working, short-term, long-term,
// persistent) and answers recall() by meaning (embeddings) and by words
// (keyword search), ranked by relevance, recency and importance; it also
// keeps facts as relations between named entities. Modules reach memory over
// the bus (`memory.store`, `memory.recall`, `memory.forget`,
// `memory.consolidate`, `memory.relate`, `memory.relations`,
// `memory.unrelate`; tools `remember`, `recall`, `relate`, `relations`); this
// header is the
// shape of those records and the interface a backend (embedded: SQLite +
// HNSW; server: Redis + PostgreSQL) implements. Per-module key/value state is
// ModuleContext::get_state/set_state (lotus/module.h).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lotus/event.h"
#include "lotus/status.h"

namespace lotus {

enum class MemoryType {
  kEpisodic,     // what happened: conversations, actions, observations
  kSemantic,     // what is true: facts, summaries, knowledge
  kProcedural,   // how to do things: learned patterns that worked
  kModuleState,  // a module's own remembered state
};

std::string_view to_string(MemoryType type);
// Accepts "episodic", "semantic", "procedural", "module_state".
Result<MemoryType> parse_memory_type(std::string_view text);

// Where a record lives now. Every record is persisted on store (that is what
// acknowledges it); the tier decides how it is searched.
enum class MemoryTier {
  kShortTerm,  // recent, searched exhaustively, waits for consolidation
  kLongTerm,   // in the vector index and keyword index
  kArchived,   // consolidated away: kept, found by keyword only
};

std::string_view to_string(MemoryTier tier);
Result<MemoryTier> parse_memory_tier(std::string_view text);

struct MemoryRecord {
  std::string id;  // UUIDv7 text, time-ordered
  std::string content;
  MemoryType type = MemoryType::kEpisodic;
  Json metadata = Json::object();
  double importance = 0.0;  // [0, 1]
  double created_at = 0.0;  // seconds since the Unix epoch
  std::string module;       // who stored it
  std::string collection;   // a module's vector collection; "" is the default one
  MemoryTier tier = MemoryTier::kShortTerm;
};

Json to_json(const MemoryRecord& record);

// What remember() stores. Leave importance unset to have it scored.
struct MemoryInput {
  std::string content;
  MemoryType type = MemoryType::kEpisodic;
  Json metadata = Json::object();
  std::optional<double> importance;
  std::string module;
  std::string collection;
};

// Narrows recall() and forget(). Empty fields do not filter.
struct MemoryFilter {
  std::vector<std::string> ids;
  std::vector<MemoryType> types;
  std::string module;
  std::string collection;
  double since = 0.0;  // created_at >= since, when > 0
  double until = 0.0;  // created_at < until, when > 0
  double min_importance = 0.0;

  bool empty() const;
};

// Reads a filter from JSON ({"types": ["semantic"], "module": "...", ...});
// the error names the field.
Result<MemoryFilter> memory_filter_from_json(const Json& json);

struct RecallHit {
  MemoryRecord record;
  double score = 0.0;       // what the hits are sorted by
  double relevance = 0.0;   // fused rank of the meaning and keyword rankings, [0, 1]
  double similarity = 0.0;  // cosine similarity to the query, when it was a vector candidate
  bool keyword_match = false;
  bool in_working_memory = false;
};

Json to_json(const RecallHit& hit);

struct ConsolidationReport {
  size_t promoted = 0;         // short-term records moved into long-term memory
  size_t archived = 0;         // short-term records kept for keyword search only
  size_t working_expired = 0;  // working-memory entries past their TTL
  std::string summary_id;      // the summary stored for the archived records, if any
  bool index_saved = false;
  std::vector<std::string> promoted_ids;
  std::vector<std::string> archived_ids;
};

Json to_json(const ConsolidationReport& report);

// A fact as an edge of a graph (L4): subject -predicate-> object, between
// entities known by name ("Alice" -works_at-> "Acme"). Entities come into
// being when a relation first names them. Storing the same triple again
// updates its confidence and metadata and keeps its id.
struct Relation {
  std::string id;  // UUIDv7 text
  std::string subject;
  std::string predicate;
  std::string object;
  double confidence = 1.0;  // [0, 1]
  Json metadata = Json::object();
  double created_at = 0.0;
  std::string module;  // who stated it first
};

Json to_json(const Relation& relation);

// Selects relations; empty fields match anything. `entity` matches either end.
struct RelationQuery {
  std::string subject;
  std::string predicate;
  std::string object;
  std::string entity;
  size_t limit = 100;
};

// Turns text into a vector. Implementations must be deterministic for a given
// name() and dimension(): the stored vectors and the index are only valid for
// the embedder that made them, and stores refuse to mix embedders.
class Embedder {
 public:
  virtual ~Embedder() = default;
  // Identifies the model, e.g. "hashing-v1" or "openai:text-embedding-3-small".
  virtual std::string name() const = 0;
  virtual size_t dimension() const = 0;
  // An L2-normalized vector of dimension() floats.
  virtual Result<std::vector<float>> embed(std::string_view text) = 0;
  // One vector per text, in order. Provider embedders send them in batched
  // requests; the default embeds them one by one.
  virtual Result<std::vector<std::vector<float>>> embed_batch(
      const std::vector<std::string>& texts) {
    std::vector<std::vector<float>> out;
    out.reserve(texts.size());
    for (const std::string& text : texts) {
      auto v = embed(text);
      if (!v.ok()) return v.status();
      out.push_back(std::move(*v));
    }
    return out;
  }
};

// Ranking: score = w_relevance * relevance + w_importance * importance +
// w_recency * recency, where recency halves every `recency_half_life`.
// Implementations are thread-safe.
class MemoryStore {
 public:
  virtual ~MemoryStore() = default;

  // Stores a memory; when this returns OK the memory survives a crash.
  virtual Result<MemoryRecord> remember(MemoryInput input) = 0;
  Result<MemoryRecord> remember(std::string content, MemoryType type = MemoryType::kEpisodic,
                                Json metadata = Json::object(),
                                std::optional<double> importance = std::nullopt) {
    MemoryInput input;
    input.content = std::move(content);
    input.type = type;
    input.metadata = std::move(metadata);
    input.importance = importance;
    return remember(std::move(input));
  }

  // Up to `limit` memories relevant to `query`, best first.
  virtual Result<std::vector<RecallHit>> recall(std::string_view query, size_t limit,
                                                const MemoryFilter& filter) = 0;
  // One record by id; NotFound if there is none.
  virtual Result<MemoryRecord> get(std::string_view id) = 0;

  // Removes the memory with this id (0 or 1 removed), or every memory the
  // filter matches; an empty filter is refused. Returns how many went.
  Result<size_t> forget(std::string_view id) {
    MemoryFilter filter;
    filter.ids.emplace_back(id);
    return forget(filter);
  }
  Result<size_t> forget(const MemoryFilter& filter) {
    if (filter.empty()) {
      return absl::InvalidArgumentError(
          "memory: forget needs an id or a filter (refusing to forget everything)");
    }
    return forget_matching(filter);
  }

  // Moves important short-term memories into long-term memory, archives the
  // rest with a summary, expires working memory and saves the index once
  // enough changed.
  virtual Result<ConsolidationReport> consolidate() = 0;

  // Facts: relate() stores (or updates) a relation, relations() finds them,
  // oldest first, unrelate() removes one by id (0 or 1 removed).
  virtual Result<Relation> relate(Relation relation) = 0;
  virtual Result<std::vector<Relation>> relations(const RelationQuery& query) = 0;
  virtual Result<size_t> unrelate(std::string_view id) = 0;

  // Counts per tier, index figures, embedder; for `lotus memory stats`.
  virtual Result<Json> stats() = 0;

  // Catches up with what other nodes sharing the store changed (the server
  // profile; recall does it too). A store with one writer has nothing to do.
  virtual Status sync() { return absl::OkStatus(); }

 protected:
  // forget() with a filter that is not empty.
  virtual Result<size_t> forget_matching(const MemoryFilter& filter) = 0;
};

}  // namespace lotus
