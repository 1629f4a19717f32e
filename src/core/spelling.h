// Suggestions for a misspelt name: how far two words are apart, and the
// known word nearest to one that is not known ("did you mean ...?").
#pragma once

#include <cstddef>
#include <string_view>

namespace lotus {

// The Levenshtein distance: how many single-character insertions,
// deletions and substitutions turn `a` into `b`.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate nearest to `word` when it is at most `max_distance` edits
// away (the first of equally near ones); empty when none is. The view is
// into `candidates`.
template <typename Words>
std::string_view nearest_word(std::string_view word, const Words& candidates,
                              size_t max_distance = 2) {
  std::string_view nearest;
  size_t nearest_distance = max_distance + 1;
  for (std::string_view candidate : candidates) {
    const size_t distance = edit_distance(word, candidate);
    if (distance < nearest_distance) {
      nearest_distance = distance;
      nearest = candidate;
    }
  }
  return nearest;
}

}  // namespace lotus
