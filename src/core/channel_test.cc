#include "lotus/channel.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lotus {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string joined_segments(size_t count) {
  std::string name = "s";
  for (size_t i = 1; i < count; ++i) name += ".s";
  return name;
}

// validate_channel ----------------------------------------------------------

TEST(ValidateChannelTest, AcceptsWellFormedNames) {
  for (const char* name :
       {"perception.file_changed", "system", "a.b.c", "A-Z_09.x-y", "memory.updates.v2", "-._"}) {
    EXPECT_TRUE(validate_channel(name).ok()) << name << ": " << validate_channel(name);
  }
}

TEST(ValidateChannelTest, AcceptsTheLimits) {
  EXPECT_TRUE(validate_channel(std::string(kMaxChannelLength, 'a')).ok());
  EXPECT_TRUE(validate_channel(joined_segments(kMaxChannelSegments)).ok());
}

TEST(ValidateChannelTest, RejectsEmptyName) {
  const Status status = validate_channel("");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "channel name is empty");
}

TEST(ValidateChannelTest, NamesTheEmptySegment) {
  EXPECT_EQ(validate_channel("a..b").message(), "channel \"a..b\": segment 2 is empty");
  EXPECT_EQ(validate_channel(".a").message(), "channel \".a\": segment 1 is empty");
  EXPECT_EQ(validate_channel("a.b.").message(), "channel \"a.b.\": segment 3 is empty");
  EXPECT_EQ(validate_channel(".").message(), "channel \".\": segment 1 is empty");
}

TEST(ValidateChannelTest, RejectsTooLong) {
  const Status status = validate_channel(std::string(kMaxChannelLength + 1, 'a'));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("is 256 characters long; the limit is 255"));
  // The quoted name is cut short rather than flooding the message.
  EXPECT_THAT(status.message(), HasSubstr("aaa...\""));
  EXPECT_LT(status.message().size(), 150u);
}

TEST(ValidateChannelTest, RejectsTooManySegments) {
  const Status status = validate_channel(joined_segments(kMaxChannelSegments + 1));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("has 33 segments; the limit is 32"));
}

TEST(ValidateChannelTest, NamesTheInvalidCharacterAndWhere) {
  EXPECT_EQ(validate_channel("a.b c").message(),
            "channel \"a.b c\": segment 2 (\"b c\") has invalid ' ' (space) at position 2; "
            "allowed are letters, digits, '_' and '-', with '.' between segments");
  EXPECT_THAT(validate_channel("perception/file").message(),
              HasSubstr("segment 1 (\"perception/file\") has invalid '/' at position 11"));
  EXPECT_THAT(validate_channel("x.caf\xc3\xa9").message(),
              HasSubstr("has invalid byte 0xc3 at position 4"));
}

TEST(ValidateChannelTest, EscapesControlCharactersInMessages) {
  const Status status = validate_channel(std::string("a.b\nc", 5));
  EXPECT_THAT(status.message(), HasSubstr("channel \"a.b\\nc\""));
  EXPECT_THAT(status.message(), HasSubstr("invalid byte 0x0a at position 2"));
  EXPECT_EQ(status.message().find('\n'), std::string::npos);
}

TEST(ValidateChannelTest, RejectsWildcards) {
  EXPECT_EQ(validate_channel("a.*").message(),
            "channel \"a.*\": segment 2 is the wildcard \"*\"; wildcards are only allowed in "
            "subscription patterns, not in channel names");
  EXPECT_THAT(validate_channel("**.b").message(), HasSubstr("segment 1 is the wildcard \"**\""));
  EXPECT_THAT(validate_channel("a.b*").message(),
              HasSubstr("segment 2 (\"b*\") contains '*'; wildcards are only allowed in "
                        "subscription patterns"));
}

// validate_pattern ----------------------------------------------------------

TEST(ValidatePatternTest, AcceptsWholeSegmentWildcards) {
  for (const char* pattern :
       {"a.b", "*", "**", "a.*", "a.**", "**.b", "*.b.*", "a.**.b", "**.**", "*.**.*"}) {
    EXPECT_TRUE(validate_pattern(pattern).ok()) << pattern << ": " << validate_pattern(pattern);
  }
}

