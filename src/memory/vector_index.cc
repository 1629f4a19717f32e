#include "memory/vector_index.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <mutex>
#include <system_error>
#include <thread>

#include <hnswlib/hnswlib.h>

#include "lotus/event.h"
#include "lotus/strings.h"

namespace lotus::memory {
namespace {

constexpr int kFormat = 1;
constexpr size_t kInitialCapacity = 1024;

// A fast 64-bit checksum of a whole file (not cryptographic: it detects
// truncation and damage, not tampering).
Result<std::pair<uint64_t, uint64_t>> checksum_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(cat("cannot read ", file.string()));
  std::vector<char> buffer(1 << 20);
  uint64_t h = 0x9e3779b97f4a7c15ull;
  uint64_t bytes = 0;
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto n = static_cast<size_t>(in.gcount());
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t word;
      std::memcpy(&word, buffer.data() + i, 8);
      h = (h ^ word) * 0x100000001b3ull;
      h ^= h >> 29;
    }
    for (; i < n; ++i) h = (h ^ static_cast<unsigned char>(buffer[i])) * 0x100000001b3ull;
    bytes += n;
  }
  return std::make_pair(h, bytes);
}

std::string reindex_hint(const std::filesystem::path& file) {
  return cat("; run `lotus memory reindex` to rebuild ", file.string(),
             " with the configured embedder (or configure the embedder it was built with)");
}

}  // namespace

VectorIndex::VectorIndex(std::string embedder, size_t dimension, VectorIndexOptions options)
    : embedder_(std::move(embedder)),
      dimension_(dimension),
      options_(options),
      space_(std::make_unique<hnswlib::InnerProductSpace>(dimension)),
      hnsw_(std::make_unique<hnswlib::HierarchicalNSW<float>>(space_.get(), kInitialCapacity,
                                                              options.m, options.ef_construction)) {
  hnsw_->setEf(effective_ef_search());
}

VectorIndex::~VectorIndex() = default;

std::filesystem::path VectorIndex::meta_file(const std::filesystem::path& file) {
  return std::filesystem::path(file.string() + ".meta");
}

Result<std::unique_ptr<VectorIndex>> VectorIndex::load(const std::filesystem::path& file,
                                                       const std::string& embedder,
                                                       size_t dimension, VectorIndexOptions options,
                                                       int64_t* journal_position) {
  std::error_code ec;
  const auto meta_path = meta_file(file);
  const bool has_index = std::filesystem::exists(file, ec);
  const bool has_meta = std::filesystem::exists(meta_path, ec);
  if (!has_index && !has_meta) return absl::NotFoundError(cat("no index at ", file.string()));
  if (!has_index || !has_meta) {
    return absl::DataLossError(cat("index ", file.string(), " is incomplete (",
                                   has_index ? meta_path.string() : file.string(), " is missing)"));
  }
  std::ifstream meta_in(meta_path);
  Json meta = Json::parse(meta_in, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object() || meta.value("format", 0) != kFormat ||
      !meta.contains("checksum") || !meta["checksum"].is_number_unsigned() ||
      !meta.contains("bytes") || !meta["bytes"].is_number_unsigned()) {
    return absl::DataLossError(cat("index metadata ", meta_path.string(), " is damaged"));
  }
  const std::string built_by = meta.value("embedder", "");
  const size_t built_dimension = meta.value("dimension", size_t{0});
  if (built_by != embedder || built_dimension != dimension) {
    return absl::FailedPreconditionError(
        cat("memory index ", file.string(), " was built by embedder \"", built_by, "\" (dimension ",
            built_dimension, ") but the configured embedder is \"", embedder, "\" (dimension ",
            dimension, ")", reindex_hint(file)));
  }
  auto sum = checksum_file(file);
  if (!sum.ok()) return absl::DataLossError(std::string(message_of(sum.status())));
  if (sum->first != meta["checksum"].get<uint64_t>() ||
      sum->second != meta["bytes"].get<uint64_t>()) {
    return absl::DataLossError(
        cat("index ", file.string(), " does not match its checksum (truncated or damaged)"));
  }
  auto index = std::make_unique<VectorIndex>(embedder, dimension, options);
  try {
    // hnswlib 0.6.2's loading constructor leaves num_deleted_ uninitialized
    // before loadIndex() counts into it; start it at zero ourselves.
    index->hnsw_ = std::make_unique<hnswlib::HierarchicalNSW<float>>(index->space_.get());
    index->hnsw_->num_deleted_ = 0;
    index->hnsw_->loadIndex(file.string(), index->space_.get(), 0);
    if (index->hnsw_->data_size_ != dimension * sizeof(float)) {
      return absl::DataLossError(cat("index ", file.string(), " holds vectors of another size"));
    }
    index->hnsw_->setEf(index->effective_ef_search());
  } catch (const std::exception& e) {
    // A half-loaded hnswlib object cannot be destroyed safely; leak it. The
    // checksum above makes this path all but unreachable.
    static_cast<void>(index->hnsw_.release());
    return absl::DataLossError(cat("index ", file.string(), " cannot be read: ", e.what()));
  }
  *journal_position = meta.value("journal_position", int64_t{0});
  return index;
}

