// Argument reading and text helpers shared by the built-in tool modules
// (fs, shell).
//
// The tool registry validates arguments against the manifest's JSON Schema
// before a call, but a tool is also reachable straight over the bus, so each
// tool still checks types itself; these helpers make every such error name
// the argument and what was expected. Output text is made valid UTF-8 here
// because JSON (and every LLM API) requires it, while files and process
// output are just bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lotus/event.h"
#include "lotus/status.h"

namespace lotus::tools {

// Each returns nullopt when the argument is absent or null, an
// InvalidArgument error naming it when it has the wrong type or range.
Result<std::optional<std::string>> string_arg(const Json& args, std::string_view name);
Result<std::optional<bool>> bool_arg(const Json& args, std::string_view name);
Result<std::optional<int64_t>> int_arg(const Json& args, std::string_view name, int64_t min,
                                       int64_t max);
Result<std::optional<double>> number_arg(const Json& args, std::string_view name, double min,
                                         double max);

// The arguments must be a JSON object (null counts as empty).
Status check_object(const Json& args);

// A list of strings from config, or an InvalidArgument naming the key.
Result<std::vector<std::string>> string_list(const Json& value, std::string_view key);
// A positive integer from config, `fallback` when absent.
Result<int64_t> config_int(const Json& config, std::string_view key, int64_t fallback, int64_t min);

// True when `text` is well-formed UTF-8 (RFC 3629).
bool is_utf8(std::string_view text);
// `bytes` with each byte that is not part of well-formed UTF-8 replaced by
// U+FFFD; `*lossy` (when given) says whether anything was replaced.
std::string to_utf8(std::string_view bytes, bool* lossy = nullptr);
// The largest length <= max_bytes at which `text` can be cut without
// splitting a UTF-8 sequence.
size_t utf8_cut(std::string_view text, size_t max_bytes);
// The length of `text` without an incomplete UTF-8 sequence at its end (a
// chunk of a longer text that stopped inside a character).
size_t utf8_whole(std::string_view text);

std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

// "2024-05-01T12:00:00Z" for a time in seconds since the Unix epoch.
std::string iso8601_utc(int64_t seconds);

// `home` expansion of "~" and "~/..."; other text is returned as given.
// Fails when the text starts with "~" but HOME is not set.
Result<std::string> expand_home(std::string_view text, std::string_view what);

}  // namespace lotus::tools