TEST(ValidatePatternTest, RejectsPartialWildcards) {
  EXPECT_EQ(validate_pattern("x.a*b").message(),
            "pattern \"x.a*b\": segment 2 (\"a*b\") contains '*'; wildcards must be whole "
            "segments (\"*\" for one segment, \"**\" for any number)");
  EXPECT_THAT(validate_pattern("***").message(),
              HasSubstr("segment 1 (\"***\") contains '*'; wildcards must be whole segments"));
  EXPECT_THAT(validate_pattern("a.*b").message(), HasSubstr("segment 2"));
  EXPECT_THAT(validate_pattern("a.b**").message(), HasSubstr("wildcards must be whole segments"));
}

TEST(ValidatePatternTest, AppliesTheChannelRules) {
  EXPECT_EQ(validate_pattern("").message(), "pattern name is empty");
  EXPECT_EQ(validate_pattern("a..*").message(), "pattern \"a..*\": segment 2 is empty");
  EXPECT_THAT(validate_pattern("a.?").message(), HasSubstr("has invalid '?' at position 1"));
  EXPECT_THAT(validate_pattern(joined_segments(kMaxChannelSegments + 1)).message(),
              HasSubstr("has 33 segments"));
  EXPECT_THAT(validate_pattern(std::string(kMaxChannelLength + 1, 'a')).message(),
              HasSubstr("256 characters long"));
}

// split_channel -------------------------------------------------------------

TEST(SplitChannelTest, SplitsAtDots) {
  EXPECT_THAT(split_channel("a.bb.ccc"), ElementsAre("a", "bb", "ccc"));
  EXPECT_THAT(split_channel("single"), ElementsAre("single"));
  EXPECT_THAT(split_channel("a..b"), ElementsAre("a", "", "b"));
  EXPECT_THAT(split_channel(".a."), ElementsAre("", "a", ""));
  EXPECT_THAT(split_channel(""), IsEmpty());
}

TEST(SplitChannelTest, ReturnsViewsIntoTheInput) {
  const std::string channel = "x.y";
  const auto segments = split_channel(channel);
  ASSERT_EQ(segments.size(), 2u);
  EXPECT_EQ(segments[1].data(), channel.data() + 2);
}

// pattern_matches -----------------------------------------------------------

TEST(PatternMatchesTest, ExactPatterns) {
  EXPECT_TRUE(pattern_matches("a.b.c", "a.b.c"));
  EXPECT_FALSE(pattern_matches("a.b.c", "a.b"));
  EXPECT_FALSE(pattern_matches("a.b", "a.b.c"));
  EXPECT_FALSE(pattern_matches("a.b.c", "a.b.d"));
  EXPECT_FALSE(pattern_matches("a.b", "a.bb"));
}

TEST(PatternMatchesTest, StarMatchesExactlyOneSegment) {
  EXPECT_TRUE(pattern_matches("a.*", "a.b"));
  EXPECT_FALSE(pattern_matches("a.*", "a"));
  EXPECT_FALSE(pattern_matches("a.*", "a.b.c"));
  EXPECT_TRUE(pattern_matches("*.b", "x.b"));
  EXPECT_TRUE(pattern_matches("*", "x"));
  EXPECT_FALSE(pattern_matches("*", "x.y"));
  EXPECT_TRUE(pattern_matches("*.*.*", "x.y.z"));
  EXPECT_TRUE(pattern_matches("a.*.c", "a.anything.c"));
  EXPECT_FALSE(pattern_matches("a.*.c", "a.c"));
}

TEST(PatternMatchesTest, DoubleStarAtEnd) {
  EXPECT_TRUE(pattern_matches("a.**", "a"));
  EXPECT_TRUE(pattern_matches("a.**", "a.b"));
  EXPECT_TRUE(pattern_matches("a.**", "a.b.c.d"));
  EXPECT_FALSE(pattern_matches("a.**", "b"));
  EXPECT_FALSE(pattern_matches("a.**", "ab.c"));
}

