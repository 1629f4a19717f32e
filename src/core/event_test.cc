#include "lotus/event.h"

#include "lotus/strings.h"

#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lotus {
namespace {

using ::testing::HasSubstr;

TEST(EventIdTest, GeneratesVersion7WithVariantAndCurrentTime) {
  EventId id = EventId::generate();
  EXPECT_EQ(id.version(), 7);
  EXPECT_EQ(id.bytes()[8] & 0xC0, 0x80);
  double ms = now_seconds() * 1000.0;
  EXPECT_NEAR(static_cast<double>(id.unix_millis()), ms, 2000.0);
}

TEST(EventIdTest, IdsFromOneThreadAreUniqueAndSorted) {
  std::set<EventId> seen;
  EventId previous = EventId::generate();
  for (int i = 0; i < 100000; ++i) {
    EventId id = EventId::generate();
    ASSERT_LT(previous, id) << "ids must be time-ordered within a thread";
    ASSERT_TRUE(seen.insert(id).second);
    previous = id;
  }
}

TEST(EventIdTest, StringRoundTrip) {
  EventId id = EventId::generate();
  std::string text = id.to_string();
  ASSERT_EQ(text.size(), 36u);
  EXPECT_EQ(text[14], '7');
  auto parsed = EventId::parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, id);
}

TEST(EventIdTest, ParseRejectsMalformedText) {
  EXPECT_THAT(EventId::parse("abc").status().message(), HasSubstr("expected 36 characters"));
  EXPECT_THAT(EventId::parse("0190a3b2-7c4d-7e5f-8a9b-0c1d2e3f4g5h").status().message(),
              HasSubstr("bad hex digit"));
  EXPECT_THAT(EventId::parse("0190a3b2x7c4d-7e5f-8a9b-0c1d2e3f4a5b").status().message(),
              HasSubstr("expected '-'"));
}

TEST(EventTest, JsonRoundTripKeepsEveryField) {
  Event event = Event::make("cognition.task_request", "code_assistant",
                            Json{{"task", "Debug this"}, {"priority", "high"}});
  event.metadata.trace_id = "abc123";
  event.metadata.user_id = "user_001";
  event.metadata.correlation_id = "c-1";
  event.metadata.reply_to = "reply.node1.c-1";
  event.metadata.extra["hop"] = 3;
  Json json = to_json(event);
  EXPECT_EQ(json["metadata"]["trace_id"], "abc123");
  EXPECT_EQ(json["metadata"]["hop"], 3);
  auto back = event_from_json_text(json.dump());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, event);
}

TEST(EventTest, RejectsInvalidEnvelopesWithTheFieldName) {
  Json good = to_json(Event::make("system.boot", "nucleus"));
  auto expect_error = [&](Json json, std::string_view fragment) {
    auto result = event_from_json(json);
    ASSERT_FALSE(result.ok()) << json.dump();
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(std::string(fragment)));
  };
  Json bad = good;
  bad["channel"] = "system..boot";
  expect_error(bad, "event field \"channel\"");
  bad = good;
  bad["channel"] = 5;
  expect_error(bad, "\"channel\": must be a string");
  bad = good;
  bad["data"] = Json::array();
  expect_error(bad, "\"data\": must be an object, got array");
  bad = good;
  bad["id"] = "not-a-uuid";
  expect_error(bad, "\"id\"");
  bad = good;
  bad["source"] = "";
  expect_error(bad, "\"source\"");
  bad = good;
  bad["timestamp"] = "yesterday";
  expect_error(bad, "\"timestamp\"");
  bad = good;
  bad["metadata"] = Json{{"trace_id", 7}};
  expect_error(bad, "\"metadata.trace_id\": must be a string");
  bad = good;
  bad["metadata"] = Json{{"reply_to", "bad channel"}};
  expect_error(bad, "\"metadata.reply_to\"");
  bad = good;
  bad["colour"] = "blue";
  expect_error(bad, "\"colour\": is not an event field");
  bad = good;
  bad["id"] = "0190a3b2-7c4d-4e5f-8a9b-0c1d2e3f4a5b";  // a v4 UUID
  expect_error(bad, "must be a UUIDv7");
  expect_error(Json::array(), "must be a JSON object");
}

TEST(EventTest, RefusesHostileNestingWithoutCrashing) {
  std::string deep(100000, '[');
  auto result = event_from_json_text(deep);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(message_of(result.status())), HasSubstr("nests deeper than"));

  Json data = Json::object();
  Json* cursor = &data;
  for (int i = 0; i < 100; ++i) cursor = &((*cursor)["x"] = Json::object());
  Json envelope = to_json(Event::make("system.boot", "nucleus"));
  envelope["data"] = data;
  auto built = event_from_json(envelope);
  ASSERT_FALSE(built.ok());
  EXPECT_THAT(std::string(message_of(built.status())), HasSubstr("\"data\": nests deeper than 64"));

  envelope["data"] = Json::object();
  envelope["metadata"] = Json{{"deep", data}};
  auto deep_metadata = event_from_json(envelope);
  ASSERT_FALSE(deep_metadata.ok());
  EXPECT_THAT(std::string(message_of(deep_metadata.status())),
              HasSubstr("\"metadata\": nests deeper than 64"));
  envelope.erase("metadata");

  Json fine = Json::object();
  cursor = &fine;
  for (int i = 0; i < 30; ++i) cursor = &((*cursor)["x"] = Json::object());
  envelope["data"] = fine;
  EXPECT_TRUE(event_from_json(envelope).ok());
  EXPECT_TRUE(event_from_json_text(envelope.dump()).ok());
}

TEST(EventTest, ReportsJsonSyntaxErrors) {
  auto result = event_from_json_text("{\"id\": ");
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("not valid JSON"));
}

}  // namespace
}  // namespace lotus
