// Names and JSON forms of the types in lotus/memory.h.
#include <algorithm>
#include <string>

#include "lotus/memory.h"
#include "lotus/strings.h"

namespace lotus {

std::string_view to_string(MemoryType type) {
  switch (type) {
    case MemoryType::kEpisodic:
      return "episodic";
    case MemoryType::kSemantic:
      return "semantic";
    case MemoryType::kProcedural:
      return "procedural";
    case MemoryType::kModuleState:
      return "module_state";
  }
  return "episodic";
}

Result<MemoryType> parse_memory_type(std::string_view text) {
  for (MemoryType t : {MemoryType::kEpisodic, MemoryType::kSemantic, MemoryType::kProcedural,
                       MemoryType::kModuleState}) {
    if (to_string(t) == text) return t;
  }
  return absl::InvalidArgumentError(
      cat("unknown memory type \"", text,
          "\": expected episodic, semantic, procedural or module_state"));
}

std::string_view to_string(MemoryTier tier) {
  switch (tier) {
    case MemoryTier::kShortTerm:
      return "short_term";
    case MemoryTier::kLongTerm:
      return "long_term";
    case MemoryTier::kArchived:
      return "archived";
  }
  return "short_term";
}

Result<MemoryTier> parse_memory_tier(std::string_view text) {
  for (MemoryTier t : {MemoryTier::kShortTerm, MemoryTier::kLongTerm, MemoryTier::kArchived}) {
    if (to_string(t) == text) return t;
  }
  return absl::InvalidArgumentError(cat("unknown memory tier \"", text, "\""));
}

bool MemoryFilter::empty() const {
  return ids.empty() && types.empty() && module.empty() && collection.empty() && since <= 0 &&
         until <= 0 && min_importance <= 0;
}

Json to_json(const MemoryRecord& record) {
  return Json{{"id", record.id},
              {"content", record.content},
              {"type", to_string(record.type)},
              {"metadata", record.metadata},
              {"importance", record.importance},
              {"created_at", record.created_at},
              {"module", record.module},
              {"collection", record.collection},
              {"tier", to_string(record.tier)}};
}

Json to_json(const RecallHit& hit) {
  Json out = to_json(hit.record);
  out["score"] = hit.score;
  out["relevance"] = hit.relevance;
  out["similarity"] = hit.similarity;
  out["keyword_match"] = hit.keyword_match;
  out["in_working_memory"] = hit.in_working_memory;
  return out;
}

Json to_json(const Relation& relation) {
  return Json{{"id", relation.id},
              {"subject", relation.subject},
              {"predicate", relation.predicate},
              {"object", relation.object},
              {"confidence", relation.confidence},
              {"metadata", relation.metadata},
              {"created_at", relation.created_at},
              {"module", relation.module}};
}

Json to_json(const ConsolidationReport& report) {
  return Json{{"promoted", report.promoted},
              {"archived", report.archived},
              {"working_expired", report.working_expired},
              {"summary_id", report.summary_id},
              {"index_saved", report.index_saved},
              {"promoted_ids", report.promoted_ids},
              {"archived_ids", report.archived_ids}};
}

Result<MemoryFilter> memory_filter_from_json(const Json& json) {
  MemoryFilter filter;
  if (json.is_null()) return filter;
  if (!json.is_object()) return absl::InvalidArgumentError("filter: must be an object");
  for (const auto& [key, value] : json.items()) {
    if (key == "ids" || key == "types") {
      Json list = value.is_string() ? Json::array({value}) : value;
      if (!list.is_array())
        return absl::InvalidArgumentError(cat("filter.", key, ": must be a list"));
      for (const Json& item : list) {
        if (!item.is_string()) {
          return absl::InvalidArgumentError(cat("filter.", key, ": must hold strings"));
        }
        if (key == "ids") {
          filter.ids.push_back(item.get<std::string>());
        } else {
          auto type = parse_memory_type(item.get<std::string>());
          if (!type.ok())
            return absl::InvalidArgumentError(cat("filter.types: ", message_of(type.status())));
          filter.types.push_back(*type);
        }
      }
    } else if (key == "module" || key == "collection") {
      if (!value.is_string())
        return absl::InvalidArgumentError(cat("filter.", key, ": must be a string"));
      (key == "module" ? filter.module : filter.collection) = value.get<std::string>();
    } else if (key == "since" || key == "until" || key == "min_importance") {
      if (!value.is_number())
        return absl::InvalidArgumentError(cat("filter.", key, ": must be a number"));
      const double x = value.get<double>();
      if (key == "since") filter.since = x;
      if (key == "until") filter.until = x;
      if (key == "min_importance") filter.min_importance = x;
    } else {
      return absl::InvalidArgumentError(
          cat("filter.", key,
              ": unknown field (expected ids, types, module, collection, since, until, "
              "min_importance)"));
    }
  }
  return filter;
}

}  // namespace lotus
