// Fuzz target for SubscriptionFilter (manifest `filter:` specs) and the glob
// matcher behind it, checked against a slow but obviously right reference: a
// table over (glob position, text position) instead of the one-star
// backtracking glob_matches uses.
//
// Input: a filter spec and event data, separated by the first newline. Each
// part is parsed as JSON; a spec that is not JSON is used as a string glob,
// data that is not JSON as {"path": <text>}.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "lotus/channel.h"
#include "lotus/strings.h"

namespace {

using Json = nlohmann::json;

// Bounds the reference's table; longer pairs still go through glob_matches.
constexpr size_t kMaxReferenceCells = 1 << 16;

// A bracket expression as channel.h describes it: "[" then an optional "!" or
// "^", then items up to the first "]" that is not the first item; an item is
// "lo-hi" unless the "-" is followed by that closing "]".
struct Bracket {
  bool terminated = false;
  size_t end = 0;  // just past "]"
  bool negate = false;
  std::vector<std::pair<unsigned char, unsigned char>> ranges;

  bool contains(unsigned char c) const {
    bool found = false;
    for (const auto& [lo, hi] : ranges) found = found || (lo <= c && c <= hi);
    return found != negate;
  }
};

Bracket parse_bracket(std::string_view glob, size_t g) {
  Bracket b;
  size_t i = g + 1;
  if (i < glob.size() && (glob[i] == '!' || glob[i] == '^')) {
    b.negate = true;
    ++i;
  }
  for (bool first = true; i < glob.size(); first = false) {
    const auto lo = static_cast<unsigned char>(glob[i]);
    if (lo == ']' && !first) {
      b.terminated = true;
      b.end = i + 1;
      return b;
    }
    if (i + 2 < glob.size() && glob[i + 1] == '-' && glob[i + 2] != ']') {
      b.ranges.emplace_back(lo, static_cast<unsigned char>(glob[i + 2]));
      i += 3;
    } else {
      b.ranges.emplace_back(lo, lo);
      ++i;
    }
  }
  return b;
}

// matches[g][t]: glob[g..] matches text[t..]; filled from the ends backwards.
bool reference_glob(std::string_view glob, std::string_view text) {
  const size_t G = glob.size();
  const size_t T = text.size();
  std::vector<std::vector<char>> matches(G + 1, std::vector<char>(T + 1, 0));
  matches[G][T] = 1;
  for (size_t g = G; g-- > 0;) {
    const Bracket bracket = glob[g] == '[' ? parse_bracket(glob, g) : Bracket{};
    for (size_t t = T + 1; t-- > 0;) {
      bool m = false;
      if (glob[g] == '*') {
        m = matches[g + 1][t] || (t < T && matches[g][t + 1]);
      } else if (t == T) {
        m = false;
      } else if (glob[g] == '?') {
        m = matches[g + 1][t + 1];
      } else if (glob[g] == '[' && bracket.terminated) {
        m = bracket.contains(static_cast<unsigned char>(text[t])) && matches[bracket.end][t + 1];
      } else {
        m = glob[g] == text[t] && matches[g + 1][t + 1];
      }
      matches[g][t] = m;
    }
  }
  return matches[0][0];
}

void check_glob(std::string_view glob, std::string_view text) {
  const bool fast = lotus::glob_matches(glob, text);
  if ((glob.size() + 1) * (text.size() + 1) > kMaxReferenceCells) return;
  const bool slow = reference_glob(glob, text);
  FUZZ_CHECK(fast == slow, lotus::cat("glob \"", glob, "\" on \"", text, "\": glob_matches says ",
                                      fast, ", the reference ", slow));
}

// SubscriptionFilter::matches as channel.h specifies it.
bool reference_matches(const Json& spec, const Json& data) {
  if (spec.is_null()) return true;
  if (spec.is_string()) {
    if (!data.is_object() || !data.contains("path") || !data["path"].is_string()) return false;
    return lotus::glob_matches(spec.get<std::string>(), data["path"].get<std::string>());
  }
  if (spec.empty()) return true;
  if (!data.is_object()) return false;
  for (const auto& [key, expected] : spec.items()) {
    if (!data.contains(key)) return false;
    const Json& actual = data[key];
    if (expected.is_string()) {
      if (!actual.is_string()) return false;
      if (!lotus::glob_matches(expected.get<std::string>(), actual.get<std::string>())) {
        return false;
      }
    } else if (actual != expected) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const size_t newline = text.find('\n');
  const std::string_view spec_text = text.substr(0, newline);
  const std::string_view data_text =
      newline == std::string_view::npos ? std::string_view() : text.substr(newline + 1);

  check_glob(spec_text, data_text);

  Json spec = Json::parse(spec_text, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded()) spec = std::string(spec_text);
  Json event_data = Json::parse(data_text, nullptr, /*allow_exceptions=*/false);
  if (event_data.is_discarded()) event_data = Json{{"path", std::string(data_text)}};

  lotus::Result<lotus::SubscriptionFilter> filter = lotus::SubscriptionFilter::parse(spec);
  const bool acceptable = spec.is_null() || spec.is_string() || spec.is_object();
  FUZZ_CHECK(filter.ok() == acceptable,
             lotus::cat("filter ", spec.dump(-1, ' ', false, Json::error_handler_t::replace),
                        filter.ok() ? " accepted" : " refused"));
  if (!filter.ok()) {
    FUZZ_CHECK(!lotus::message_of(filter.status()).empty(), "no message");
    return 0;
  }
  FUZZ_CHECK(filter->spec() == spec, "the filter does not keep its spec");
  FUZZ_CHECK(filter->empty() == spec.is_null(), "empty()");
  const bool matched = filter->matches(event_data);
  FUZZ_CHECK(matched == reference_matches(spec, event_data),
             lotus::cat("filter ", spec.dump(-1, ' ', false, Json::error_handler_t::replace),
                        " on ", event_data.dump(-1, ' ', false, Json::error_handler_t::replace),
                        ": matches() says ", matched));
  // The globs the filter just ran, against the reference too.
  if (spec.is_string() && event_data.is_object() && event_data.contains("path") &&
      event_data["path"].is_string()) {
    check_glob(spec.get<std::string>(), event_data["path"].get<std::string>());
  }
  if (spec.is_object() && event_data.is_object()) {
    for (const auto& [key, expected] : spec.items()) {
      if (expected.is_string() && event_data.contains(key) && event_data[key].is_string()) {
        check_glob(expected.get<std::string>(), event_data[key].get<std::string>());
      }
    }
  }
  return 0;
}
