#include "llm/stream_parsers.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lotus::llm {
namespace {

std::vector<SseEvent> parse_sse(const std::vector<std::string>& pieces, bool* partial = nullptr) {
  std::vector<SseEvent> events;
  SseParser parser([&events](const SseEvent& e) {
    events.push_back(e);
    return absl::OkStatus();
  });
  for (const auto& p : pieces) EXPECT_TRUE(parser.feed(p).ok());
  if (partial != nullptr) *partial = parser.has_partial_event();
  return events;
}

TEST(SseParser, ParsesNamedEventsAndJoinsDataLines) {
  auto events = parse_sse({"event: ping\ndata: {}\n\n: keep-alive\n\ndata: a\ndata: b\nid: 7\n\n"});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event, "ping");
  EXPECT_EQ(events[0].data, "{}");
  EXPECT_EQ(events[1].event, "message");
  EXPECT_EQ(events[1].data, "a\nb");
  EXPECT_EQ(events[1].id, "7");
}

TEST(SseParser, SameEventsWhereverTheStreamIsSplit) {
  const std::string stream =
      "\xEF\xBB\xBF"
      "event: content_block_delta\r\ndata: {\"x\": \"1\"}\r\n\r\n"
      "event: message_stop\rdata:{\"y\":2}\r\rdata: [DONE]\n\n";
  auto whole = parse_sse({stream});
  ASSERT_EQ(whole.size(), 3u);
  EXPECT_EQ(whole[0].event, "content_block_delta");
  EXPECT_EQ(whole[0].data, "{\"x\": \"1\"}");
  EXPECT_EQ(whole[1].data, "{\"y\":2}");
  EXPECT_EQ(whole[2].data, "[DONE]");
  for (size_t a = 0; a <= stream.size(); ++a) {
    for (size_t b = a; b <= stream.size(); b += 7) {
      auto events = parse_sse({stream.substr(0, a), stream.substr(a, b - a), stream.substr(b)});
      ASSERT_EQ(events.size(), whole.size()) << "split at " << a << "," << b;
      for (size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].event, whole[i].event);
        EXPECT_EQ(events[i].data, whole[i].data);
      }
    }
  }
}

TEST(SseParser, ReportsAnEventCutBeforeItsBlankLine) {
  bool partial = false;
  auto events = parse_sse({"data: {\"complete\":1}\n\ndata: {\"cut\":"}, &partial);
  EXPECT_EQ(events.size(), 1u);
  EXPECT_TRUE(partial);
  parse_sse({"data: 1\n\n"}, &partial);
  EXPECT_FALSE(partial);
}

TEST(SseParser, HandlerErrorStopsParsing) {
  int seen = 0;
  SseParser parser([&seen](const SseEvent&) {
    ++seen;
    return absl::InternalError("bad");
  });
  EXPECT_FALSE(parser.feed("data: 1\n\ndata: 2\n\n").ok());
  EXPECT_EQ(seen, 1);
}

TEST(NdjsonParser, LinesSplitAnywhere) {
  const std::string stream = "{\"a\":1}\n\n{\"b\":\"x\\ny\"}\r\n{\"c\":3}\n";
  for (size_t a = 0; a <= stream.size(); ++a) {
    std::vector<std::string> lines;
    NdjsonParser parser([&lines](std::string_view line) {
      lines.emplace_back(line);
      return absl::OkStatus();
    });
    ASSERT_TRUE(parser.feed(stream.substr(0, a)).ok());
    ASSERT_TRUE(parser.feed(stream.substr(a)).ok());
    bool trailing = true;
    ASSERT_TRUE(parser.finish(&trailing).ok());
    EXPECT_FALSE(trailing);
    ASSERT_EQ(lines.size(), 3u) << "split at " << a;
    EXPECT_EQ(lines[1], "{\"b\":\"x\\ny\"}");
  }
}

TEST(NdjsonParser, FinishDeliversALastLineWithoutNewline) {
  std::vector<std::string> lines;
  NdjsonParser parser([&lines](std::string_view line) {
    lines.emplace_back(line);
    return absl::OkStatus();
  });
  ASSERT_TRUE(parser.feed("{\"a\":1}\n{\"done\":").ok());
  EXPECT_EQ(lines.size(), 1u);
  bool trailing = false;
  ASSERT_TRUE(parser.finish(&trailing).ok());
  EXPECT_TRUE(trailing);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], "{\"done\":");
}

}  // namespace
}  // namespace lotus::llm
