// What both memory profiles decide the same way, whatever holds the records:
// checking and scoring new memories, embedding them, fusing the meaning and
// keyword rankings into one scored list, and the extractive summary that
// consolidation stores for what it archives. EmbeddedMemory (SQLite) and
// ServerMemory (Redis + PostgreSQL) keep only their storage code.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "lotus/memory.h"
#include "memory/embedded_memory.h"

namespace lotus::memory {

// Checks `inputs` and turns them into records: id, importance (scored when
// not given), tier by options.long_term_threshold; created_at is left to the
// store. `metadata_texts` receives each record's metadata as JSON text.
Result<std::vector<MemoryRecord>> prepare_records(std::vector<MemoryInput> inputs,
                                                  const EmbeddedMemoryOptions& options,
                                                  std::vector<std::string>* metadata_texts);

// One vector per text from `embedder`, checked for count and dimension.
Result<std::vector<std::vector<float>>> embed_checked(Embedder& embedder,
                                                      const std::vector<std::string>& texts);

// A stored memory as the stores read it back; `key` is the store's row key
// (the vector index label).
struct StoredMemory {
  int64_t key = 0;
  MemoryRecord record;
  int64_t recalls = 0;
  std::vector<float> vector;
};

// The meaning ranking of a recall: short-term vectors compared exhaustively,
// long-term ones searched in `index`, those at least `min_similarity`
// similar, best first, `candidates` at most.
class VectorIndex;
std::vector<std::pair<float, int64_t>> rank_by_meaning(
    const std::vector<float>& query,
    const std::unordered_map<int64_t, std::vector<float>>& short_term, const VectorIndex& index,
    size_t candidates, double min_similarity);

// The keys of both rankings, each once, in ascending order (to fetch rows).
std::vector<int64_t> keys_of(const std::vector<std::pair<float, int64_t>>& by_meaning,
                             const std::vector<int64_t>& by_words);

// Reciprocal rank fusion of the meaning ranking (similarity, key; best
// first) and the keyword ranking (keys, best first), counting only keys
// present in `rows` (those the filter kept), scored by relevance, importance
// and recency, best `limit` first. `in_working_memory(id)` marks (and
// refreshes) what working memory holds. The records are moved out of `rows`.
std::vector<RecallHit> fuse_rankings(const std::vector<std::pair<float, int64_t>>& by_meaning,
                                     const std::vector<int64_t>& by_words,
                                     std::unordered_map<int64_t, StoredMemory*>& rows,
                                     const EmbeddedMemoryOptions& options, double now,
                                     const std::function<bool(const std::string&)>& in_working,
                                     size_t limit);

// Whether consolidation keeps a due short-term memory (long-term) or
// archives it.
bool worth_promoting(const StoredMemory& row, const EmbeddedMemoryOptions& options);

// The summary consolidation stores for `archived` (their vectors set): an
// extractive one, the sentences nearest the batch's centroid weighted by
// importance. Empty id when there is nothing to summarize.
MemoryRecord summary_of(const std::vector<StoredMemory>& archived, Embedder& embedder, double now);

}  // namespace lotus::memory
