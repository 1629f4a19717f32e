#include "memory/memory_policy.h"

#include <algorithm>
#include <cmath>

#include "lotus/strings.h"
#include "memory/hashing_embedder.h"
#include "memory/importance.h"
#include "memory/vector_index.h"

namespace lotus::memory {

Result<std::vector<MemoryRecord>> prepare_records(std::vector<MemoryInput> inputs,
                                                  const EmbeddedMemoryOptions& options,
                                                  std::vector<std::string>* metadata_texts) {
  std::vector<MemoryRecord> records;
  records.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    MemoryInput& input = inputs[i];
    // Which input was wrong, when there are several.
    const std::string which = inputs.size() > 1 ? cat("memory ", i + 1, ": ") : std::string();
    if (input.content.empty())
      return absl::InvalidArgumentError(cat("memory: ", which, "content is empty"));
    if (input.metadata.is_null()) input.metadata = Json::object();
    if (!input.metadata.is_object()) {
      return absl::InvalidArgumentError(cat("memory: ", which, "metadata must be an object"));
    }
    if (input.importance && !(*input.importance >= 0.0 && *input.importance <= 1.0)) {
      return absl::InvalidArgumentError(
          cat("memory: ", which, "importance must be between 0 and 1, got ", *input.importance));
    }
    try {
      metadata_texts->push_back(input.metadata.dump());
    } catch (const Json::exception& e) {
      return absl::InvalidArgumentError(cat("memory: ", which, "metadata: ", e.what()));
    }
    MemoryRecord record;
    record.id = EventId::generate().to_string();
    record.content = std::move(input.content);
    record.type = input.type;
    record.metadata = std::move(input.metadata);
    record.importance =
        input.importance.value_or(score_importance(record.content, record.type, record.metadata));
    record.module = std::move(input.module);
    record.collection = std::move(input.collection);
    record.tier = record.importance >= options.long_term_threshold ? MemoryTier::kLongTerm
                                                                   : MemoryTier::kShortTerm;
    records.push_back(std::move(record));
  }
  return records;
}

Result<std::vector<std::vector<float>>> embed_checked(Embedder& embedder,
                                                      const std::vector<std::string>& texts) {
  auto vectors = embedder.embed_batch(texts);
  if (!vectors.ok()) return vectors.status();
  if (vectors->size() != texts.size()) {
    return absl::InternalError(cat("memory: embedder \"", embedder.name(), "\" returned ",
                                   vectors->size(), " vectors for ", texts.size(), " texts"));
  }
  for (const std::vector<float>& v : *vectors) {
    if (v.size() != embedder.dimension()) {
      return absl::InternalError(cat("memory: embedder \"", embedder.name(), "\" returned ",
                                     v.size(), " numbers, expected ", embedder.dimension()));
    }
  }
  return vectors;
}

std::vector<RecallHit> fuse_rankings(const std::vector<std::pair<float, int64_t>>& by_meaning,
                                     const std::vector<int64_t>& by_words,
                                     std::unordered_map<int64_t, StoredMemory*>& rows,
                                     const EmbeddedMemoryOptions& options, double now,
                                     const std::function<bool(const std::string&)>& in_working,
                                     size_t limit) {
  // Reciprocal rank fusion over the rankings, counting only rows the filter
  // kept, scaled so that first place in both rankings is 1.
  struct Fused {
    double rrf = 0;
    float similarity = 0;
    bool keyword = false;
  };
  std::unordered_map<int64_t, Fused> fused;
  const double k = options.rrf_k;
  size_t rank = 0;
  for (const auto& [sim, key] : by_meaning) {
    if (rows.count(key) == 0) continue;
    ++rank;
    fused[key].rrf += (k + 1) / (k + static_cast<double>(rank));
    fused[key].similarity = sim;
  }
  rank = 0;
  for (int64_t key : by_words) {
    if (rows.count(key) == 0) continue;
    ++rank;
    fused[key].rrf += (k + 1) / (k + static_cast<double>(rank));
    fused[key].keyword = true;
  }
  std::vector<RecallHit> hits;
  for (auto& [key, f] : fused) {
    StoredMemory& row = *rows[key];
    RecallHit hit;
    hit.relevance = f.rrf / 2.0;
    hit.similarity = f.similarity;
    hit.keyword_match = f.keyword;
    const double age = std::max(0.0, now - row.record.created_at);
    const double recency = std::exp2(-age / options.recency_half_life_seconds);
    hit.score = options.weight_relevance * hit.relevance +
                options.weight_importance * row.record.importance +
                options.weight_recency * recency;
    hit.record = std::move(row.record);
    hits.push_back(std::move(hit));
  }
  std::sort(hits.begin(), hits.end(), [](const RecallHit& a, const RecallHit& b) {
    return a.score != b.score ? a.score > b.score : a.record.created_at > b.record.created_at;
  });
  if (hits.size() > limit) hits.resize(limit);
  for (RecallHit& hit : hits) hit.in_working_memory = in_working(hit.record.id);
  return hits;
}

