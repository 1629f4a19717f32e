// HashingEmbedder: the offline default embedder, needing no model.
//
// Feature hashing ("the hashing trick"): each lowercased word (minus a few
// stopwords) and each character 3-gram of each word (with boundary marks, so
// "cat" gives "^ca", "cat", "at$") is hashed into one of `dimension` buckets
// with a hashed sign, weighted (words 1.0, 3-grams 0.5 each, spread over the
// word), and the sum is L2-normalized. Cosine similarity then measures shared
// words and shared word pieces, which also catches inflections and typos
// ("remembering" ~ "remembered", "colour" ~ "color").
//
// Limits, by design: it knows no meaning beyond spelling. Synonyms with no
// shared letters ("car" / "automobile") and paraphrases score near zero;
// other languages work only as far as their words share letters; word order is
// ignored; hash collisions add a small noise floor (~0.05 cosine at 384
// dimensions) to unrelated texts. Configure a provider embedder (OpenAI-
// compatible or Ollama) for real semantic recall.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "lotus/memory.h"

namespace lotus::memory {

class HashingEmbedder final : public Embedder {
 public:
  static constexpr size_t kDefaultDimension = 384;

  explicit HashingEmbedder(size_t dimension = kDefaultDimension);

  std::string name() const override { return "hashing-v1"; }
  size_t dimension() const override { return dimension_; }
  // Never fails for non-empty dimension; text with no word characters gives a
  // zero vector.
  Result<std::vector<float>> embed(std::string_view text) override;

  // The lowercased words of `text` (runs of letters, digits, '_' and any
  // non-ASCII bytes), as the embedder sees them. Shared with keyword search.
  static std::vector<std::string> words(std::string_view text);

 private:
  size_t dimension_;
};

// Words so common that they say nothing about a text's subject ("the", "is").
bool is_stopword(std::string_view word);

// Dot product of two equally long vectors (cosine, for normalized ones).
float dot(const float* a, const float* b, size_t n);

}  // namespace lotus::memory
