// VectorIndex: L3's approximate nearest-neighbour index (hnswlib HNSW over
// inner product of L2-normalized vectors, i.e. cosine), saved to a file.
//
// The index is a cache: SQLite holds every vector, so a missing, truncated or
// corrupt file is rebuilt, never trusted. Beside `index.hnsw` a small
// `index.hnsw.meta` (JSON) records the embedder name and dimension the vectors
// came from, the journal position the file reflects, its size and a checksum;
// load() verifies all of it before hnswlib reads a byte, since hnswlib trusts
// the sizes in the file it loads. Not thread-safe; its owner locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lotus/status.h"

namespace hnswlib {
template <typename T>
class HierarchicalNSW;
class InnerProductSpace;
}  // namespace hnswlib

namespace lotus::memory {

struct VectorIndexOptions {
  // Graph degree: more = better recall, more memory and slower inserts. 24
  // with ef_search 400 gives recall@10 0.975 at 100k (16 gave 0.949;
  // bench/memory_bench.cc).
  size_t m = 24;
  size_t ef_construction = 200;  // build-time beam width
  // Query-time beam width (raised to k). 0: grows with the index
  // (auto_ef_search), since at a fixed beam recall falls as the collection
  // grows: 400 gives recall@10 0.975 at 100k but 0.875 at 1M, 2000 gives 0.967.
  size_t ef_search = 0;
};

// The beam width an index of `count` vectors searches with by default:
// max(400, 2 * sqrt(count)) - 400 up to 40k vectors, 632 at 100k, 2000 at 1M.
size_t auto_ef_search(size_t count);

class VectorIndex {
 public:
  VectorIndex(std::string embedder, size_t dimension, VectorIndexOptions options);
  ~VectorIndex();
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  // Loads `file` after checking its meta file. Errors: NotFound when there is
  // no index yet; DataLoss when it is incomplete or damaged (rebuild it);
  // FailedPrecondition when it was built by another embedder or dimension
  // (the message says to run `lotus memory reindex`). On success
  // `journal_position` receives the position saved with it.
  static Result<std::unique_ptr<VectorIndex>> load(const std::filesystem::path& file,
                                                   const std::string& embedder, size_t dimension,
                                                   VectorIndexOptions options,
                                                   int64_t* journal_position);
  // Writes the index and its meta beside `file` and renames them into place.
  Status save(const std::filesystem::path& file, int64_t journal_position) const;

  // Adds or replaces the vector under `label`, growing the index as needed.
  Status add(uint64_t label, const float* vector);
  // Adds `vectors` (each `dimension()` floats) under `labels` on `threads`
  // threads at once (0: one per core): hnswlib's inserts run in parallel
  // while the capacity stays put, so room for all of them is made first.
  // For rebuilds and imports.
  Status add_many(const std::vector<uint64_t>& labels,
                  const std::vector<std::vector<float>>& vectors, size_t threads = 0);
  // Hides `label` from searches; absent labels are ignored.
  void remove(uint64_t label);
  bool contains(uint64_t label) const;
  // The `k` nearest live labels with their cosine similarity, best first.
  std::vector<std::pair<float, uint64_t>> search(const float* query, size_t k) const;

  size_t size() const;     // live vectors
  size_t deleted() const;  // removed but still taking room until a rebuild
  size_t dimension() const { return dimension_; }
  const std::string& embedder() const { return embedder_; }
  // The beam width searches use now: the configured one, or auto_ef_search.
  size_t effective_ef_search() const;

  static std::filesystem::path meta_file(const std::filesystem::path& file);

 private:
  std::string embedder_;
  size_t dimension_;
  VectorIndexOptions options_;
  std::unique_ptr<hnswlib::InnerProductSpace> space_;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw_;
};

}  // namespace lotus::memory
