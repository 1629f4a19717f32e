// Memory benchmark: the figures issue 4 asks for, on one corpus per size.
//
// The corpus is synthetic text (sentences over a Zipf-distributed vocabulary
// of pseudo-words), embedded once with the default HashingEmbedder
// (dimension 384). Queries are fresh sentences made by perturbing corpus
// sentences (words dropped and swapped), never inserted. For each size it
// prints:
//   - insert rate of EmbeddedMemory::remember() (SQLite commit + index) and
//     of plain hnswlib addPoint() on the same vectors;
//   - recall latency p50/p99: the full hybrid recall() (vector + FTS5 +
//     fusion + row fetch), the store's vector index alone, plain hnswlib;
//   - recall@10 against exact brute force, of plain hnswlib and of the
//     store's index, on the same vectors with the same parameters;
//   - the overhead ratios against plain hnswlib.
//
//   memory_bench [--sizes 10000,100000] [--queries 1000] [--ef 128] [--m 16]
//                [--postings N (keyword_max_postings)] [--dir /tmp/x] [--reuse]
//                [--batch N]
//
// --reuse keeps the store and a saved copy of the plain index in --dir and
// uses them again on the next run with the same size and parameters, so
// search can be measured again without minutes of inserts. --batch N stores
// N memories per remember_all() call (one transaction each), the way a large
// import does, instead of one committed remember() each.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <queue>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <assert.h>
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include <atomic>
#include <cassert>
#include <deque>
#include <fstream>
#include <iostream>
#include <list>
#include <mutex>
#include <stdexcept>

// hnswlib 0.6.2 defines non-inline globals in its headers, and lotus_core
// already holds one copy (src/memory/vector_index.cc). The plain baseline gets
// its own copy in a namespace of its own; every header hnswlib includes is
// included above, so only hnswlib itself lands in the namespace.
namespace plain {
#include <hnswlib/hnswlib.h>
}  // namespace plain

#include "lotus/strings.h"
#include "memory/embedded_memory.h"
#include "memory/hashing_embedder.h"
#include "memory/vector_index.h"

namespace {

using Clock = std::chrono::steady_clock;
using lotus::memory::HashingEmbedder;

double micros_since(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

// CPU time of this thread: what a search costs, whatever else the machine
// runs (wall-clock latency on a loaded machine counts the time others ran).
double thread_cpu_micros() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

double mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
  return v[i];
}

// Returns the precomputed vector of a text it has seen, so the store and
// plain hnswlib work on exactly the same vectors; embeds anything else.
class LookupEmbedder final : public lotus::Embedder {
 public:
  explicit LookupEmbedder(const std::unordered_map<std::string, std::vector<float>>* table)
      : table_(table) {}
  std::string name() const override { return hashing_.name(); }
  size_t dimension() const override { return hashing_.dimension(); }
  lotus::Result<std::vector<float>> embed(std::string_view text) override {
    auto it = table_->find(std::string(text));
    if (it != table_->end()) return it->second;
    return hashing_.embed(text);
  }

