#include "memory/hashing_embedder.h"

#include <cmath>
#include <cstdint>
#include <string>

namespace lotus::memory {
namespace {

// FNV-1a 64 then a murmur-style finalizer, so nearby n-grams spread well.
uint64_t hash_piece(std::string_view piece, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : piece) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c >= 0x80;
}

}  // namespace

// Their 3-grams still count (weakly), so a query of only stopwords still
// matches something.
bool is_stopword(std::string_view w) {
  static constexpr std::string_view kStopwords[] = {
      "a",    "an",   "and",  "are",  "as",  "at",   "be",   "by",   "for",  "from",
      "has",  "have", "i",    "in",   "is",  "it",   "its",  "of",   "on",   "or",
      "that", "the",  "this", "to",   "was", "were", "will", "with", "you",  "we",
      "my",   "me",   "our",  "your", "he",  "she",  "they", "them", "what", "which",
      "who",  "do",   "does", "did",  "not", "but",  "so",   "if",   "then", "there"};
  for (std::string_view s : kStopwords) {
    if (w == s) return true;
  }
  return false;
}

namespace {

void add_feature(std::vector<float>& v, std::string_view piece, uint64_t seed, float weight) {
  const uint64_t h = hash_piece(piece, seed);
  const size_t bucket = static_cast<size_t>(h % v.size());
  v[bucket] += (h >> 63) != 0 ? -weight : weight;
}

}  // namespace

HashingEmbedder::HashingEmbedder(size_t dimension) : dimension_(dimension == 0 ? 1 : dimension) {}

std::vector<std::string> HashingEmbedder::words(std::string_view text) {
  std::vector<std::string> out;
  std::string current;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_word_byte(c)) {
      current.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : ch);
    } else if (!current.empty()) {
      out.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

Result<std::vector<float>> HashingEmbedder::embed(std::string_view text) {
  std::vector<float> v(dimension_, 0.0f);
  for (const std::string& word : words(text)) {
    const bool stop = is_stopword(word);
    if (!stop) add_feature(v, word, /*seed=*/1, 1.0f);
    const std::string marked = "^" + word + "$";
    const size_t grams = marked.size() >= 3 ? marked.size() - 2 : 0;
    if (grams == 0) continue;
    // A word's 3-grams together weigh about as much as the word itself (less
    // for stopwords), so long words do not drown short ones.
    const float weight = (stop ? 0.2f : 1.0f) / std::sqrt(static_cast<float>(grams));
    for (size_t i = 0; i < grams; ++i) {
      add_feature(v, std::string_view(marked).substr(i, 3), /*seed=*/3, weight);
    }
  }
  double norm = 0.0;
  for (float x : v) norm += static_cast<double>(x) * x;
  if (norm > 0.0) {
    const float inv = static_cast<float>(1.0 / std::sqrt(norm));
    for (float& x : v) x *= inv;
  }
  return v;
}

float dot(const float* a, const float* b, size_t n) {
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace lotus::memory
