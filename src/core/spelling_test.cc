#include "core/spelling.h"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace lotus {
namespace {

TEST(SpellingTest, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("port", "port"), 0u);
  EXPECT_EQ(edit_distance("", "host"), 4u);
  EXPECT_EQ(edit_distance("prot", "port"), 2u);       // two substitutions
  EXPECT_EQ(edit_distance("timout", "timeout"), 1u);  // one insertion
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("sitting", "kitten"), 3u);
}

TEST(SpellingTest, SuggestsTheNearestKnownWordWithinReach) {
  const std::vector<std::string> keys = {"host", "port", "token_file", "timeout"};
  EXPECT_EQ(nearest_word("prot", keys), "port");
  EXPECT_EQ(nearest_word("timout", keys), "timeout");
  EXPECT_EQ(nearest_word("hots", keys), "host");
  EXPECT_EQ(nearest_word("database", keys), "");  // nothing near
  EXPECT_EQ(nearest_word("xost", keys, 0), "");   // a distance of 0 asks for the word itself
  const std::vector<std::string_view> fields = {"name", "version", "type"};
  EXPECT_EQ(nearest_word("verison", fields), "version");
  // Equally near: the first candidate wins.
  EXPECT_EQ(nearest_word("ab", std::vector<std::string>{"ax", "xb"}), "ax");
}

}  // namespace
}  // namespace lotus
