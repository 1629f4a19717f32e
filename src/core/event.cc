#include "lotus/event.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "lotus/channel.h"
#include "lotus/strings.h"

namespace lotus {
namespace {

// A per-thread generator: UUIDv7 needs 74 random bits per id, and a shared
// generator behind a lock would serialize every publisher.
std::mt19937_64& thread_rng() {
  thread_local std::mt19937_64 rng{
      std::random_device{}() ^
      static_cast<uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()))};
  return rng;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status field_error(std::string_view field, std::string_view reason) {
  return absl::InvalidArgumentError(cat("event field \"", field, "\": ", reason));
}

const char* json_type_name(const Json& j) { return j.type_name(); }

Result<std::string> optional_string(const Json& object, const char* key, std::string_view where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return field_error(cat(where, key), cat("must be a string, got ", json_type_name(*it)));
  }
  return it->get<std::string>();
}

// Nesting deeper than this is refused before it is parsed or copied: JSON
// values are copied and printed recursively, and a hostile "[[[[..." would
// otherwise exhaust the stack.
constexpr size_t kMaxJsonDepth = 64;

// Depth of the deepest array/object in `text`, counting only brackets outside
// strings; stops counting once past `limit`.
size_t json_text_depth(std::string_view text, size_t limit) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size() && deepest <= limit; ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

// The same for an already built value, without recursion.
bool json_deeper_than(const Json& root, size_t limit) {
  std::vector<std::pair<const Json*, size_t>> pending{{&root, 1}};
  while (!pending.empty()) {
    auto [node, depth] = pending.back();
    pending.pop_back();
    if (!node->is_structured()) continue;
    if (depth > limit) return true;
    for (const auto& child : *node) pending.emplace_back(&child, depth + 1);
  }
  return false;
}

}  // namespace

EventId EventId::generate() { return generate_at(std::chrono::system_clock::now()); }

EventId EventId::generate_at(std::chrono::system_clock::time_point now) {
  // Monotonic within a thread: ids from one publisher sort in publish order
  // even when several fall in the same millisecond.
  thread_local uint64_t last_millis = 0;
  thread_local uint64_t sequence = 0;
  uint64_t millis = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  auto& rng = thread_rng();
  if (millis <= last_millis) {
    millis = last_millis;
    ++sequence;
    if (sequence >= 0xFFF) {  // 12-bit counter exhausted: borrow the next millisecond
      ++millis;
      sequence = rng() & 0x3FF;
    }
  } else {
    sequence = rng() & 0x3FF;  // leave headroom for increments
  }
  last_millis = millis;

  EventId id;
  auto& b = id.bytes_;
  for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(millis >> (8 * (5 - i)));
  b[6] = static_cast<uint8_t>(0x70 | ((sequence >> 8) & 0x0F));
  b[7] = static_cast<uint8_t>(sequence & 0xFF);
  uint64_t r = rng();
  b[8] = static_cast<uint8_t>(0x80 | ((r >> 56) & 0x3F));  // RFC 9562 variant 10xx
  for (int i = 9; i < 16; ++i) b[i] = static_cast<uint8_t>(r >> (8 * (15 - i)));
  return id;
}

Result<EventId> EventId::parse(std::string_view text) {
  if (text.size() != 36) {
    return absl::InvalidArgumentError(
        cat("\"", text, "\" is not a UUID: expected 36 characters, got ", text.size()));
  }
  EventId id;
  size_t byte = 0;
  for (size_t i = 0; i < text.size();) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') {
        return absl::InvalidArgumentError(
            cat("\"", text, "\" is not a UUID: expected '-' at position ", i));
      }
      ++i;
      continue;
    }
    int hi = hex_value(text[i]);
    int lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          cat("\"", text, "\" is not a UUID: bad hex digit at position ", i));
    }
    id.bytes_[byte++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return id;
}

std::string EventId::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[bytes_[i] >> 4]);
    out.push_back(kHex[bytes_[i] & 0xF]);
  }
  return out;
}

uint64_t EventId::unix_millis() const {
  uint64_t millis = 0;
  for (int i = 0; i < 6; ++i) millis = millis << 8 | bytes_[i];
  return millis;
}

