// Fuzz target for channel names and subscription patterns: validate_channel,
// validate_pattern, pattern_matches, and TopicTrie (the bus's index) checked
// against pattern_matches, the reference it is meant to agree with.
//
// Input: lines of text. Lines before the first empty line are patterns, the
// rest channels; every pattern line is also tried as a channel. Valid
// patterns go into one trie; for every channel the trie must visit exactly
// the subscriptions whose pattern matches, each once, before and after half
// of them are removed, and removing all of them must leave no nodes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bus/topic_trie.h"
#include "fuzz_check.h"
#include "lotus/channel.h"
#include "lotus/strings.h"

namespace {

// Enough to grow a node's child table several times; more only slows runs.
constexpr size_t kMaxLines = 64;

struct Subscription {
  std::string_view pattern;
  lotus::TopicTrie<size_t>::Handle handle = 0;
  bool removed = false;
};

void check_names(std::string_view name) {
  lotus::Status as_channel = lotus::validate_channel(name);
  lotus::Status as_pattern = lotus::validate_pattern(name);
  FUZZ_CHECK(as_channel.ok() || !lotus::message_of(as_channel).empty(), "no message");
  FUZZ_CHECK(as_pattern.ok() || !lotus::message_of(as_pattern).empty(), "no message");
  if (as_channel.ok()) {
    FUZZ_CHECK(as_pattern.ok(), lotus::cat("a valid channel is not a valid pattern: ", name));
    FUZZ_CHECK(name.size() <= lotus::kMaxChannelLength, name);
    FUZZ_CHECK(lotus::split_channel(name).size() <= lotus::kMaxChannelSegments, name);
    FUZZ_CHECK(lotus::pattern_matches(name, name), lotus::cat(name, " does not match itself"));
    FUZZ_CHECK(lotus::pattern_matches("**", name), lotus::cat("** does not match ", name));
  }
}

void check_trie(const lotus::TopicTrie<size_t>& trie, const std::vector<Subscription>& subs,
                const std::vector<std::string_view>& channels) {
  std::vector<int> visits(subs.size());
  for (std::string_view channel : channels) {
    std::fill(visits.begin(), visits.end(), 0);
    trie.match(channel, [&](size_t index) { ++visits[index]; });
    for (size_t i = 0; i < subs.size(); ++i) {
      const int expected = !subs[i].removed && lotus::pattern_matches(subs[i].pattern, channel);
      FUZZ_CHECK(
          visits[i] == expected,
          lotus::cat("pattern \"", subs[i].pattern, "\" on channel \"", channel,
                     "\": trie visited it ", visits[i], " times, pattern_matches says ", expected));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> patterns;
  std::vector<std::string_view> channels;
  bool in_patterns = true;
  size_t start = 0;
  while (start <= text.size() && patterns.size() + channels.size() < kMaxLines) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (in_patterns && line.empty()) {
      in_patterns = false;
      continue;
    }
    (in_patterns ? patterns : channels).push_back(line);
  }
  for (std::string_view name : patterns) {
    check_names(name);
    channels.push_back(name);
  }
  for (std::string_view name : channels) check_names(name);

  lotus::TopicTrie<size_t> trie;
  std::vector<Subscription> subs;
  for (std::string_view pattern : patterns) {
    if (!lotus::validate_pattern(pattern).ok()) continue;
    subs.push_back(Subscription{pattern, trie.insert(pattern, subs.size())});
  }
  FUZZ_CHECK(trie.size() == subs.size(), "trie size");
  check_trie(trie, subs, channels);

  for (size_t i = 0; i < subs.size(); i += 2) {
    FUZZ_CHECK(trie.remove(subs[i].handle), lotus::cat("cannot remove ", subs[i].pattern));
    FUZZ_CHECK(!trie.remove(subs[i].handle), lotus::cat("removed twice: ", subs[i].pattern));
    subs[i].removed = true;
  }
  check_trie(trie, subs, channels);

  for (Subscription& sub : subs) {
    if (!sub.removed)
      FUZZ_CHECK(trie.remove(sub.handle), lotus::cat("cannot remove ", sub.pattern));
    sub.removed = true;
  }
  FUZZ_CHECK(trie.empty() && trie.node_count() == 0,
             lotus::cat("empty trie keeps ", trie.node_count(), " nodes"));
  check_trie(trie, subs, channels);
  return 0;
}
