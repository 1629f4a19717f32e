#include "tool_args.h"

#include <array>
#include <cmath>
#include <cstdlib>
#include <ctime>

#include "lotus/strings.h"

namespace lotus::tools {
namespace {

const Json* find(const Json& args, std::string_view name) {
  if (!args.is_object()) return nullptr;
  auto it = args.find(name);
  if (it == args.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string shown(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// Length of the well-formed UTF-8 sequence at text[i], 0 when there is none.
size_t sequence_length(std::string_view text, size_t i) {
  const auto lead = static_cast<unsigned char>(text[i]);
  size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    const auto byte = static_cast<unsigned char>(text[i + k]);
    if (k == 1 ? (byte < low || byte > high) : (byte & 0xC0) != 0x80) return 0;
  }
  return length;
}

constexpr std::string_view kBase64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

Status check_object(const Json& args) {
  if (args.is_null() || args.is_object()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      cat("arguments: expected a JSON object of named arguments, got ", shown(args)));
}

Result<std::optional<std::string>> string_arg(const Json& args, std::string_view name) {
  const Json* value = find(args, name);
  if (value == nullptr) return std::optional<std::string>();
  if (!value->is_string()) {
    return absl::InvalidArgumentError(cat(name, ": expected a string, got ", shown(*value)));
  }
  return std::optional<std::string>(value->get<std::string>());
}

Result<std::optional<bool>> bool_arg(const Json& args, std::string_view name) {
  const Json* value = find(args, name);
  if (value == nullptr) return std::optional<bool>();
  if (!value->is_boolean()) {
    return absl::InvalidArgumentError(cat(name, ": expected true or false, got ", shown(*value)));
  }
  return std::optional<bool>(value->get<bool>());
}

Result<std::optional<int64_t>> int_arg(const Json& args, std::string_view name, int64_t min,
                                       int64_t max) {
  const Json* value = find(args, name);
  if (value == nullptr) return std::optional<int64_t>();
  int64_t n = 0;
  if (value->is_number_integer()) {
    if (value->is_number_unsigned() && value->get<uint64_t>() > static_cast<uint64_t>(max)) {
      n = max + (max < INT64_MAX ? 1 : 0);
    } else {
      n = value->get<int64_t>();
    }
  } else if (value->is_number_float() && std::nearbyint(value->get<double>()) == *value &&
             std::abs(value->get<double>()) < 9e18) {
    n = static_cast<int64_t>(value->get<double>());  // 3.0 from a model is 3
  } else {
    return absl::InvalidArgumentError(cat(name, ": expected an integer, got ", shown(*value)));
  }
  if (n < min || n > max) {
    return absl::InvalidArgumentError(
        cat(name, ": must be between ", min, " and ", max, ", got ", shown(*value)));
  }
  return std::optional<int64_t>(n);
}

Result<std::optional<double>> number_arg(const Json& args, std::string_view name, double min,
                                         double max) {
  const Json* value = find(args, name);
  if (value == nullptr) return std::optional<double>();
  if (!value->is_number()) {
    return absl::InvalidArgumentError(cat(name, ": expected a number, got ", shown(*value)));
  }
  double n = value->get<double>();
  if (!(n >= min && n <= max)) {
    return absl::InvalidArgumentError(
        cat(name, ": must be between ", min, " and ", max, ", got ", shown(*value)));
  }
  return std::optional<double>(n);
}

Result<std::vector<std::string>> string_list(const Json& value, std::string_view key) {
  std::vector<std::string> out;
  if (value.is_null()) return out;
  if (!value.is_array()) {
    return absl::InvalidArgumentError(
        cat("config ", key, ": expected a list of strings, got ", shown(value)));
  }
  for (const Json& item : value) {
    if (!item.is_string()) {
      return absl::InvalidArgumentError(
          cat("config ", key, ": expected only strings, got ", shown(item)));
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<int64_t> config_int(const Json& config, std::string_view key, int64_t fallback,
                           int64_t min) {
  auto value = int_arg(config, key, min, INT64_MAX);
  if (!value.ok()) return absl::InvalidArgumentError(cat("config ", message_of(value.status())));
  return value->value_or(fallback);
}

bool is_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t length = sequence_length(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

std::string to_utf8(std::string_view bytes, bool* lossy) {
  if (lossy != nullptr) *lossy = false;
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t length = sequence_length(bytes, i);
    if (length == 0) {
      out.append("\xEF\xBF\xBD");
      if (lossy != nullptr) *lossy = true;
      ++i;
    } else {
      out.append(bytes.substr(i, length));
      i += length;
    }
  }
  return out;
}

size_t utf8_cut(std::string_view text, size_t max_bytes) {
  if (max_bytes >= text.size()) return text.size();
  size_t cut = max_bytes;
  // Back up over continuation bytes (at most three) to a sequence start.
  for (int k = 0; k < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80; ++k) {
    --cut;
  }
  return cut;
}

size_t utf8_whole(std::string_view text) {
  const size_t size = text.size();
  for (size_t back = 1; back <= 3 && back <= size; ++back) {
    const auto byte = static_cast<unsigned char>(text[size - back]);
    if ((byte & 0xC0) == 0x80) continue;  // a continuation byte: keep looking for the lead
    size_t length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
    return length > back ? size - back : size;
  }
  return size;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = static_cast<unsigned char>(bytes[i]) << 16 |
                 static_cast<unsigned char>(bytes[i + 1]) << 8 |
                 static_cast<unsigned char>(bytes[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(kBase64[(n >> shift) & 63]);
  }
  if (i < bytes.size()) {
    uint32_t n = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(kBase64[(n >> 18) & 63]);
    out.push_back(kBase64[(n >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? kBase64[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::array<int, 256> value;
  value.fill(-1);
  for (size_t i = 0; i < kBase64.size(); ++i) value[static_cast<unsigned char>(kBase64[i])] = i;
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  size_t padding = 0;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == ' ') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    int v = value[static_cast<unsigned char>(c)];
    if (v < 0 || padding > 0) return std::nullopt;
    bits = bits << 6 | static_cast<uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  if (padding > 2 || count >= 6) return std::nullopt;
  return out;
}

std::string iso8601_utc(int64_t seconds) {
  std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buffer, n);
}

Result<std::string> expand_home(std::string_view text, std::string_view what) {
  if (text != "~" && !text.starts_with("~/")) return std::string(text);
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    return absl::FailedPreconditionError(
        cat(what, " \"", text, "\" starts with ~ but HOME is not set"));
  }
  return cat(home, text.substr(1));
}

}  // namespace lotus::tools
