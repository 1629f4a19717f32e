// score_importance(): how much a new memory matters, in [0, 1], when the
// caller does not say. Cheap, deterministic heuristics, no model:
//
//   base by type        procedural 0.55, semantic 0.5, module_state 0.5, episodic 0.3
//   + 0.2  an explicit cue: "remember", "important", "always", "never", "must",
//          "don't forget", "note that", "my name is", "i prefer", "prefer"
//   + 0.1  a specific fact: a number, a URL, an e-mail address or a path
//   + 0.05 a decision or outcome: "decided", "learned", "fixed", "failed",
//          "succeeded", "error", "solution"
//   + 0.05 more than 12 words (something was said), - 0.1 fewer than 3 words
//   metadata {"pinned": true} means 1.0
//
// Memories scoring at or above the store's long_term_threshold (0.7) go into
// long-term memory at once; the rest wait in short-term memory for
// consolidation.
#pragma once

#include <string_view>

#include "lotus/memory.h"

namespace lotus::memory {

double score_importance(std::string_view content, MemoryType type, const Json& metadata);

}  // namespace lotus::memory
