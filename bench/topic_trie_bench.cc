// TopicTrie::match cost for a 4-segment channel as subscriptions grow from 10
// to 100,000: it should follow channel depth, not subscription count (the
// target is 100,000 patterns within 3x of 10).
//
//   cmake -S . -B build/rel -G Ninja -DCMAKE_BUILD_TYPE=Release
//   ninja -C build/rel topic_trie_bench && build/rel/bench/topic_trie_bench
//
// The subscription mix is what a busy bus looks like: ~96% exact patterns on
// distinct channels, ~3% with one "*", ~1% with "**". BM_MatchHot publishes
// one channel over and over (pure algorithmic cost, all in cache);
// BM_MatchRotating cycles through 4,096 subscribed channels, so a large trie
// also pays for cache misses.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bus/topic_trie.h"

namespace lotus {
namespace {

const char* const kFamilies[] = {"system", "perception", "cognition", "action", "memory"};

std::string exact_channel(uint64_t i) {
  // 5 families x 100 modules x ... events x 4 details: distinct 4-segment names.
  return std::string(kFamilies[i % 5]) + ".module" + std::to_string((i / 5) % 100) + ".event" +
         std::to_string(i / 500) + ".detail" + std::to_string(i % 4);
}

struct Fixture {
  TopicTrie<uint64_t> trie;
  std::vector<std::string> channels;  // channels to publish, all subscribed
};

Fixture build(size_t patterns) {
  Fixture f;
  std::mt19937_64 rng(42);
  for (uint64_t i = 0; i < patterns; ++i) {
    const uint64_t roll = rng() % 100;
    const std::string family = kFamilies[i % 5];
    const std::string module = "module" + std::to_string((i / 5) % 100);
    if (roll < 96) {
      f.trie.insert(exact_channel(i), i);
      if (f.channels.size() < 4096) f.channels.push_back(exact_channel(i));
    } else if (roll < 99) {
      f.trie.insert(family + "." + module + ".*.detail" + std::to_string(i % 4), i);
    } else {
      f.trie.insert(family + "." + module + ".**", i);
    }
  }
  // Patterns every real bus has: a logger and a few family-wide listeners.
  f.trie.insert("**", 0);
  f.trie.insert("system.**", 0);
  f.trie.insert("*.*.*.error", 0);
  if (f.channels.empty()) f.channels.push_back(exact_channel(0));
  std::shuffle(f.channels.begin(), f.channels.end(), rng);
  return f;
}

void BM_MatchHot(benchmark::State& state) {
  const Fixture f = build(static_cast<size_t>(state.range(0)));
  const std::string channel = f.channels.front();
  uint64_t visited = 0;
  for (auto _ : state) {
    f.trie.match(channel, [&](const uint64_t& v) { visited += v | 1; });
    benchmark::DoNotOptimize(visited);
  }
  state.counters["patterns"] = static_cast<double>(f.trie.size());
}

void BM_MatchRotating(benchmark::State& state) {
  const Fixture f = build(static_cast<size_t>(state.range(0)));
  uint64_t visited = 0;
  size_t next = 0;
  for (auto _ : state) {
    f.trie.match(f.channels[next], [&](const uint64_t& v) { visited += v | 1; });
    benchmark::DoNotOptimize(visited);
    next = (next + 1) % f.channels.size();
  }
  state.counters["patterns"] = static_cast<double>(f.trie.size());
}

void BM_MatchMiss(benchmark::State& state) {
  const Fixture f = build(static_cast<size_t>(state.range(0)));
  const std::string channel = "perception.module7.nobody_listens.here";
  uint64_t visited = 0;
  for (auto _ : state) {
    f.trie.match(channel, [&](const uint64_t& v) { visited += v | 1; });
    benchmark::DoNotOptimize(visited);
  }
}

BENCHMARK(BM_MatchHot)->Arg(10)->Arg(1'000)->Arg(100'000);
BENCHMARK(BM_MatchRotating)->Arg(10)->Arg(1'000)->Arg(100'000);
BENCHMARK(BM_MatchMiss)->Arg(10)->Arg(100'000);

}  // namespace
}  // namespace lotus

BENCHMARK_MAIN();
