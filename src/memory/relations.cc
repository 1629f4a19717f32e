#include "memory/relations.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "lotus/event.h"
#include "lotus/strings.h"

namespace lotus::memory {

namespace {

constexpr size_t kMaxNameBytes = 500;
constexpr size_t kMaxQueryLimit = 1000;

Status check_name(std::string& value, std::string_view field, bool required) {
  value = std::string(absl::StripAsciiWhitespace(value));
  if (required && value.empty()) return absl::InvalidArgumentError(cat(field, ": required, text"));
  if (value.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(cat(field, ": longer than ", kMaxNameBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

Result<Relation> prepare_relation(Relation relation, double now) {
  for (auto [value, field] :
       {std::pair{&relation.subject, "subject"}, std::pair{&relation.predicate, "predicate"},
        std::pair{&relation.object, "object"}}) {
    if (Status s = check_name(*value, field, true); !s.ok()) return s;
  }
  if (!(relation.confidence >= 0.0 && relation.confidence <= 1.0)) {
    return absl::InvalidArgumentError("confidence: must be between 0 and 1");
  }
  if (relation.metadata.is_null()) relation.metadata = Json::object();
  if (!relation.metadata.is_object()) {
    return absl::InvalidArgumentError("metadata: must be an object");
  }
  relation.id = EventId::generate().to_string();
  relation.created_at = now;
  return relation;
}

Result<RelationQuery> prepare_relation_query(RelationQuery query) {
  for (auto [value, field] :
       {std::pair{&query.subject, "subject"}, std::pair{&query.predicate, "predicate"},
        std::pair{&query.object, "object"}, std::pair{&query.entity, "entity"}}) {
    if (Status s = check_name(*value, field, false); !s.ok()) return s;
  }
  if (query.limit == 0) return absl::InvalidArgumentError("limit: must be a positive integer");
  query.limit = std::min(query.limit, kMaxQueryLimit);
  return query;
}

}  // namespace lotus::memory
