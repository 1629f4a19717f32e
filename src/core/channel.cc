#include "lotus/channel.h"

#include <algorithm>

#include <string>

#include "absl/strings/escaping.h"

namespace lotus {
namespace {

// absl::StrCat would be natural here, but this absl is built with its own
// absl::string_view, which std::string_view does not convert to.
void append(std::string& out, std::string_view text) { out.append(text); }
void append(std::string& out, size_t number) { out += std::to_string(number); }

template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (append(out, parts), ...);
  return out;
}

// Names are quoted in messages; a hostile one must not smuggle control bytes
// into logs or run for pages, so it is escaped and cut short.
std::string quote_name(std::string_view name) {
  constexpr size_t kShown = 64;
  const std::string_view head = name.substr(0, kShown);
  std::string shown = absl::CHexEscape(absl::string_view(head.data(), head.size()));
  if (name.size() > kShown) shown += "...";
  return cat("\"", shown, "\"");
}

std::string describe_char(char c) {
  auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x21 && byte < 0x7f) return cat("'", std::string_view(&c, 1), "'");
  if (c == ' ') return "' ' (space)";
  constexpr char kDigits[] = "0123456789abcdef";
  return cat("byte 0x", std::string{kDigits[byte >> 4], kDigits[byte & 0xf]});
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// Shared by channels and patterns: `kind` is "channel" or "pattern" and only
// patterns may use "*" and "**" as whole segments.
Status validate_name(std::string_view kind, std::string_view name, bool allow_wildcards) {
  // Runs on every publish: no allocation unless there is an error to report.
  if (name.empty()) return absl::InvalidArgumentError(cat(kind, " name is empty"));
  auto quoted = [&] { return quote_name(name); };
  if (name.size() > kMaxChannelLength) {
    return absl::InvalidArgumentError(cat(kind, " ", quoted(), ": is ", name.size(),
                                          " characters long; the limit is ", kMaxChannelLength));
  }
  const size_t segment_count = static_cast<size_t>(std::count(name.begin(), name.end(), '.')) + 1;
  if (segment_count > kMaxChannelSegments) {
    return absl::InvalidArgumentError(cat(kind, " ", quoted(), ": has ", segment_count,
                                          " segments; the limit is ", kMaxChannelSegments));
  }
  size_t start = 0;
  for (size_t number = 1; number <= segment_count; ++number) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view segment = name.substr(start, end - start);
    start = end + 1;
    if (segment.empty()) {
      return absl::InvalidArgumentError(
          cat(kind, " ", quoted(), ": segment ", number, " is empty"));
    }
    if (segment == "*" || segment == "**") {
      if (allow_wildcards) continue;
      return absl::InvalidArgumentError(
          cat(kind, " ", quoted(), ": segment ", number, " is the wildcard \"", segment,
              "\"; wildcards are only allowed in subscription patterns, not in channel names"));
    }
    for (size_t j = 0; j < segment.size(); ++j) {
      const char c = segment[j];
      if (is_name_char(c)) continue;
      if (c == '*') {
        return absl::InvalidArgumentError(cat(
            kind, " ", quoted(), ": segment ", number, " (", quote_name(segment),
            ") contains '*'; ",
            allow_wildcards
                ? "wildcards must be whole segments (\"*\" for one segment, \"**\" for any number)"
                : "wildcards are only allowed in subscription patterns, not in channel names"));
      }
      return absl::InvalidArgumentError(
          cat(kind, " ", quoted(), ": segment ", number, " (", quote_name(segment),
              ") has invalid ", describe_char(c), " at position ", j + 1,
              "; allowed are letters, digits, '_' and '-', with '.' between segments"));
    }
  }
  return absl::OkStatus();
}

std::string shorten(const nlohmann::json& value) {
  constexpr size_t kShown = 80;
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kShown) text = cat(text.substr(0, kShown), "...");
  return text;
}

