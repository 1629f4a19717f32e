// The JSON text of an event as the Redis bus sends it: exactly what
// to_json(event).dump() gives, written straight into a string. Publishing
// spent most of its time building the JSON tree and in nlohmann's
// character-by-character string escaping; plain ASCII strings (the common
// case) are copied whole here.
#pragma once

#include <string>

#include "lotus/event.h"

namespace lotus {

// Appends `value` as nlohmann's dump() writes it (compact, keys in order).
void append_json(std::string& out, const Json& value);
// Appends `text` as a JSON string.
void append_json_string(std::string& out, const std::string& text);
// The event's JSON text; `to_json(event).dump()` byte for byte.
std::string event_text(const Event& event);

}  // namespace lotus
