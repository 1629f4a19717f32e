#include "bus/event_text.h"

#include <charconv>
#include <cstdint>
#include <cstring>

namespace lotus {

namespace {

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// Whether any byte of `w` is zero.
constexpr uint64_t zero_byte(uint64_t w) { return (w - kOnes) & ~w & kHighs; }

// Whether any of these 8 bytes needs more than copying into a JSON string:
// a control character, DEL, a byte of a UTF-8 sequence, '"' or '\\'.
constexpr bool needs_care(uint64_t w) {
  return ((w & kHighs) | ((w - kOnes * 0x20) & ~w & kHighs) | zero_byte(w ^ (kOnes * 0x7f)) |
          zero_byte(w ^ (kOnes * '"')) | zero_byte(w ^ (kOnes * '\\'))) != 0;
}

bool plain(const std::string& text) {
  const char* p = text.data();
  size_t n = text.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if (needs_care(w)) return false;
  }
  for (; n > 0; ++p, --n) {
    const auto u = static_cast<unsigned char>(*p);
    if (u < 0x20 || u >= 0x7f || *p == '"' || *p == '\\') return false;
  }
  return true;
}

}  // namespace

void append_json_string(std::string& out, const std::string& text) {
  if (!plain(text)) {
    // Escapes, and UTF-8 (which nlohmann checks): its own writer.
    out += Json(text).dump();
    return;
  }
  out.reserve(out.size() + text.size() + 2);
  out.push_back('"');
  out += text;
  out.push_back('"');
}

void append_json(std::string& out, const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      out += "null";
      return;
    case Json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return;
    case Json::value_t::string:
      append_json_string(out, value.get_ref<const std::string&>());
      return;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: {
      char digits[24];
      auto end = value.is_number_unsigned()
                     ? std::to_chars(digits, digits + sizeof digits, value.get<uint64_t>()).ptr
                     : std::to_chars(digits, digits + sizeof digits, value.get<int64_t>()).ptr;
      out.append(digits, end);
      return;
    }
    case Json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : value.get_ref<const Json::object_t&>()) {
        if (!first) out.push_back(',');
        first = false;
        append_json_string(out, key);
        out.push_back(':');
        append_json(out, item);
      }
      out.push_back('}');
      return;
    }
    case Json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : value) {
        if (!first) out.push_back(',');
        first = false;
        append_json(out, item);
      }
      out.push_back(']');
      return;
    }
    default:  // floats (shortest round-trip form), binary, discarded
      out += value.dump();
      return;
  }
}

std::string event_text(const Event& event) {
  if (event.metadata.extra.is_object() && !event.metadata.extra.empty()) {
    return to_json(event).dump();
  }
  std::string out;
  out.reserve(256 + event.channel.size() + event.source.size());
  out += "{\"channel\":";
  append_json_string(out, event.channel);
  out += ",\"data\":";
  append_json(out, event.data);
  out += ",\"id\":\"";
  out += event.id.to_string();
  out += "\",\"metadata\":{";
  bool first = true;
  // In key order, as nlohmann writes an object.
  for (const auto& [key, value] : {std::pair<const char*, const std::string*>{
                                       "correlation_id", &event.metadata.correlation_id},
                                   {"reply_to", &event.metadata.reply_to},
                                   {"trace_id", &event.metadata.trace_id},
                                   {"user_id", &event.metadata.user_id}}) {
    if (value->empty()) continue;
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    out += key;
    out += "\":";
    append_json_string(out, *value);
  }
  out += "},\"source\":";
  append_json_string(out, event.source);
  out += ",\"timestamp\":";
  out += Json(event.timestamp).dump();
  out.push_back('}');
  return out;
}

}  // namespace lotus
