// Fuzz target for lotus::event_from_json_text and EventId::parse: events
// arrive as JSON from other processes (the Redis bus, HTTP, plugins). Parsing
// must return a Status for every input; an event that parses must pass
// validate_event and survive to_json -> event_from_json (and a trip through
// text) unchanged.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "lotus/event.h"
#include "lotus/strings.h"

namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The whole input as a UUID: a parsed id prints as the (lowercased) text and
// parses back to itself.
void check_event_id(std::string_view text) {
  lotus::Result<lotus::EventId> id = lotus::EventId::parse(text);
  if (!id.ok()) {
    FUZZ_CHECK(id.status().code() == absl::StatusCode::kInvalidArgument,
               lotus::message_of(id.status()));
    return;
  }
  const std::string printed = id->to_string();
  FUZZ_CHECK(printed == lowercase(text), lotus::cat(text, " printed as ", printed));
  lotus::Result<lotus::EventId> again = lotus::EventId::parse(printed);
  FUZZ_CHECK(again.ok() && *again == *id, printed);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_event_id(text);

  lotus::Result<lotus::Event> event = lotus::event_from_json_text(text);
  if (!event.ok()) {
    FUZZ_CHECK(event.status().code() == absl::StatusCode::kInvalidArgument,
               lotus::message_of(event.status()));
    FUZZ_CHECK(!lotus::message_of(event.status()).empty(), "an error without a message");
    return 0;
  }
  lotus::Status valid = lotus::validate_event(*event);
  FUZZ_CHECK(valid.ok(), lotus::message_of(valid));

  const lotus::Json json = lotus::to_json(*event);
  lotus::Result<lotus::Event> again = lotus::event_from_json(json);
  FUZZ_CHECK(again.ok(), lotus::cat("to_json output rejected: ", lotus::message_of(again.status()),
                                    "\n", json.dump()));
  FUZZ_CHECK(*again == *event, lotus::cat("round trip changed the event: ", json.dump()));

  // What a remote bus does: serialize, send, parse.
  const std::string wire = json.dump();
  lotus::Result<lotus::Event> received = lotus::event_from_json_text(wire);
  FUZZ_CHECK(received.ok(),
             lotus::cat("serialized event rejected: ", lotus::message_of(received.status())));
  FUZZ_CHECK(*received == *event, lotus::cat("text round trip changed the event: ", wire));
  return 0;
}