bool EventId::is_nil() const {
  for (auto b : bytes_) {
    if (b != 0) return false;
  }
  return true;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Event Event::make(std::string channel, std::string source, Json data) {
  // One clock reading serves both the id and the timestamp.
  auto now = std::chrono::system_clock::now();
  Event event;
  event.id = EventId::generate_at(now);
  event.channel = std::move(channel);
  event.source = std::move(source);
  event.timestamp = std::chrono::duration<double>(now.time_since_epoch()).count();
  event.data = std::move(data);
  return event;
}

Status validate_event(const Event& event) {
  if (event.id.is_nil()) return field_error("id", "is missing");
  if (event.id.version() != 7) {
    return field_error("id", cat("must be a UUIDv7, got version ", event.id.version()));
  }
  if (Status s = validate_channel(event.channel); !s.ok()) {
    return field_error("channel", message_of(s));
  }
  if (event.source.empty()) return field_error("source", "must name the publishing module");
  if (!(event.timestamp > 0.0)) return field_error("timestamp", "must be positive seconds");
  if (!event.data.is_object()) {
    return field_error("data", cat("must be an object, got ", json_type_name(event.data)));
  }
  return absl::OkStatus();
}

Json to_json(const Event& event) {
  Json metadata = event.metadata.extra.is_object() ? event.metadata.extra : Json::object();
  auto put = [&](const char* key, const std::string& value) {
    if (!value.empty()) metadata[key] = value;
  };
  put("trace_id", event.metadata.trace_id);
  put("user_id", event.metadata.user_id);
  put("correlation_id", event.metadata.correlation_id);
  put("reply_to", event.metadata.reply_to);
  return Json{{"id", event.id.to_string()}, {"channel", event.channel},
              {"source", event.source},     {"timestamp", event.timestamp},
              {"data", event.data},         {"metadata", std::move(metadata)}};
}

Result<Event> event_from_json(const Json& json) {
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        cat("event must be a JSON object, got ", json_type_name(json)));
  }
  static constexpr std::string_view kKnown[] = {"id",        "channel", "source",
                                                "timestamp", "data",    "metadata"};
  for (const auto& [key, value] : json.items()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      return field_error(key,
                         "is not an event field (known: id, channel, source, timestamp, "
                         "data, metadata)");
    }
  }
  Event event;
  auto id = json.find("id");
  if (id == json.end() || !id->is_string()) return field_error("id", "must be a UUID string");
  auto parsed_id = EventId::parse(id->get<std::string>());
  if (!parsed_id.ok()) return field_error("id", message_of(parsed_id.status()));
  event.id = *parsed_id;

  auto channel = json.find("channel");
  if (channel == json.end() || !channel->is_string()) {
    return field_error("channel", "must be a string");
  }
  event.channel = channel->get<std::string>();
  auto source = json.find("source");
  if (source == json.end() || !source->is_string())
    return field_error("source", "must be a string");
  event.source = source->get<std::string>();
  auto timestamp = json.find("timestamp");
  if (timestamp == json.end() || !timestamp->is_number()) {
    return field_error("timestamp", "must be a number of seconds");
  }
  event.timestamp = timestamp->get<double>();
  auto data = json.find("data");
  if (data != json.end() && json_deeper_than(*data, kMaxJsonDepth)) {
    return field_error("data", cat("nests deeper than ", kMaxJsonDepth, " levels"));
  }
  event.data = data == json.end() ? Json::object() : *data;

  auto metadata = json.find("metadata");
  if (metadata != json.end() && !metadata->is_null()) {
    if (!metadata->is_object()) return field_error("metadata", "must be an object");
    if (json_deeper_than(*metadata, kMaxJsonDepth)) {
      return field_error("metadata", cat("nests deeper than ", kMaxJsonDepth, " levels"));
    }
    for (auto [field, target] : {std::pair{"trace_id", &event.metadata.trace_id},
                                 std::pair{"user_id", &event.metadata.user_id},
                                 std::pair{"correlation_id", &event.metadata.correlation_id},
                                 std::pair{"reply_to", &event.metadata.reply_to}}) {
      auto value = optional_string(*metadata, field, "metadata.");
      if (!value.ok()) return value.status();
      *target = std::move(*value);
    }
    for (const auto& [key, value] : metadata->items()) {
      if (key != "trace_id" && key != "user_id" && key != "correlation_id" && key != "reply_to") {
        event.metadata.extra[key] = value;
      }
    }
    if (!event.metadata.reply_to.empty()) {
      if (Status s = validate_channel(event.metadata.reply_to); !s.ok()) {
        return field_error("metadata.reply_to", message_of(s));
      }
    }
  }
  if (Status s = validate_event(event); !s.ok()) return s;
  return event;
}

Result<Event> event_from_json_text(std::string_view text) {
  if (json_text_depth(text, kMaxJsonDepth + 2) > kMaxJsonDepth + 2) {
    return absl::InvalidArgumentError(
        cat("event JSON nests deeper than ", kMaxJsonDepth, " levels in its data"));
  }
  try {
    return event_from_json(Json::parse(text));
  } catch (const Json::exception& e) {  // parse_error, and out_of_range for 1e400
    return absl::InvalidArgumentError(cat("event is not valid JSON: ", e.what()));
  }
}

}  // namespace lotus
