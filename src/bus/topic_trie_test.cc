#include "bus/topic_trie.h"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "lotus/channel.h"

namespace lotus {
namespace {

using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

template <typename V>
std::vector<V> matches(const TopicTrie<V>& trie, std::string_view channel) {
  std::vector<V> out;
  trie.match(channel, [&](const V& value) { out.push_back(value); });
  return out;
}

TEST(TopicTrieTest, EmptyTrieMatchesNothing) {
  TopicTrie<int> trie;
  EXPECT_EQ(trie.size(), 0u);
  EXPECT_TRUE(trie.empty());
  EXPECT_THAT(matches(trie, "a.b"), IsEmpty());
}

TEST(TopicTrieTest, ExactPatterns) {
  TopicTrie<int> trie;
  trie.insert("a.b", 1);
  trie.insert("a.b.c", 2);
  trie.insert("a", 3);
  EXPECT_EQ(trie.size(), 3u);
  EXPECT_THAT(matches(trie, "a.b"), UnorderedElementsAre(1));
  EXPECT_THAT(matches(trie, "a.b.c"), UnorderedElementsAre(2));
  EXPECT_THAT(matches(trie, "a"), UnorderedElementsAre(3));
  EXPECT_THAT(matches(trie, "a.c"), IsEmpty());
  EXPECT_THAT(matches(trie, "b"), IsEmpty());
  EXPECT_THAT(matches(trie, "a.b.c.d"), IsEmpty());
}

TEST(TopicTrieTest, SamePatternTwiceIsTwoSubscriptions) {
  TopicTrie<int> trie;
  const auto first = trie.insert("a.b", 1);
  const auto second = trie.insert("a.b", 2);
  EXPECT_NE(first, second);
  EXPECT_THAT(matches(trie, "a.b"), UnorderedElementsAre(1, 2));
  EXPECT_TRUE(trie.remove(first));
  EXPECT_THAT(matches(trie, "a.b"), UnorderedElementsAre(2));
}

TEST(TopicTrieTest, StarMatchesOneSegment) {
  TopicTrie<int> trie;
  trie.insert("a.*", 1);
  trie.insert("*.b", 2);
  trie.insert("*", 3);
  EXPECT_THAT(matches(trie, "a.b"), UnorderedElementsAre(1, 2));
  EXPECT_THAT(matches(trie, "a.x"), UnorderedElementsAre(1));
  EXPECT_THAT(matches(trie, "a"), UnorderedElementsAre(3));
  EXPECT_THAT(matches(trie, "a.b.c"), IsEmpty());
}

TEST(TopicTrieTest, DoubleStarAtEndMatchesZeroOrMore) {
  TopicTrie<int> trie;
  trie.insert("a.**", 1);
  EXPECT_THAT(matches(trie, "a"), UnorderedElementsAre(1));
  EXPECT_THAT(matches(trie, "a.b"), UnorderedElementsAre(1));
  EXPECT_THAT(matches(trie, "a.b.c.d.e"), UnorderedElementsAre(1));
  EXPECT_THAT(matches(trie, "b.a"), IsEmpty());
}

TEST(TopicTrieTest, DoubleStarAtStart) {
  TopicTrie<int> trie;
  trie.insert("**.done", 1);
  trie.insert("**", 2);
  EXPECT_THAT(matches(trie, "done"), UnorderedElementsAre(1, 2));
  EXPECT_THAT(matches(trie, "task.x.done"), UnorderedElementsAre(1, 2));
  EXPECT_THAT(matches(trie, "task.done.later"), UnorderedElementsAre(2));
}

TEST(TopicTrieTest, DoubleStarInTheMiddle) {
  TopicTrie<int> trie;
  trie.insert("a.**.z", 1);
  EXPECT_THAT(matches(trie, "a.z"), UnorderedElementsAre(1));
  EXPECT_THAT(matches(trie, "a.b.c.z"), UnorderedElementsAre(1));
  EXPECT_THAT(matches(trie, "a.z.z.z"), UnorderedElementsAre(1));
  EXPECT_THAT(matches(trie, "a.b"), IsEmpty());
  EXPECT_THAT(matches(trie, "a.z.b"), IsEmpty());
}

TEST(TopicTrieTest, VisitsOnceThroughSeveralPaths) {
  TopicTrie<int> trie;
  trie.insert("a.**.**", 1);
  trie.insert("**.b.**", 2);
  trie.insert("**.**", 3);
  trie.insert("**.*.**", 4);
  trie.insert("**.b.**.b.**", 5);
  trie.insert("*.**.b.**.*", 6);
  EXPECT_THAT(matches(trie, "a.b.b.b"), UnorderedElementsAre(1, 2, 3, 4, 5, 6));
  EXPECT_THAT(matches(trie, "b.b.b.b.b.b"), UnorderedElementsAre(2, 3, 4, 5, 6));
  EXPECT_THAT(matches(trie, "a"), UnorderedElementsAre(1, 3, 4));
  EXPECT_THAT(matches(trie, "b"), UnorderedElementsAre(2, 3, 4));
}

TEST(TopicTrieTest, ManyDoubleStarsOnADeepChannel) {
  // Without de-duplication of "**" expansions this walks a combinatorial
  // number of paths; it must stay instant and report one match.
  TopicTrie<int> trie;
  trie.insert("**.x.**.x.**.x.**.x.**.x.**", 1);
  std::string channel = "x";
  for (int i = 1; i < 32; ++i) channel += ".x";
  EXPECT_THAT(matches(trie, channel), UnorderedElementsAre(1));
}

TEST(TopicTrieTest, RemoveUnknownHandle) {
  TopicTrie<int> trie;
  EXPECT_FALSE(trie.remove(0));
  EXPECT_FALSE(trie.remove(42));
  const auto handle = trie.insert("a", 1);
  EXPECT_TRUE(trie.remove(handle));
  EXPECT_FALSE(trie.remove(handle));
  EXPECT_EQ(trie.size(), 0u);
}

TEST(TopicTrieTest, RemoveKeepsOtherSubscriptions) {
  TopicTrie<std::string> trie;
  const auto ab = trie.insert("a.b", "ab");
  const auto abc = trie.insert("a.b.c", "abc");
  const auto any = trie.insert("a.**", "any");
  EXPECT_THAT(matches(trie, "a.b.c"), UnorderedElementsAre("abc", "any"));
  EXPECT_TRUE(trie.remove(ab));
  EXPECT_THAT(matches(trie, "a.b"), UnorderedElementsAre("any"));
  EXPECT_THAT(matches(trie, "a.b.c"), UnorderedElementsAre("abc", "any"));
  EXPECT_TRUE(trie.remove(any));
  EXPECT_THAT(matches(trie, "a.b.c"), UnorderedElementsAre("abc"));
  EXPECT_TRUE(trie.remove(abc));
  EXPECT_THAT(matches(trie, "a.b.c"), IsEmpty());
  EXPECT_TRUE(trie.empty());
  EXPECT_EQ(trie.node_count(), 0u);
  // Pruned paths can be rebuilt.
  trie.insert("a.b.c", "again");
  EXPECT_THAT(matches(trie, "a.b.c"), UnorderedElementsAre("again"));
}

TEST(TopicTrieTest, RemovePrunesOnlyEmptyNodes) {
  TopicTrie<int> trie;
  const auto deep = trie.insert("a.*.**.c", 1);
  EXPECT_EQ(trie.node_count(), 4u);
  const auto shallow = trie.insert("a", 2);
  EXPECT_EQ(trie.node_count(), 4u);
  EXPECT_TRUE(trie.remove(deep));
  EXPECT_EQ(trie.node_count(), 1u);  // "a" still has a subscriber
  EXPECT_THAT(matches(trie, "a"), UnorderedElementsAre(2));
  EXPECT_TRUE(trie.remove(shallow));
  EXPECT_EQ(trie.node_count(), 0u);
}

TEST(TopicTrieTest, RunsOfDoubleStarsShareOneNode) {
  TopicTrie<int> trie;
  trie.insert("a.**", 1);
  trie.insert("a.**.**.**", 2);
  EXPECT_EQ(trie.node_count(), 2u);
  EXPECT_THAT(matches(trie, "a.b.c"), UnorderedElementsAre(1, 2));
}

TEST(TopicTrieTest, ChildrenGoFromOneToManyAndBack) {
  TopicTrie<int> trie;
  const auto x = trie.insert("a.x", 1);
  const auto y = trie.insert("a.y", 2);  // second child: becomes a table
  EXPECT_THAT(matches(trie, "a.x"), UnorderedElementsAre(1));
  EXPECT_THAT(matches(trie, "a.y"), UnorderedElementsAre(2));
  EXPECT_TRUE(trie.remove(x));
  EXPECT_THAT(matches(trie, "a.x"), IsEmpty());
  EXPECT_THAT(matches(trie, "a.y"), UnorderedElementsAre(2));
  const auto z = trie.insert("a.z", 3);
  EXPECT_TRUE(trie.remove(y));
  EXPECT_TRUE(trie.remove(z));
  EXPECT_EQ(trie.node_count(), 0u);
  trie.insert("a.w", 4);  // a lone child again
  EXPECT_THAT(matches(trie, "a.w"), UnorderedElementsAre(4));
  EXPECT_THAT(matches(trie, "a.z"), IsEmpty());
}

TEST(TopicTrieTest, ManyChildrenSurviveGrowthAndRemoval) {
  TopicTrie<int> trie;
  std::vector<TopicTrie<int>::Handle> handles;
  handles.reserve(1000);
  for (int i = 0; i < 1000; ++i) handles.push_back(trie.insert("c." + std::to_string(i), i));
  for (int i = 0; i < 1000; ++i) {
    ASSERT_THAT(matches(trie, "c." + std::to_string(i)), UnorderedElementsAre(i));
  }
  // Remove every other child; the rest must stay reachable through the
  // shifted probe runs.
  for (int i = 0; i < 1000; i += 2) ASSERT_TRUE(trie.remove(handles[i]));
  for (int i = 0; i < 1000; ++i) {
    if (i % 2 == 0) {
      ASSERT_THAT(matches(trie, "c." + std::to_string(i)), IsEmpty()) << i;
    } else {
      ASSERT_THAT(matches(trie, "c." + std::to_string(i)), UnorderedElementsAre(i)) << i;
    }
  }
  EXPECT_EQ(trie.size(), 500u);
}

TEST(TopicTrieTest, MoveOnlyValues) {
  TopicTrie<std::unique_ptr<int>> trie;
  const auto handle = trie.insert("a.*", std::make_unique<int>(7));
  trie.insert("a.*", std::make_unique<int>(8));
  int sum = 0;
  trie.match("a.b", [&](const std::unique_ptr<int>& v) { sum += *v; });
  EXPECT_EQ(sum, 15);
  EXPECT_TRUE(trie.remove(handle));
  sum = 0;
  trie.match("a.b", [&](const std::unique_ptr<int>& v) { sum += *v; });
  EXPECT_EQ(sum, 8);
}

TEST(TopicTrieTest, MovedFromTrieIsEmptyAndUsable) {
  TopicTrie<int> trie;
  trie.insert("a", 1);
  TopicTrie<int> moved = std::move(trie);
  EXPECT_THAT(matches(moved, "a"), UnorderedElementsAre(1));
  EXPECT_EQ(moved.size(), 1u);
  EXPECT_EQ(trie.size(), 0u);                  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(trie.node_count(), 0u);            // NOLINT(bugprone-use-after-move)
  EXPECT_THAT(matches(trie, "a"), IsEmpty());  // NOLINT(bugprone-use-after-move)
  trie.insert("a", 2);                         // NOLINT(bugprone-use-after-move)
  EXPECT_THAT(matches(trie, "a"), UnorderedElementsAre(2));
}

TEST(TopicTrieTest, ChannelsLongerThanTheLimitStillMatch) {
  TopicTrie<int> trie;
  trie.insert("**", 1);
  trie.insert("x.**.x", 2);
  std::string channel = "x";
  for (size_t i = 1; i < kMaxChannelSegments + 10; ++i) channel += ".x";
  EXPECT_THAT(matches(trie, channel), UnorderedElementsAre(1, 2));
}

// Randomized comparison against the reference matcher. A small alphabet makes
// collisions between literals, "*" and "**" frequent.
class TopicTriePropertyTest : public ::testing::TestWithParam<uint32_t> {};

std::string random_name(std::mt19937& rng, bool pattern, size_t max_segments) {
  static const char* const kLiterals[] = {"a", "b", "c", "ab", "b-c", "x_1"};
  std::uniform_int_distribution<size_t> length(1, max_segments);
  std::uniform_int_distribution<int> pick(0, 99);
  std::uniform_int_distribution<size_t> literal(0, std::size(kLiterals) - 1);
  std::string name;
  const size_t n = length(rng);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) name += '.';
    const int p = pick(rng);
    if (pattern && p < 15) {
      name += "*";
    } else if (pattern && p < 30) {
      name += "**";
    } else {
      name += kLiterals[literal(rng)];
    }
  }
  return name;
}