TEST(PatternMatchesTest, DoubleStarAtStart) {
  EXPECT_TRUE(pattern_matches("**.b", "b"));
  EXPECT_TRUE(pattern_matches("**.b", "a.b"));
  EXPECT_TRUE(pattern_matches("**.b", "x.y.z.b"));
  EXPECT_FALSE(pattern_matches("**.b", "b.c"));
  EXPECT_TRUE(pattern_matches("**", "a"));
  EXPECT_TRUE(pattern_matches("**", "a.b.c"));
}

TEST(PatternMatchesTest, DoubleStarInTheMiddle) {
  EXPECT_TRUE(pattern_matches("a.**.c", "a.c"));
  EXPECT_TRUE(pattern_matches("a.**.c", "a.b.c"));
  EXPECT_TRUE(pattern_matches("a.**.c", "a.b.b.b.c"));
  EXPECT_FALSE(pattern_matches("a.**.c", "a.b"));
  EXPECT_FALSE(pattern_matches("a.**.c", "a.c.d"));
  EXPECT_TRUE(pattern_matches("a.**.c", "a.c.c"));
}

TEST(PatternMatchesTest, CombinedWildcards) {
  EXPECT_TRUE(pattern_matches("**.b.**", "b"));
  EXPECT_TRUE(pattern_matches("**.b.**", "a.b.c"));
  EXPECT_FALSE(pattern_matches("**.b.**", "a.c"));
  EXPECT_TRUE(pattern_matches("a.**.**", "a"));
  EXPECT_TRUE(pattern_matches("**.**", "x.y"));
  EXPECT_TRUE(pattern_matches("*.**", "x"));
  EXPECT_FALSE(pattern_matches("*.**", ""));
  EXPECT_TRUE(pattern_matches("**.*", "x.y.z"));
  EXPECT_FALSE(pattern_matches("*.**.*", "x"));
  EXPECT_TRUE(pattern_matches("*.**.*", "x.y"));
}

TEST(PatternMatchesTest, WildcardsInTheChannelAreLiteral) {
  EXPECT_FALSE(pattern_matches("a.b", "a.*"));
  EXPECT_TRUE(pattern_matches("a.*", "a.*"));
}

// glob_matches --------------------------------------------------------------

TEST(GlobMatchesTest, LiteralsMatchWholeStrings) {
  EXPECT_TRUE(glob_matches("abc", "abc"));
  EXPECT_FALSE(glob_matches("abc", "abcd"));
  EXPECT_FALSE(glob_matches("abc", "ab"));
  EXPECT_TRUE(glob_matches("", ""));
  EXPECT_FALSE(glob_matches("", "a"));
}

TEST(GlobMatchesTest, Star) {
  EXPECT_TRUE(glob_matches("*", ""));
  EXPECT_TRUE(glob_matches("*", "anything"));
  EXPECT_TRUE(glob_matches("*.py", "main.py"));
  EXPECT_FALSE(glob_matches("*.py", "main.pyc"));
  EXPECT_TRUE(glob_matches("a*b*c", "aXXbYYc"));
  EXPECT_TRUE(glob_matches("a*b*c", "abc"));
  EXPECT_FALSE(glob_matches("a*b*c", "acb"));
  EXPECT_TRUE(glob_matches("**", "x"));
  EXPECT_TRUE(glob_matches("*a", "aaaa"));
  EXPECT_FALSE(glob_matches("*ab", "aaaa"));
}

TEST(GlobMatchesTest, StarCrossesSlashes) {
  EXPECT_TRUE(glob_matches("*.py", "src/app/main.py"));
  EXPECT_TRUE(glob_matches("src/*", "src/a/b/c.txt"));
  EXPECT_TRUE(glob_matches("/home/*/notes.md", "/home/ana/work/notes.md"));
}