bool worth_promoting(const StoredMemory& row, const EmbeddedMemoryOptions& options) {
  return row.record.importance >= options.promote_threshold ||
         row.recalls >= options.promote_recalls;
}

std::vector<std::pair<float, int64_t>> rank_by_meaning(
    const std::vector<float>& query,
    const std::unordered_map<int64_t, std::vector<float>>& short_term, const VectorIndex& index,
    size_t candidates, double min_similarity) {
  std::vector<std::pair<float, int64_t>> ranked;
  for (const auto& [key, v] : short_term) {
    if (v.size() != query.size()) continue;
    const float sim = dot(query.data(), v.data(), query.size());
    if (sim >= min_similarity) ranked.emplace_back(sim, key);
  }
  for (const auto& [sim, label] : index.search(query.data(), candidates)) {
    if (sim >= min_similarity) ranked.emplace_back(sim, static_cast<int64_t>(label));
  }
  std::sort(ranked.begin(), ranked.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  if (ranked.size() > candidates) ranked.resize(candidates);
  return ranked;
}

std::vector<int64_t> keys_of(const std::vector<std::pair<float, int64_t>>& by_meaning,
                             const std::vector<int64_t>& by_words) {
  std::vector<int64_t> keys;
  keys.reserve(by_meaning.size() + by_words.size());
  for (const auto& [sim, key] : by_meaning) keys.push_back(key);
  keys.insert(keys.end(), by_words.begin(), by_words.end());
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

namespace {

std::string summarize(const std::vector<StoredMemory>& rows, Embedder& embedder) {
  struct Sentence {
    size_t order;
    std::string text;
    double score;
  };
  std::vector<Sentence> sentences;
  std::vector<float> centroid(embedder.dimension(), 0.0f);
  for (const StoredMemory& row : rows) {
    if (row.vector.size() != centroid.size()) continue;
    for (size_t i = 0; i < centroid.size(); ++i) centroid[i] += row.vector[i];
  }
  for (const StoredMemory& row : rows) {
    std::string current;
    auto flush = [&] {
      const auto start = current.find_first_not_of(" \t\n");
      if (start != std::string::npos && HashingEmbedder::words(current).size() >= 3) {
        auto v = embedder.embed(current);
        const double sim = v.ok() && v->size() == centroid.size()
                               ? dot(v->data(), centroid.data(), centroid.size())
                               : 0.0;
        sentences.push_back(
            Sentence{sentences.size(), current.substr(start), sim * (0.5 + row.record.importance)});
      }
      current.clear();
    };
    for (char c : row.record.content) {
      current.push_back(c);
      if (c == '.' || c == '!' || c == '?' || c == '\n') flush();
    }
    flush();
  }
  std::sort(sentences.begin(), sentences.end(),
            [](const Sentence& a, const Sentence& b) { return a.score > b.score; });
  if (sentences.size() > 3) sentences.resize(3);
  std::sort(sentences.begin(), sentences.end(),
            [](const Sentence& a, const Sentence& b) { return a.order < b.order; });
  std::string out;
  for (const Sentence& s : sentences) {
    if (!out.empty()) out += " ";
    out += s.text;
    if (out.back() != '.' && out.back() != '!' && out.back() != '?') out += ".";
  }
  return out;
}

}  // namespace

MemoryRecord summary_of(const std::vector<StoredMemory>& archived, Embedder& embedder, double now) {
  MemoryRecord summary;
  if (archived.empty()) return summary;
  std::string text = summarize(archived, embedder);
  if (text.empty()) return summary;
  summary.id = EventId::generate().to_string();
  summary.type = MemoryType::kSemantic;
  summary.importance = 0.6;
  summary.created_at = now;
  summary.module = "memory";
  summary.tier = MemoryTier::kLongTerm;
  double from = archived.front().record.created_at, until = from;
  Json ids = Json::array();
  for (const StoredMemory& row : archived) {
    from = std::min(from, row.record.created_at);
    until = std::max(until, row.record.created_at);
    if (ids.size() < 100) ids.push_back(row.record.id);
  }
  summary.metadata = {{"source", "consolidation"},
                      {"summarizes", archived.size()},
                      {"from", from},
                      {"until", until},
                      {"ids", ids},
                      {"method", "extractive"}};
  summary.content = std::move(text);
  return summary;
}

}  // namespace lotus::memory
