// event_text() must be to_json(event).dump() byte for byte: other nodes and
// older readers parse it, and tests compare payloads.
#include "bus/event_text.h"

#include <limits>

#include <gtest/gtest.h>

namespace lotus {
namespace {

Event sample(Json data) {
  Event event = Event::make("perception.file_changed", "file_watcher", std::move(data));
  event.id = EventId::generate();
  event.timestamp = 1764180000.123456;
  return event;
}

TEST(EventTextTest, IsWhatTheJsonTreeDumps) {
  const std::vector<Json> cases = {
      Json::object(),
      Json{{"payload", std::string(300, 'x')}},
      Json{{"quote", "say \"hi\"\\ now"}, {"tab", "a\tb\nc"}, {"control", std::string("\x01", 1)}},
      Json{{"utf8", "caf\xc3\xa9 \xe2\x82\xac"}, {"emoji", "\xf0\x9f\x98\x80"}},
      Json{{"del", "\x7f"}, {"empty", ""}},
      Json{{"ints",
            {0, -1, 42, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}},
           {"unsigned", std::numeric_limits<uint64_t>::max()}},
      Json{{"floats", {0.0, -0.5, 1.5, 1e20, 1e-7, 3.141592653589793, 100.0}}},
      Json{{"nested", {{"b", {{"z", nullptr}, {"a", true}}}, {"a", Json::array()}}},
           {"flags", {true, false, nullptr}}},
      Json{{"key with \"quotes\"", 1}, {"k\xc3\xa9y", 2}},
  };
  for (const Json& data : cases) {
    Event event = sample(data);
    EXPECT_EQ(event_text(event), to_json(event).dump()) << data.dump();
    event.metadata.trace_id = "trace-1";
    event.metadata.reply_to = "reply.x";
    event.metadata.correlation_id = "7-abc";
    event.metadata.user_id = "u\"1";
    EXPECT_EQ(event_text(event), to_json(event).dump()) << data.dump();
    event.metadata.extra = Json{{"route", {{"math", "node-a"}}}};
    EXPECT_EQ(event_text(event), to_json(event).dump()) << data.dump();
  }
}

// Strings are scanned eight bytes at a time: every byte that needs escaping
// must be caught in every position of a word and in the tail.
TEST(EventTextTest, EveryByteNeedingCareIsFoundAnywhere) {
  for (int byte = 1; byte < 256; ++byte) {
    if (byte >= 0x80) continue;  // alone, not UTF-8: covered by the invalid case below
    for (size_t at = 0; at < 19; ++at) {
      std::string text(19, 'a');
      text[at] = static_cast<char>(byte);
      Event event = sample(Json{{"s", text}});
      ASSERT_EQ(event_text(event), to_json(event).dump()) << "byte " << byte << " at " << at;
    }
  }
  for (size_t at = 0; at < 18; ++at) {
    std::string text(18, 'a');
    text.replace(at, 2, "\xc3\xa9");  // é
    Event event = sample(Json{{"s", text}});
    ASSERT_EQ(event_text(event), to_json(event).dump()) << "at " << at;
  }
}

TEST(EventTextTest, InvalidUtf8FailsAsTheJsonWriterDoes) {
  Event event = sample(Json{{"bad", "\xff\xfe"}});
  EXPECT_THROW(event_text(event), Json::type_error);
  EXPECT_THROW(to_json(event).dump(), Json::type_error);
}

}  // namespace
}  // namespace lotus