TEST(GlobMatchesTest, QuestionMark) {
  EXPECT_TRUE(glob_matches("?", "a"));
  EXPECT_FALSE(glob_matches("?", ""));
  EXPECT_FALSE(glob_matches("?", "ab"));
  EXPECT_TRUE(glob_matches("file?.txt", "file1.txt"));
  EXPECT_TRUE(glob_matches("?*", "a"));
  EXPECT_FALSE(glob_matches("??*", "a"));
}

TEST(GlobMatchesTest, BracketSets) {
  EXPECT_TRUE(glob_matches("[abc]", "b"));
  EXPECT_FALSE(glob_matches("[abc]", "d"));
  EXPECT_TRUE(glob_matches("[a-z]x", "qx"));
  EXPECT_FALSE(glob_matches("[a-z]x", "Qx"));
  EXPECT_TRUE(glob_matches("[a-zA-Z0-9]", "Q"));
  EXPECT_TRUE(glob_matches("[!x]", "y"));
  EXPECT_FALSE(glob_matches("[!x]", "x"));
  EXPECT_TRUE(glob_matches("[^x]", "y"));
  EXPECT_FALSE(glob_matches("[!a-c]", "b"));
  EXPECT_TRUE(glob_matches("*.[ch]", "lib/x.h"));
  EXPECT_FALSE(glob_matches("*.[ch]", "lib/x.cc"));
}

TEST(GlobMatchesTest, BracketEdgeCases) {
  EXPECT_TRUE(glob_matches("[]]", "]"));  // ']' first is a member
  EXPECT_TRUE(glob_matches("[!]]", "a"));
  EXPECT_FALSE(glob_matches("[!]]", "]"));
  EXPECT_TRUE(glob_matches("[a-]", "-"));  // trailing '-' is literal
  EXPECT_TRUE(glob_matches("[*]", "*"));   // literal star
  EXPECT_FALSE(glob_matches("[*]", "x"));
  EXPECT_TRUE(glob_matches("[ab", "[ab"));  // unterminated: '[' is literal
  EXPECT_FALSE(glob_matches("[ab", "a"));
  EXPECT_TRUE(glob_matches("x[", "x["));
}

TEST(GlobMatchesTest, PathologicalInputStaysFast) {
  const std::string text(5000, 'a');
  const std::string glob = "*a*a*a*a*a*a*a*a*a*a*b";
  EXPECT_FALSE(glob_matches(glob, text));
}

// SubscriptionFilter --------------------------------------------------------

using nlohmann::json;

SubscriptionFilter parse_ok(const json& spec) {
  Result<SubscriptionFilter> filter = SubscriptionFilter::parse(spec);
  EXPECT_TRUE(filter.ok()) << filter.status();
  return filter.ok() ? *filter : SubscriptionFilter();
}

TEST(SubscriptionFilterTest, DefaultMatchesEverything) {
  const SubscriptionFilter filter;
  EXPECT_TRUE(filter.empty());
  EXPECT_TRUE(filter.matches(json::object()));
  EXPECT_TRUE(filter.matches(json{{"path", "x"}}));
  EXPECT_TRUE(filter.matches(json()));
}

TEST(SubscriptionFilterTest, NullMatchesEverything) {
  const SubscriptionFilter filter = parse_ok(json());
  EXPECT_TRUE(filter.empty());
  EXPECT_TRUE(filter.matches(json{{"anything", 1}}));
}

TEST(SubscriptionFilterTest, StringIsAGlobOnPath) {
  const SubscriptionFilter filter = parse_ok("*.py");
  EXPECT_FALSE(filter.empty());
  EXPECT_EQ(filter.spec(), json("*.py"));
  EXPECT_TRUE(filter.matches(json{{"path", "src/main.py"}}));
  EXPECT_FALSE(filter.matches(json{{"path", "src/main.rs"}}));
}