Status VectorIndex::save(const std::filesystem::path& file, int64_t journal_position) const {
  const std::filesystem::path tmp(file.string() + ".tmp");
  const std::filesystem::path meta_tmp(meta_file(file).string() + ".tmp");
  try {
    hnsw_->saveIndex(tmp.string());
  } catch (const std::exception& e) {
    return absl::InternalError(cat("cannot save index ", tmp.string(), ": ", e.what()));
  }
  auto sum = checksum_file(tmp);
  if (!sum.ok()) return sum.status();
  Json meta = {{"format", kFormat},       {"embedder", embedder_},
               {"dimension", dimension_}, {"journal_position", journal_position},
               {"count", size()},         {"bytes", sum->second},
               {"checksum", sum->first}};
  {
    std::ofstream out(meta_tmp, std::ios::trunc);
    out << meta.dump(2) << "\n";
    out.flush();
    if (!out) return absl::InternalError(cat("cannot write ", meta_tmp.string()));
  }
  std::error_code ec;
  // Index first: a crash between the renames leaves a meta whose checksum does
  // not match, which load() reports as damage and the store rebuilds.
  std::filesystem::rename(tmp, file, ec);
  if (!ec) std::filesystem::rename(meta_tmp, meta_file(file), ec);
  if (ec) return absl::InternalError(cat("cannot save index ", file.string(), ": ", ec.message()));
  return absl::OkStatus();
}

Status VectorIndex::add(uint64_t label, const float* vector) {
  try {
    if (!contains(label) && hnsw_->cur_element_count >= hnsw_->max_elements_) {
      hnsw_->resizeIndex(std::max(kInitialCapacity, hnsw_->max_elements_ * 2));
    }
    hnsw_->addPoint(vector, label);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(cat("cannot add to the memory index: ", e.what()));
  }
  return absl::OkStatus();
}

Status VectorIndex::add_many(const std::vector<uint64_t>& labels,
                             const std::vector<std::vector<float>>& vectors, size_t threads) {
  if (labels.size() != vectors.size()) {
    return absl::InvalidArgumentError(
        cat("memory index: ", labels.size(), " labels for ", vectors.size(), " vectors"));
  }
  try {
    const size_t needed = hnsw_->cur_element_count + labels.size();
    if (needed > hnsw_->max_elements_) {
      hnsw_->resizeIndex(std::max(needed, hnsw_->max_elements_ * 2));
    }
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(cat("cannot grow the memory index: ", e.what()));
  }
  std::atomic<size_t> next{0};
  std::mutex failure_mutex;
  std::string failure;
  const auto work = [&] {
    for (size_t i = next++; i < labels.size(); i = next++) {
      if (vectors[i].size() != dimension_) continue;
      try {
        hnsw_->addPoint(vectors[i].data(), labels[i]);
      } catch (const std::exception& e) {
        std::lock_guard lock(failure_mutex);
        if (failure.empty()) failure = e.what();
        next = labels.size();
      }
    }
  };
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> workers;
  for (size_t t = 1; t < threads; ++t) workers.emplace_back(work);
  work();
  for (std::thread& worker : workers) worker.join();
  if (!failure.empty()) {
    return absl::ResourceExhaustedError(cat("cannot add to the memory index: ", failure));
  }
  return absl::OkStatus();
}

void VectorIndex::remove(uint64_t label) {
  auto it = hnsw_->label_lookup_.find(label);
  if (it == hnsw_->label_lookup_.end() || hnsw_->isMarkedDeleted(it->second)) return;
  hnsw_->markDelete(label);
}

bool VectorIndex::contains(uint64_t label) const {
  auto it = hnsw_->label_lookup_.find(label);
  return it != hnsw_->label_lookup_.end() && !hnsw_->isMarkedDeleted(it->second);
}

std::vector<std::pair<float, uint64_t>> VectorIndex::search(const float* query, size_t k) const {
  std::vector<std::pair<float, uint64_t>> out;
  if (k == 0 || size() == 0) return out;
  hnsw_->setEf(std::max(effective_ef_search(), k));
  auto queue = hnsw_->searchKnn(query, k);
  out.reserve(queue.size());
  while (!queue.empty()) {
    out.emplace_back(1.0f - queue.top().first, queue.top().second);
    queue.pop();
  }
  std::reverse(out.begin(), out.end());
  return out;
}

size_t auto_ef_search(size_t count) {
  return std::max<size_t>(400, static_cast<size_t>(2.0 * std::sqrt(static_cast<double>(count))));
}

size_t VectorIndex::effective_ef_search() const {
  return options_.ef_search > 0 ? options_.ef_search : auto_ef_search(size());
}

size_t VectorIndex::size() const { return hnsw_->cur_element_count - hnsw_->num_deleted_; }
size_t VectorIndex::deleted() const { return hnsw_->num_deleted_; }

}  // namespace lotus::memory