TEST_P(TopicTriePropertyTest, AgreesWithPatternMatches) {
  std::mt19937 rng(GetParam());
  TopicTrie<int> trie;
  std::map<int, std::string> live;  // id -> pattern
  std::map<int, TopicTrie<int>::Handle> handles;
  int next_id = 0;
  std::uniform_int_distribution<int> action(0, 99);

  for (int step = 0; step < 2500; ++step) {
    const int a = action(rng);
    if (a < 40 || live.empty()) {
      const std::string pattern = random_name(rng, /*pattern=*/true, 6);
      ASSERT_TRUE(validate_pattern(pattern).ok()) << pattern;
      const int id = next_id++;
      handles[id] = trie.insert(pattern, id);
      live[id] = pattern;
    } else if (a < 65) {
      auto it = live.begin();
      std::advance(it, std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng));
      ASSERT_TRUE(trie.remove(handles[it->first]));
      handles.erase(it->first);
      live.erase(it);
    } else {
      const std::string channel = random_name(rng, /*pattern=*/false, 7);
      ASSERT_TRUE(validate_channel(channel).ok()) << channel;
      std::vector<int> expected;
      for (const auto& [id, pattern] : live) {
        if (pattern_matches(pattern, channel)) expected.push_back(id);
      }
      ASSERT_THAT(matches(trie, channel), UnorderedElementsAreArray(expected))
          << "channel " << channel << " at step " << step;
    }
    ASSERT_EQ(trie.size(), live.size());
  }
  // Emptying the trie leaves nothing behind.
  for (const auto& [id, handle] : handles) ASSERT_TRUE(trie.remove(handle));
  EXPECT_TRUE(trie.empty());
  EXPECT_EQ(trie.node_count(), 0u);
  EXPECT_THAT(matches(trie, "a.b"), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(Seeds, TopicTriePropertyTest, ::testing::Values(1u, 2u, 3u, 4u, 5u));

}  // namespace
}  // namespace lotus
