#include "memory/importance.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "memory/hashing_embedder.h"

namespace lotus::memory {
namespace {

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool contains_any(const std::string& text, std::initializer_list<std::string_view> cues) {
  return std::any_of(cues.begin(), cues.end(),
                     [&](std::string_view cue) { return text.find(cue) != std::string::npos; });
}

}  // namespace

double score_importance(std::string_view content, MemoryType type, const Json& metadata) {
  if (metadata.is_object() && metadata.value("pinned", false) == true) return 1.0;
  double score = 0.3;
  switch (type) {
    case MemoryType::kProcedural:
      score = 0.55;
      break;
    case MemoryType::kSemantic:
    case MemoryType::kModuleState:
      score = 0.5;
      break;
    case MemoryType::kEpisodic:
      score = 0.3;
      break;
  }
  const std::string text = lowercase(content);
  if (contains_any(text, {"remember", "important", "always", "never", "must", "don't forget",
                          "do not forget", "note that", "my name is", "prefer"})) {
    score += 0.2;
  }
  const bool has_digit = std::any_of(
      text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  if (has_digit || contains_any(text, {"http://", "https://", "@", "/"})) score += 0.1;
  if (contains_any(text,
                   {"decided", "learned", "fixed", "failed", "succeeded", "error", "solution"})) {
    score += 0.05;
  }
  const size_t words = HashingEmbedder::words(content).size();
  if (words > 12) score += 0.05;
  if (words < 3) score -= 0.1;
  return std::clamp(score, 0.0, 1.0);
}

}  // namespace lotus::memory
