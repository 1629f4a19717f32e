// cat(): builds a message from pieces, and message_of() views a Status text.
//
// The Debian build of absl has its own absl::string_view, distinct from
// std::string_view, so absl::StrCat and Status::message() do not mix with the
// std::string_view the rest of LOTUS uses. These two helpers bridge that.
#pragma once

#include <concepts>
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "lotus/status.h"

namespace lotus {
namespace detail {

inline void append_piece(std::string& out, std::string_view piece) { out.append(piece); }
inline void append_piece(std::string& out, const std::string& piece) { out.append(piece); }
inline void append_piece(std::string& out, const char* piece) { out.append(piece); }
inline void append_piece(std::string& out, absl::string_view piece) {
  out.append(piece.data(), piece.size());
}
inline void append_piece(std::string& out, char piece) { out.push_back(piece); }
inline void append_piece(std::string& out, bool piece) { out.append(piece ? "true" : "false"); }
template <std::integral T>
requires(!std::same_as<T, char> && !std::same_as<T, bool>) void append_piece(std::string& out,
                                                                             T piece) {
  out.append(std::to_string(piece));
}
template <std::floating_point T>
void append_piece(std::string& out, T piece) {
  char buffer[32];
  int n = std::snprintf(buffer, sizeof buffer, "%g", static_cast<double>(piece));
  out.append(buffer, n > 0 ? static_cast<size_t>(n) : 0);
}

}  // namespace detail

template <typename... Pieces>
std::string cat(const Pieces&... pieces) {
  std::string out;
  (detail::append_piece(out, pieces), ...);
  return out;
}

inline std::string_view message_of(const Status& status) {
  absl::string_view text = status.message();
  return {text.data(), text.size()};
}

}  // namespace lotus
