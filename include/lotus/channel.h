// Channel names, subscription patterns and subscription filters.
//
// A channel is dot-separated segments of [A-Za-z0-9_-] ("perception.file_changed").
// A pattern may also use "*" (exactly one segment) and "**" (zero or more
// segments) as whole segments. Filters narrow a subscription by event data:
// a string is a glob matched against data.path (so manifest `filter: "*.py"`
// picks Python files); a map requires each named data field to match (strings
// as globs, other values by equality).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lotus/status.h"

namespace lotus {

inline constexpr size_t kMaxChannelLength = 255;
inline constexpr size_t kMaxChannelSegments = 32;

// InvalidArgumentError naming the name, the segment and what is wrong with it,
// e.g. `channel "a..b": segment 2 is empty`.
Status validate_channel(std::string_view channel);
// As validate_channel, but a segment may also be exactly "*" or "**".
Status validate_pattern(std::string_view pattern);
// Views into `channel`, split at every '.'; "" gives no segments, "a..b" gives
// an empty middle one.
std::vector<std::string_view> split_channel(std::string_view channel);

// Straightforward matcher: the reference the topic trie is tested against.
// "*" matches exactly one segment, "**" zero or more (so "a.**" matches "a").
bool pattern_matches(std::string_view pattern, std::string_view channel);

// Shell-style glob over a whole string: '*' any run of characters, '?' one
// character, [abc] / [a-z] a set, [!x] (or [^x]) its complement. Unlike a
// shell, '*' also crosses '/', so "*.py" matches "src/app/main.py"; there is no
// backslash escape (write [*] for a literal '*'), and an unterminated '[' is
// an ordinary character.
bool glob_matches(std::string_view glob, std::string_view text);

// Narrows a subscription by event data:
//   null    matches every event;
//   string  a glob on data["path"]; an event without a string "path" does not
//           match;
//   object  every key must be present in data; an expected string is a glob
//           over a string field, any other expected value must equal the field
//           (JSON equality, so 1 equals 1.0).
class SubscriptionFilter {
 public:
  SubscriptionFilter() = default;  // matches everything
  // Accepts null, a string glob, or an object of field -> expected value; any
  // other JSON type is an InvalidArgumentError naming that type.
  static Result<SubscriptionFilter> parse(const nlohmann::json& spec);

  bool matches(const nlohmann::json& data) const;
  bool empty() const { return spec_.is_null(); }
  const nlohmann::json& spec() const { return spec_; }

 private:
  nlohmann::json spec_;
};

}  // namespace lotus