 private:
  const std::unordered_map<std::string, std::vector<float>>* table_;
  HashingEmbedder hashing_;
};

struct Corpus {
  std::vector<std::string> docs;
  std::vector<std::string> queries;
  std::unordered_map<std::string, std::vector<float>> vectors;
  std::vector<std::vector<float>> doc_vectors;  // by position in docs
};

Corpus make_corpus(size_t size, size_t queries, uint32_t seed) {
  std::mt19937 rng(seed);
  static const char* kSyllables[] = {"ka",  "lo",  "mi",  "ne",  "ru",   "sa",  "ti",  "vo",
                                     "ze",  "qu",  "dra", "pel", "ston", "ver", "gil", "mor",
                                     "tha", "fen", "bri", "cus", "dan",  "elo", "ira", "ost"};
  const size_t n_syllables = std::size(kSyllables);
  std::vector<std::string> vocabulary;
  std::unordered_set<std::string> seen;
  while (vocabulary.size() < 20000) {
    std::string word;
    const int parts = 2 + static_cast<int>(rng() % 3);
    for (int i = 0; i < parts; ++i) word += kSyllables[rng() % n_syllables];
    if (seen.insert(word).second) vocabulary.push_back(word);
  }
  // Zipf-like: word i drawn with weight 1 / (i + 10).
  std::vector<double> weights(vocabulary.size());
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = 1.0 / (static_cast<double>(i) + 10.0);
  std::discrete_distribution<size_t> pick(weights.begin(), weights.end());
  std::uniform_int_distribution<int> length(8, 16);

  Corpus corpus;
  corpus.docs.reserve(size);
  std::vector<std::vector<size_t>> doc_words;
  for (size_t d = 0; d < size; ++d) {
    std::vector<size_t> words;
    const int n = length(rng);
    for (int i = 0; i < n; ++i) words.push_back(pick(rng));
    std::string text = lotus::cat("note ", d, ":");
    for (size_t w : words) text += " " + vocabulary[w];
    corpus.docs.push_back(std::move(text));
    doc_words.push_back(std::move(words));
  }
  for (size_t q = 0; q < queries; ++q) {
    // A corpus sentence with a third of its words dropped and two replaced.
    std::vector<size_t> words = doc_words[rng() % size];
    std::shuffle(words.begin(), words.end(), rng);
    words.resize(std::max<size_t>(3, words.size() * 2 / 3));
    words[0] = pick(rng);
    words[1] = pick(rng);
    std::string text = "query:";
    for (size_t w : words) text += " " + vocabulary[w];
    corpus.queries.push_back(std::move(text));
  }
  HashingEmbedder embedder;
  for (const auto& text : corpus.docs) {
    corpus.doc_vectors.push_back(*embedder.embed(text));
    corpus.vectors[text] = corpus.doc_vectors.back();
  }
  for (const auto& text : corpus.queries) corpus.vectors[text] = *embedder.embed(text);
  return corpus;
}

std::vector<uint64_t> exact_top(const Corpus& corpus, const std::vector<float>& q, size_t k) {
  std::priority_queue<std::pair<float, uint64_t>, std::vector<std::pair<float, uint64_t>>,
                      std::greater<>>
      best;
  for (size_t i = 0; i < corpus.docs.size(); ++i) {
    const auto& v = corpus.doc_vectors[i];
    const float s = lotus::memory::dot(q.data(), v.data(), q.size());
    if (best.size() < k) {
      best.emplace(s, i + 1);
    } else if (s > best.top().first) {
      best.pop();
      best.emplace(s, i + 1);
    }
  }
  std::vector<uint64_t> out;
  while (!best.empty()) {
    out.push_back(best.top().second);
    best.pop();
  }
  return out;
}

double recall_at(const std::vector<uint64_t>& truth, const std::vector<uint64_t>& got) {
  size_t hit = 0;
  for (uint64_t t : truth) hit += std::count(got.begin(), got.end(), t) > 0 ? 1 : 0;
  return truth.empty() ? 1.0 : static_cast<double>(hit) / static_cast<double>(truth.size());
}

void run(size_t size, size_t queries, const std::filesystem::path& base,
         const lotus::memory::VectorIndexOptions& params, size_t postings, bool reuse,
         size_t batch) {
  constexpr size_t kK = 10;
  constexpr size_t kDim = HashingEmbedder::kDefaultDimension;
  std::printf(
      "\n== %zu memories, dimension %zu, %zu queries (M=%zu, ef_construction=%zu, "
      "ef_search=%zu, keyword_max_postings=%zu)\n",
      size, kDim, queries, params.m, params.ef_construction,
      params.ef_search > 0 ? params.ef_search : lotus::memory::auto_ef_search(size), postings);
  auto t0 = Clock::now();
  Corpus corpus = make_corpus(size, queries, static_cast<uint32_t>(size));
  std::printf("corpus generated and embedded in %.1f s\n", micros_since(t0) / 1e6);

  // Plain hnswlib.
  const std::string tag = lotus::cat(size, "-m", params.m, "-efc", params.ef_construction);
  const std::filesystem::path plain_file = base / lotus::cat("plain-", tag, ".bin");
  const std::filesystem::path dir = base / lotus::cat("memory-", tag);
  const bool reused = reuse && std::filesystem::exists(plain_file) &&
                      std::filesystem::exists(dir / "reuse-complete");
  plain::hnswlib::InnerProductSpace space(kDim);
  plain::hnswlib::HierarchicalNSW<float> plain(&space, size, params.m, params.ef_construction);
  double plain_insert_s = 0;
  if (reused) {
    plain.loadIndex(plain_file.string(), &space, size);
  } else {
    // As many threads as the store uses: one for remember(), every core for
    // an import (--batch), which inserts into its index in parallel.
    const size_t threads = batch > 1 ? std::max(1u, std::thread::hardware_concurrency()) : 1;
    std::atomic<size_t> next{0};
    const auto add = [&] {
      for (size_t i = next++; i < size; i = next++) {
        plain.addPoint(corpus.doc_vectors[i].data(), i + 1);
        if (size >= 100000 && (i + 1) % (size / 20) == 0) {
          std::fprintf(stderr, "plain hnswlib: added %zu of %zu\n", i + 1, size);
        }
      }
    };
    t0 = Clock::now();
    std::vector<std::thread> workers;
    for (size_t t = 1; t < threads; ++t) workers.emplace_back(add);
    add();
    for (auto& worker : workers) worker.join();
    plain_insert_s = micros_since(t0) / 1e6;
  }
  // The beam the store's index searches with (its default grows with size).
  plain.setEf(params.ef_search > 0 ? params.ef_search : lotus::memory::auto_ef_search(size));

  // The store: every memory long-term (importance 0.9), so all go through the
  // index, each in its own committed transaction.
  if (!reused) std::filesystem::remove_all(dir);
  lotus::memory::EmbeddedMemoryOptions options;
  options.dir = dir;
  options.embedder = std::make_shared<LookupEmbedder>(&corpus.vectors);
  options.index = params;
  options.keyword_max_postings = postings;
  auto opened = lotus::memory::EmbeddedMemory::open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "cannot open store: %s\n",
                 std::string(lotus::message_of(opened.status())).c_str());
    std::exit(1);
  }
  auto& store = **opened;
  t0 = Clock::now();
  for (size_t i = 0; i < size && !reused; i += batch) {
    std::vector<lotus::MemoryInput> inputs;
    for (size_t j = i; j < std::min(size, i + batch); ++j) {
      lotus::MemoryInput input;
      input.content = corpus.docs[j];
      input.type = lotus::MemoryType::kSemantic;
      input.importance = 0.9;
      inputs.push_back(std::move(input));
    }
    const lotus::Status stored = inputs.size() == 1
                                     ? store.remember(std::move(inputs.front())).status()
                                     : store.remember_all(std::move(inputs)).status();
    if (!stored.ok()) {
      std::fprintf(stderr, "remember failed: %s\n", std::string(lotus::message_of(stored)).c_str());
      std::exit(1);
    }
    if (size >= 100000 && (i + batch) % (size / 20) < batch) {
      std::fprintf(stderr, "stored %zu of %zu\n", std::min(size, i + batch), size);
    }
  }
  const double store_insert_s = micros_since(t0) / 1e6;
  t0 = Clock::now();
  if (!store.save_index().ok()) std::exit(1);
  const double save_s = micros_since(t0) / 1e6;
  if (reuse && !reused) {
    plain.saveIndex(plain_file.string());
    std::ofstream(dir / "reuse-complete") << size << "\n";
  }

  // The store's own index, loaded back from its file (labels are 1-based
  // insertion order, as in the plain index).
  int64_t position = 0;
  auto index =
      lotus::memory::VectorIndex::load(store.index_file(), "hashing-v1", kDim, params, &position);
  if (!index.ok()) std::exit(1);

  std::vector<double> plain_us, index_us, store_us;
  std::vector<double> plain_cpu, index_cpu, store_cpu;
  double c0 = 0;
  double plain_recall = 0, index_recall = 0;
  // The exact answers first, so the three searches of each query run back to
  // back under the same conditions.
  std::vector<std::vector<uint64_t>> truths;
  for (const auto& text : corpus.queries)
    truths.push_back(exact_top(corpus, corpus.vectors.at(text), kK));
  for (size_t n = 0; n < corpus.queries.size(); ++n) {
    const std::string& text = corpus.queries[n];
    const auto& q = corpus.vectors.at(text);
    const auto& truth = truths[n];

    t0 = Clock::now();
    c0 = thread_cpu_micros();
    auto result = plain.searchKnn(q.data(), kK);
    plain_us.push_back(micros_since(t0));
    plain_cpu.push_back(thread_cpu_micros() - c0);
    std::vector<uint64_t> got;
    while (!result.empty()) {
      got.push_back(result.top().second);
      result.pop();
    }
    plain_recall += recall_at(truth, got);

    t0 = Clock::now();
    c0 = thread_cpu_micros();
    auto hits = (*index)->search(q.data(), kK);
    index_us.push_back(micros_since(t0));
    index_cpu.push_back(thread_cpu_micros() - c0);
    got.clear();
    for (const auto& [sim, label] : hits) got.push_back(label);
    index_recall += recall_at(truth, got);

    t0 = Clock::now();
    c0 = thread_cpu_micros();
    auto recalled = store.recall(text, kK, {});
    store_us.push_back(micros_since(t0));
    store_cpu.push_back(thread_cpu_micros() - c0);
    if (!recalled.ok()) std::exit(1);
  }
  plain_recall /= static_cast<double>(queries);
  index_recall /= static_cast<double>(queries);

  if (reused) {
    std::printf("insert   (reused the store and plain index of an earlier run)\n");
  } else {
    std::printf(
        "insert   store %s: %8.0f /s   plain hnswlib addPoint: %8.0f /s   "
        "(index save %.2f s; %s)\n",
        batch == 1 ? "remember()" : lotus::cat("remember_all() of ", batch).c_str(),
        size / store_insert_s, size / plain_insert_s, save_s,
        batch > 1 ? "both inserting on every core" : "one thread each");
  }
  std::printf(
      "recall   p50 / p99 us      store recall() hybrid: %7.1f / %7.1f   store index: "
      "%7.1f / %7.1f   plain hnswlib: %7.1f / %7.1f\n",
      percentile(store_us, 50), percentile(store_us, 99), percentile(index_us, 50),
      percentile(index_us, 99), percentile(plain_us, 50), percentile(plain_us, 99));
  std::printf(
      "recall   CPU p50 / mean us store recall() hybrid: %7.1f / %7.1f   store index: "
      "%7.1f / %7.1f   plain hnswlib: %7.1f / %7.1f\n",
      percentile(store_cpu, 50), mean(store_cpu), percentile(index_cpu, 50), mean(index_cpu),
      percentile(plain_cpu, 50), mean(plain_cpu));
  std::printf("recall@10 vs brute force   plain hnswlib: %.4f   store index: %.4f\n", plain_recall,
              index_recall);
  std::printf(
      "overhead vs plain hnswlib (p50)   store index: %.2fx   hybrid recall(): %.2fx   "
      "insert: %.2fx\n",
      percentile(index_us, 50) / percentile(plain_us, 50),
      percentile(store_us, 50) / percentile(plain_us, 50),
      reused ? 0.0 : store_insert_s / plain_insert_s);
  std::printf(
      "overhead vs plain hnswlib (mean CPU time)   store index: %.2fx   hybrid recall(): %.2fx\n",
      mean(index_cpu) / mean(plain_cpu), mean(store_cpu) / mean(plain_cpu));
  std::fflush(stdout);

  // `lotus memory reindex`: the index built anew from the database.
  opened->reset();
  options.reindex = true;
  t0 = Clock::now();
  auto reindexed = lotus::memory::EmbeddedMemory::open(options);
  const double reindex_s = micros_since(t0) / 1e6;
  if (!reindexed.ok()) std::exit(1);
  std::printf("reindex  %zu vectors in %.1f s (%.0f /s, %u threads)\n", size, reindex_s,
              static_cast<double>(size) / reindex_s, std::thread::hardware_concurrency());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes = {10000, 100000};
  size_t queries = 1000;
  lotus::memory::VectorIndexOptions params;  // the store's defaults unless flags say otherwise
  size_t postings = lotus::memory::EmbeddedMemoryOptions().keyword_max_postings;
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "lotus-memory-bench";
  bool reuse = false;
  size_t batch = 1;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--reuse") {
      reuse = true;
      --i;  // a flag without a value
      continue;
    }
    const std::string value = i + 1 < argc ? argv[i + 1] : "";
    if (flag == "--sizes" && !value.empty()) {
      sizes.clear();
      size_t start = 0;
      while (start < value.size()) {
        size_t end = value.find(',', start);
        if (end == std::string::npos) end = value.size();
        sizes.push_back(std::stoul(value.substr(start, end - start)));
        start = end + 1;
      }
    } else if (flag == "--ef" && !value.empty()) {
      params.ef_search = std::stoul(value);
    } else if (flag == "--m" && !value.empty()) {
      params.m = std::stoul(value);
    } else if (flag == "--postings" && !value.empty()) {
      postings = std::stoul(value);
    } else if (flag == "--queries" && !value.empty()) {
      queries = std::stoul(value);
    } else if (flag == "--batch" && !value.empty()) {
      batch = std::max<size_t>(1, std::stoul(value));
    } else if (flag == "--dir" && !value.empty()) {
      dir = value;
    } else {
      std::fprintf(
          stderr,
          "usage: memory_bench [--sizes N,N] [--queries N] [--ef N] [--m N] [--postings N] "
          "[--dir DIR] [--reuse] [--batch N]\n");
      return 2;
    }
  }
  for (size_t size : sizes) run(size, queries, dir, params, postings, reuse, batch);
  if (!reuse && std::getenv("LOTUS_BENCH_KEEP") == nullptr) std::filesystem::remove_all(dir);
  return 0;
}