TEST(SubscriptionFilterTest, StringFilterNeedsAStringPath) {
  const SubscriptionFilter filter = parse_ok("*");
  EXPECT_FALSE(filter.matches(json::object()));
  EXPECT_FALSE(filter.matches(json{{"file", "a.py"}}));
  EXPECT_FALSE(filter.matches(json{{"path", 3}}));
  EXPECT_FALSE(filter.matches(json{{"path", nullptr}}));
  EXPECT_FALSE(filter.matches(json()));
  EXPECT_FALSE(filter.matches(json::array({"a.py"})));
  EXPECT_TRUE(filter.matches(json{{"path", ""}}));
}

TEST(SubscriptionFilterTest, ObjectRequiresEveryKey) {
  const SubscriptionFilter filter = parse_ok(json{{"kind", "created"}, {"path", "*.md"}});
  EXPECT_TRUE(filter.matches(json{{"kind", "created"}, {"path", "notes/a.md"}, {"size", 4}}));
  EXPECT_FALSE(filter.matches(json{{"kind", "created"}}));
  EXPECT_FALSE(filter.matches(json{{"path", "a.md"}}));
  EXPECT_FALSE(filter.matches(json{{"kind", "deleted"}, {"path", "a.md"}}));
  EXPECT_FALSE(filter.matches(json{{"kind", "created"}, {"path", "a.txt"}}));
  EXPECT_FALSE(filter.matches(json()));
  EXPECT_FALSE(filter.matches(json("created")));
}

TEST(SubscriptionFilterTest, ObjectStringValuesAreGlobs) {
  const SubscriptionFilter filter = parse_ok(json{{"tool", "web_*"}});
  EXPECT_TRUE(filter.matches(json{{"tool", "web_search"}}));
  EXPECT_FALSE(filter.matches(json{{"tool", "shell"}}));
  // A glob only applies to strings: a number field does not match "*".
  EXPECT_FALSE(parse_ok(json{{"n", "*"}}).matches(json{{"n", 1}}));
}

TEST(SubscriptionFilterTest, ObjectOtherValuesCompareByEquality) {
  const SubscriptionFilter filter =
      parse_ok(json{{"priority", 2}, {"urgent", true}, {"tags", {"a", "b"}}, {"none", nullptr}});
  const json matching = {
      {"priority", 2}, {"urgent", true}, {"tags", {"a", "b"}}, {"none", nullptr}};
  EXPECT_TRUE(filter.matches(matching));
  json other = matching;
  other["priority"] = 3;
  EXPECT_FALSE(filter.matches(other));
  other = matching;
  other["priority"] = "2";
  EXPECT_FALSE(filter.matches(other));
  other = matching;
  other["tags"] = {"b", "a"};
  EXPECT_FALSE(filter.matches(other));
  other = matching;
  other.erase("none");
  EXPECT_FALSE(filter.matches(other));
  // JSON equality: an integer equals the same floating-point value.
  EXPECT_TRUE(parse_ok(json{{"n", 1}}).matches(json{{"n", 1.0}}));
  EXPECT_TRUE(parse_ok(json{{"o", {{"x", 1}}}}).matches(json{{"o", {{"x", 1}}}}));
}

TEST(SubscriptionFilterTest, EmptyObjectMatchesEverything) {
  const SubscriptionFilter filter = parse_ok(json::object());
  EXPECT_TRUE(filter.matches(json::object()));
  EXPECT_TRUE(filter.matches(json{{"a", 1}}));
}

TEST(SubscriptionFilterTest, RejectsOtherTypesNamingThem) {
  const struct {
    json spec;
    const char* type;
  } cases[] = {{json::array({"*.py"}), "array"},
               {json(3), "number"},
               {json(1.5), "number"},
               {json(true), "boolean"}};
  for (const auto& c : cases) {
    const Result<SubscriptionFilter> filter = SubscriptionFilter::parse(c.spec);
    ASSERT_FALSE(filter.ok()) << c.spec;
    EXPECT_EQ(filter.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(filter.status().message(),
                HasSubstr(std::string("subscription filter must be null, a string glob matched "
                                      "against data.path, or an object of field -> expected "
                                      "value; got ") +
                          c.type));
  }
}

}  // namespace
}  // namespace lotus
