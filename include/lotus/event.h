// Event: the envelope every message on the LOTUS bus travels in.
//
// Fields follow the design: a time-ordered UUIDv7 id, a dot-separated
// channel, the publishing module (source), a timestamp in seconds, a JSON
// object of data, and metadata for tracing and request/reply.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lotus/status.h"

namespace lotus {

using Json = nlohmann::json;

// 128-bit UUIDv7: 48 bits of Unix milliseconds, then random bits, so ids sort
// by creation time. Kept binary; formatted only when serialized.
class EventId {
 public:
  EventId() = default;
  static EventId generate();
  // The same, stamped with a clock reading the caller already has.
  static EventId generate_at(std::chrono::system_clock::time_point now);
  static Result<EventId> parse(std::string_view text);

  std::string to_string() const;
  uint64_t unix_millis() const;
  bool is_nil() const;
  int version() const { return bytes_[6] >> 4; }

  friend bool operator==(const EventId&, const EventId&) = default;
  friend auto operator<=>(const EventId&, const EventId&) = default;
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }

 private:
  std::array<uint8_t, 16> bytes_{};
};

struct EventMetadata {
  std::string trace_id;
  std::string user_id;
  std::string correlation_id;
  std::string reply_to;
  Json extra;  // any further metadata keys, kept as given (null when none: no allocation)

  bool operator==(const EventMetadata&) const = default;
};

struct Event {
  EventId id;
  std::string channel;
  std::string source;
  double timestamp = 0.0;  // seconds since the Unix epoch
  Json data = Json::object();
  EventMetadata metadata;

  // A new event with a fresh id and the current time.
  static Event make(std::string channel, std::string source, Json data = Json::object());

  bool operator==(const Event&) const = default;
};

using EventPtr = std::shared_ptr<const Event>;

// Checks an event before it enters the bus: valid channel name, object data,
// non-empty source, positive timestamp, v7 id.
Status validate_event(const Event& event);

Json to_json(const Event& event);
// Parses and validates; the error names the offending field.
Result<Event> event_from_json(const Json& json);
Result<Event> event_from_json_text(std::string_view text);

double now_seconds();

}  // namespace lotus
