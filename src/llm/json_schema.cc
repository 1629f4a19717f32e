#include "llm/json_schema.h"

#include <exception>
#include <set>
#include <string>
#include <utility>
#include <vector>

// Schema errors must come back as exceptions, not abort() (valijson's
// default); its CMake target usually says so already.
#ifndef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1
#endif
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "lotus/strings.h"

namespace lotus::llm {

struct JsonSchema::Compiled {
  valijson::Schema schema;
};

JsonSchema::JsonSchema(Json source, std::unique_ptr<Compiled> compiled)
    : source_(std::move(source)), compiled_(std::move(compiled)) {}

JsonSchema::~JsonSchema() = default;

Result<std::shared_ptr<const JsonSchema>> JsonSchema::compile(const Json& schema) {
  if (!schema.is_object() && !schema.is_boolean()) {
    return absl::InvalidArgumentError(
        cat("a JSON Schema must be an object (or a boolean), got ", schema.type_name()));
  }
  auto compiled = std::make_unique<Compiled>();
  try {
    // Draft 7 reads draft-4 style schemas too, except for the few keywords
    // whose meaning changed (exclusiveMinimum as a boolean), which valijson
    // then reports here.
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(schema);
    parser.populateSchema(adapter, compiled->schema);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(cat("not a usable JSON Schema: ", e.what()));
  }
  return std::shared_ptr<const JsonSchema>(new JsonSchema(schema, std::move(compiled)));
}

namespace {

// valijson's context is a list like ["<root>", "[\"path\"]", "[0]"]; a JSON
// Pointer ("/path/0") is what people and models recognise.
std::string json_pointer(const std::vector<std::string>& context) {
  std::string pointer;
  for (const std::string& part : context) {
    if (part == "<root>") continue;
    std::string_view token = part;
    if (token.size() >= 2 && token.front() == '[' && token.back() == ']') {
      token = token.substr(1, token.size() - 2);
    }
    if (token.size() >= 2 && token.front() == '"' && token.back() == '"') {
      token = token.substr(1, token.size() - 2);
    }
    pointer += '/';
    for (char c : token) {
      if (c == '~') {
        pointer += "~0";
      } else if (c == '/') {
        pointer += "~1";
      } else {
        pointer += c;
      }
    }
  }
  return pointer;
}

}  // namespace

Status JsonSchema::validate(const Json& value) const {
  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(value);
  try {
    // Without a results object valijson keeps no path of where it is, and
    // stops at the first failure: the common case, a value that conforms,
    // costs least. Only a value that fails is walked again for the report.
    if (validator.validate(compiled_->schema, target, nullptr)) return absl::OkStatus();
    validator.validate(compiled_->schema, target, &results);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(cat("could not be checked: ", e.what()));
  }

  // valijson reports every failing level (a bad property, then "object
  // failed" for its parent); the innermost ones say what is actually wrong,
  // so a message whose path is a prefix of a later one is left out.
  std::vector<std::pair<std::string, std::string>> errors;
  for (const auto& error : results) {
    errors.emplace_back(json_pointer(error.context), error.description);
  }
  std::string message;
  std::set<std::string> seen;
  for (size_t i = 0; i < errors.size(); ++i) {
    const auto& [where, what] = errors[i];
    bool has_deeper = false;
    for (size_t j = 0; j < errors.size() && !has_deeper; ++j) {
      has_deeper = j != i && errors[j].first.size() > where.size() &&
                   errors[j].first.compare(0, where.size(), where) == 0 &&
                   errors[j].first[where.size()] == '/';
    }
    if (has_deeper) continue;
    std::string line = cat(where.empty() ? "(arguments)" : where, ": ", what);
    if (!seen.insert(line).second) continue;
    if (!message.empty()) message += "; ";
    message += line;
  }
  if (message.empty()) message = "arguments do not match the tool's schema";
  return absl::InvalidArgumentError(message);
}

}  // namespace lotus::llm
