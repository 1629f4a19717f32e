#include "llm/json_schema.h"

#include <gtest/gtest.h>

#include "lotus/strings.h"

namespace lotus::llm {
namespace {

const Json kReadSchema = Json::parse(R"({
  "type": "object",
  "properties": {
    "path": {"type": "string", "minLength": 1},
    "limit": {"type": "integer", "minimum": 1},
    "mode": {"enum": ["text", "binary"]},
    "lines": {"type": "array", "items": {"type": "integer"}}
  },
  "required": ["path"],
  "additionalProperties": false
})");

TEST(JsonSchemaTest, AcceptsValidArguments) {
  auto schema = JsonSchema::compile(kReadSchema);
  ASSERT_TRUE(schema.ok()) << schema.status();
  EXPECT_TRUE((*schema)->validate(Json{{"path", "a.txt"}}).ok());
  EXPECT_TRUE((*schema)->validate(Json{{"path", "a"}, {"limit", 3}, {"mode", "text"}}).ok());
}

TEST(JsonSchemaTest, NamesTheMissingRequiredProperty) {
  auto schema = JsonSchema::compile(kReadSchema);
  ASSERT_TRUE(schema.ok());
  Status status = (*schema)->validate(Json::object());
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(message_of(status).find("path"), std::string::npos) << status;
}

TEST(JsonSchemaTest, PointsAtTheWrongValue) {
  auto schema = JsonSchema::compile(kReadSchema);
  ASSERT_TRUE(schema.ok());
  Status status = (*schema)->validate(Json{{"path", "a"}, {"lines", Json::array({1, "two"})}});
  ASSERT_FALSE(status.ok());
  std::string message(message_of(status));
  EXPECT_NE(message.find("/lines/1"), std::string::npos) << message;
  // The enclosing levels that failed only because of it are not repeated.
  EXPECT_EQ(message.find("(arguments)"), std::string::npos) << message;
}

TEST(JsonSchemaTest, StrictTypesRejectNumbersInStrings) {
  auto schema = JsonSchema::compile(kReadSchema);
  ASSERT_TRUE(schema.ok());
  Status status = (*schema)->validate(Json{{"path", "a"}, {"limit", "3"}});
  ASSERT_FALSE(status.ok());
  EXPECT_NE(message_of(status).find("/limit"), std::string::npos) << status;
}

TEST(JsonSchemaTest, RejectsUnknownPropertiesWhenTheSchemaSaysSo) {
  auto schema = JsonSchema::compile(kReadSchema);
  ASSERT_TRUE(schema.ok());
  EXPECT_FALSE((*schema)->validate(Json{{"path", "a"}, {"colour", "red"}}).ok());
  EXPECT_FALSE((*schema)->validate(Json{{"path", "a"}, {"mode", "hex"}}).ok());
}

TEST(JsonSchemaTest, RejectsArgumentsThatAreNotAnObject) {
  auto schema = JsonSchema::compile(kReadSchema);
  ASSERT_TRUE(schema.ok());
  // A model that produced malformed JSON leaves its raw text as a string.
  Status status = (*schema)->validate(Json("{\"path\": "));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(JsonSchemaTest, RefusesSomethingThatIsNotASchema) {
  EXPECT_FALSE(JsonSchema::compile(Json("object")).ok());
  EXPECT_FALSE(JsonSchema::compile(Json::array()).ok());
  auto bad = JsonSchema::compile(Json{{"type", "object"}, {"required", "path"}});
  EXPECT_FALSE(bad.ok());
}

TEST(JsonSchemaTest, KeepsTheSourceSchema) {
  auto schema = JsonSchema::compile(kReadSchema);
  ASSERT_TRUE(schema.ok());
  EXPECT_EQ((*schema)->source(), kReadSchema);
}

}  // namespace
}  // namespace lotus::llm