// The glob algorithm over segments: "**" is the star, "*" the single-item
// wildcard. Only the most recent "**" is ever backtracked to, since a later
// one can absorb anything an earlier one could: O(|pattern| * |channel|)
// at worst, where naive recursion is exponential in the number of "**".
bool match_segments(const std::vector<std::string_view>& pattern,
                    const std::vector<std::string_view>& channel) {
  size_t p = 0;
  size_t c = 0;
  size_t star_p = std::string_view::npos;
  size_t star_c = 0;
  while (c < channel.size()) {
    if (p < pattern.size() && pattern[p] == "**") {
      star_p = p++;
      star_c = c;
      continue;
    }
    if (p < pattern.size() && (pattern[p] == "*" || pattern[p] == channel[c])) {
      ++p;
      ++c;
      continue;
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;  // let the last "**" absorb one more segment
    c = ++star_c;
  }
  while (p < pattern.size() && pattern[p] == "**") ++p;
  return p == pattern.size();
}

// Matches text[t] against the bracket expression starting at glob[g] == '['.
// Returns the index just past the closing ']', or npos when the bracket is not
// terminated (the caller then treats '[' as an ordinary character).
size_t match_bracket(std::string_view glob, size_t g, unsigned char c, bool* matched) {
  size_t i = g + 1;
  bool negate = false;
  if (i < glob.size() && (glob[i] == '!' || glob[i] == '^')) {
    negate = true;
    ++i;
  }
  bool found = false;
  bool first = true;
  while (i < glob.size()) {
    const auto lo = static_cast<unsigned char>(glob[i]);
    if (lo == ']' && !first) {
      *matched = found != negate;
      return i + 1;
    }
    first = false;
    if (i + 2 < glob.size() && glob[i + 1] == '-' && glob[i + 2] != ']') {
      const auto hi = static_cast<unsigned char>(glob[i + 2]);
      if (lo <= c && c <= hi) found = true;
      i += 3;
    } else {
      if (lo == c) found = true;
      ++i;
    }
  }
  return std::string_view::npos;
}

}  // namespace

Status validate_channel(std::string_view channel) {
  return validate_name("channel", channel, /*allow_wildcards=*/false);
}

Status validate_pattern(std::string_view pattern) {
  return validate_name("pattern", pattern, /*allow_wildcards=*/true);
}

std::vector<std::string_view> split_channel(std::string_view channel) {
  std::vector<std::string_view> segments;
  if (channel.empty()) return segments;
  size_t start = 0;
  for (;;) {
    const size_t dot = channel.find('.', start);
    if (dot == std::string_view::npos) {
      segments.push_back(channel.substr(start));
      return segments;
    }
    segments.push_back(channel.substr(start, dot - start));
    start = dot + 1;
  }
}

bool pattern_matches(std::string_view pattern, std::string_view channel) {
  return match_segments(split_channel(pattern), split_channel(channel));
}

bool glob_matches(std::string_view glob, std::string_view text) {
  // Iterative matcher that backtracks only to the most recent '*': a later '*'
  // can absorb anything an earlier one could, so O(|glob| * |text|) worst case.
  size_t g = 0;
  size_t t = 0;
  size_t star_g = std::string_view::npos;
  size_t star_t = 0;
  while (t < text.size()) {
    if (g < glob.size()) {
      const char gc = glob[g];
      if (gc == '*') {
        star_g = g++;
        star_t = t;
        continue;
      }
      if (gc == '?') {
        ++g;
        ++t;
        continue;
      }
      if (gc == '[') {
        bool matched = false;
        const size_t end = match_bracket(glob, g, static_cast<unsigned char>(text[t]), &matched);
        if (end != std::string_view::npos) {
          if (matched) {
            g = end;
            ++t;
            continue;
          }
        } else if (text[t] == '[') {
          ++g;
          ++t;
          continue;
        }
      } else if (gc == text[t]) {
        ++g;
        ++t;
        continue;
      }
    }
    if (star_g == std::string_view::npos) return false;
    g = star_g + 1;
    t = ++star_t;
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

Result<SubscriptionFilter> SubscriptionFilter::parse(const nlohmann::json& spec) {
  if (!spec.is_null() && !spec.is_string() && !spec.is_object()) {
    return absl::InvalidArgumentError(
        cat("subscription filter must be null, a string glob matched against data.path, "
            "or an object of field -> expected value; got ",
            spec.type_name(), " ", shorten(spec)));
  }
  SubscriptionFilter filter;
  filter.spec_ = spec;
  return filter;
}

bool SubscriptionFilter::matches(const nlohmann::json& data) const {
  if (spec_.is_null()) return true;
  if (spec_.is_string()) {
    if (!data.is_object()) return false;
    const auto path = data.find("path");
    if (path == data.end() || !path->is_string()) return false;
    return glob_matches(spec_.get_ref<const std::string&>(), path->get_ref<const std::string&>());
  }
  if (spec_.empty()) return true;
  if (!data.is_object()) return false;
  for (const auto& [key, expected] : spec_.items()) {
    const auto actual = data.find(key);
    if (actual == data.end()) return false;
    if (expected.is_string()) {
      if (!actual->is_string()) return false;
      if (!glob_matches(expected.get_ref<const std::string&>(),
                        actual->get_ref<const std::string&>())) {
        return false;
      }
    } else if (*actual != expected) {
      return false;
    }
  }
  return true;
}

}  // namespace lotus
