// MemoryModule: the built-in `memory` module, the bus face of the memory
// store its config's profile names (EmbeddedMemory or ServerMemory).
//
// Requests (memory.store, memory.recall, memory.forget, memory.consolidate)
// are answered on their reply_to when they carry one; every change is also
// published on `memory_updates` so other nodes and modules can follow it.
// Handlers run one at a time in the module's mailbox, and the store is
// synchronous (SQLite or PostgreSQL and Redis, an in-memory index), so a
// handler never suspends while it holds store state.
//
// Consolidation archives old, unimportant short-term memories under an
// extractive summary at once; when an LLM is configured, a model's summary
// then replaces it, off the mailbox so recall never waits on a model.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "lotus/llm.h"
#include "lotus/memory.h"
#include "lotus/module.h"
#include "lotus/strings.h"
#include "memory/embedded_memory.h"
#include "memory/memory_config.h"
#include "runtime/module_factory.h"

namespace lotus {
namespace {

template <typename T>
T number(const Json& config, const char* key, T fallback) {
  const auto it = config.find(key);
  return it != config.end() && it->is_number() ? it->get<T>() : fallback;
}

constexpr size_t kSummaryInputBytes = 24'000;  // of archived text handed to the model
constexpr std::string_view kSummaryInstructions =
    "You condense a person's assistant memory. Summarize the notes below in at most five "
    "sentences: keep names, numbers, decisions and preferences; leave out filler. Answer with "
    "the summary only.";

Json error_reply(const Status& status) {
  return Json{{"ok", false}, {"error", std::string(message_of(status))}};
}

// Reads a MemoryInput from request data or tool arguments.
Result<MemoryInput> input_from_json(const Json& data, std::string module) {
  if (!data.is_object() || !data.contains("content") || !data["content"].is_string()) {
    return absl::InvalidArgumentError("content: required, a string");
  }
  MemoryInput input;
  input.content = data["content"].get<std::string>();
  input.module = std::move(module);
  if (auto it = data.find("type"); it != data.end() && !it->is_null()) {
    if (!it->is_string()) return absl::InvalidArgumentError("type: must be a string");
    auto type = parse_memory_type(it->get<std::string>());
    if (!type.ok()) return absl::InvalidArgumentError(cat("type: ", message_of(type.status())));
    input.type = *type;
  }
  if (auto it = data.find("importance"); it != data.end() && !it->is_null()) {
    if (!it->is_number()) return absl::InvalidArgumentError("importance: must be a number");
    input.importance = it->get<double>();
  }
  if (auto it = data.find("collection"); it != data.end() && !it->is_null()) {
    if (!it->is_string()) return absl::InvalidArgumentError("collection: must be a string");
    input.collection = it->get<std::string>();
  }
  if (auto it = data.find("metadata"); it != data.end() && !it->is_null()) {
    if (!it->is_object()) return absl::InvalidArgumentError("metadata: must be an object");
    input.metadata = *it;
  }
  return input;
}

// Reads a relation to store from request data or tool arguments.
Result<Relation> relation_from_json(const Json& data, std::string module) {
  if (!data.is_object()) return absl::InvalidArgumentError("expected an object");
  Relation relation;
  for (auto [field, target] :
       {std::pair{"subject", &relation.subject}, std::pair{"predicate", &relation.predicate},
        std::pair{"object", &relation.object}}) {
    auto it = data.find(field);
    if (it == data.end() || !it->is_string()) {
      return absl::InvalidArgumentError(cat(field, ": required, a string"));
    }
    *target = it->get<std::string>();
  }
  if (auto it = data.find("confidence"); it != data.end() && !it->is_null()) {
    if (!it->is_number()) return absl::InvalidArgumentError("confidence: must be a number");
    relation.confidence = it->get<double>();
  }
  if (auto it = data.find("metadata"); it != data.end() && !it->is_null()) {
    relation.metadata = *it;
  }
  relation.module = std::move(module);
  return relation;
}

Result<RelationQuery> relation_query_from_json(const Json& data) {
  if (!data.is_object()) return absl::InvalidArgumentError("expected an object");
  RelationQuery query;
  for (auto [field, target] :
       {std::pair{"subject", &query.subject}, std::pair{"predicate", &query.predicate},
        std::pair{"object", &query.object}, std::pair{"entity", &query.entity}}) {
    if (auto it = data.find(field); it != data.end() && !it->is_null()) {
      if (!it->is_string()) return absl::InvalidArgumentError(cat(field, ": must be a string"));
      *target = it->get<std::string>();
    }
  }
  if (auto it = data.find("limit"); it != data.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1) {
      return absl::InvalidArgumentError("limit: must be a positive integer");
    }
    query.limit = it->get<size_t>();
  }
  return query;
}

class MemoryModule final : public Module {
 public:
  Task<void> initialize() override {
    const Json& c = config();
    recall_limit_ = number<size_t>(c, "recall_limit", 10);
    auto progress = [this](std::string_view what, size_t done, size_t total) {
      log(LogLevel::kInfo, cat(what, ": ", done, "/", total));
    };
    auto store = memory::open_memory_store(c, context().data_dir(), "", progress);
    // Thrown, not returned: the supervisor reports it as the module's error
    // (e.g. bad config, or an embedder mismatch telling the user to reindex).
    if (!store.ok()) throw std::runtime_error(std::string(message_of(store.status())));
    store_ = std::move(*store);
    if (auto stats = store_->stats(); stats.ok()) {
      const std::string reason = (*stats)["index"].value("rebuilt_because", "");
      if (!reason.empty()) log(LogLevel::kWarn, cat("memory index rebuilt: ", reason));
    }

    on("on_store", &MemoryModule::on_store);
    on("on_recall", &MemoryModule::on_recall);
    on("on_forget", &MemoryModule::on_forget);
    on("on_consolidate", &MemoryModule::on_consolidate);
    on("on_update", &MemoryModule::on_update);
    on("on_stats", &MemoryModule::on_stats);
    on("on_relate", &MemoryModule::on_relate);
    on("on_relations", &MemoryModule::on_relations);
    on("on_unrelate", &MemoryModule::on_unrelate);
    tool("remember", &MemoryModule::remember_tool);
    tool("recall", &MemoryModule::recall_tool);
    tool("relate", &MemoryModule::relate_tool);
    tool("relations", &MemoryModule::relations_tool);
    const double seconds = number<double>(c, "consolidate_interval_seconds", 300);
    every(std::chrono::milliseconds(static_cast<int64_t>(std::max(0.01, seconds) * 1000)),
          &MemoryModule::periodic_consolidation);
    summary_model_ = c.value("summary_model", "");
    co_return;
  }

  Task<void> shutdown() override {
    // A summary still waiting on its model is abandoned (the extractive one
    // stays); the store must outlive it.
    stopping_.store(true);
    for (int i = 0; i < 500 && summarizing_.load() > 0; ++i) {
      auto pause = context().sleep(std::chrono::milliseconds(10));
      co_await std::move(pause);
    }
    store_.reset();  // saves the index
    co_return;
  }

  Task<Json> health_check() override {
    if (!store_) co_return Json{{"status", "unhealthy"}, {"reason", "not open"}};
    auto stats = store_->stats();
    if (!stats.ok()) {
      co_return Json{{"status", "degraded"}, {"reason", std::string(message_of(stats.status()))}};
    }
    Json out = *stats;
    out["status"] = "healthy";
    co_return out;
  }

 private:
  void answer(const Event& request, Json data) {
    if (request.metadata.reply_to.empty()) return;
    Status sent = reply(request, std::move(data));
    if (!sent.ok())
      log(LogLevel::kWarn, cat("cannot reply to ", request.channel, ": ", message_of(sent)));
  }

  void announce(Json update) {
    update["timestamp"] = now_seconds();
    Status sent = publish("memory_updates", std::move(update));
    if (!sent.ok()) log(LogLevel::kWarn, cat("cannot publish memory_updates: ", message_of(sent)));
  }

  Result<MemoryRecord> store(const Json& data, std::string module) {
    auto input = input_from_json(data, std::move(module));
    if (!input.ok()) return input.status();
    if (Status declared = check_collection(input->collection, input->module); !declared.ok()) {
      return declared;
    }
    auto record = store_->remember(std::move(*input));
    if (record.ok()) {
      announce(Json{{"operation", "store"},
                    {"id", record->id},
                    {"type", to_string(record->type)},
                    {"module", record->module},
                    {"collection", record->collection},
                    {"tier", to_string(record->tier)},
                    {"importance", record->importance}});
    }
    return record;
  }

  // A module stores only into the collections its manifest declares
  // (memory.vector_collections); anyone else (a person through the API, the
  // model through the remember tool) into any collection some module
  // declares. "" is the default collection, open to all.
  Status check_collection(const std::string& collection, const std::string& module) {
    if (collection.empty()) return absl::OkStatus();
    const auto declared = context().vector_collections();
    auto has = [&](const std::vector<std::string>& list) {
      return std::find(list.begin(), list.end(), collection) != list.end();
    };
    if (auto own = declared.find(module); own != declared.end()) {
      if (has(own->second)) return absl::OkStatus();
      return absl::InvalidArgumentError(cat(
          "collection \"", collection, "\": module ", module,
          " does not declare it; add it to memory.vector_collections in its manifest",
          own->second.empty() ? "" : cat(" (declared: ", absl::StrJoin(own->second, ", "), ")")));
    }
    for (const auto& [name, list] : declared) {
      if (has(list)) return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        cat("collection \"", collection,
            "\": no module declares it (manifests list theirs under memory.vector_collections)"));
  }

  Result<Json> recall(const Json& data) {
    if (!data.is_object() || !data.contains("query") || !data["query"].is_string()) {
      return absl::InvalidArgumentError("query: required, a string");
    }
    size_t limit = recall_limit_;
    if (auto it = data.find("limit"); it != data.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 1) {
        return absl::InvalidArgumentError("limit: must be a positive integer");
      }
      limit = std::min<size_t>(it->get<size_t>(), 1000);
    }
    auto filter = memory_filter_from_json(data.value("filter", Json()));
    if (!filter.ok()) return filter.status();
    auto hits = store_->recall(data["query"].get<std::string>(), limit, *filter);
    if (!hits.ok()) return hits.status();
    Json results = Json::array();
    for (const RecallHit& hit : *hits) results.push_back(to_json(hit));
    return Json{{"results", std::move(results)}};
  }

  Task<void> on_store(const Event& event) {
    auto record = store(event.data, event.source);
    answer(event, record.ok() ? Json{{"ok", true}, {"memory", to_json(*record)}}
                              : error_reply(record.status()));
    co_return;
  }

  Task<void> on_recall(const Event& event) {
    auto result = recall(event.data);
    if (result.ok()) (*result)["ok"] = true;
    answer(event, result.ok() ? std::move(*result) : error_reply(result.status()));
    co_return;
  }

  Result<Relation> relate(const Json& data, std::string module) {
    auto relation = relation_from_json(data, std::move(module));
    if (!relation.ok()) return relation.status();
    auto stored = store_->relate(std::move(*relation));
    if (stored.ok()) {
      announce(Json{{"operation", "relate"}, {"relation", to_json(*stored)}});
    }
    return stored;
  }

  Result<Json> find_relations(const Json& data) {
    auto query = relation_query_from_json(data);
    if (!query.ok()) return query.status();
    auto found = store_->relations(*query);
    if (!found.ok()) return found.status();
    Json out = Json::array();
    for (const Relation& r : *found) out.push_back(to_json(r));
    return Json{{"relations", std::move(out)}};
  }

  Task<void> on_stats(const Event& event) {
    auto stats = store_->stats();
    if (stats.ok()) (*stats)["ok"] = true;
    answer(event, stats.ok() ? std::move(*stats) : error_reply(stats.status()));
    co_return;
  }

  Task<void> on_relate(const Event& event) {
    auto stored = relate(event.data, event.source);
    answer(event, stored.ok() ? Json{{"ok", true}, {"relation", to_json(*stored)}}
                              : error_reply(stored.status()));
    co_return;
  }

  Task<void> on_relations(const Event& event) {
    auto found = find_relations(event.data);
    if (found.ok()) (*found)["ok"] = true;
    answer(event, found.ok() ? std::move(*found) : error_reply(found.status()));
    co_return;
  }

  Task<void> on_unrelate(const Event& event) {
    auto id = event.data.find("id");
    if (id == event.data.end() || !id->is_string()) {
      answer(event, error_reply(absl::InvalidArgumentError("id: required, a string")));
      co_return;
    }
    auto removed = store_->unrelate(id->get<std::string>());
    if (removed.ok() && *removed > 0) announce(Json{{"operation", "unrelate"}, {"id", *id}});
    answer(event, removed.ok() ? Json{{"ok", true}, {"removed", *removed}}
                               : error_reply(removed.status()));
    co_return;
  }

  Task<void> on_forget(const Event& event) {
    Result<size_t> forgotten = absl::InvalidArgumentError("give an id or a filter");
    Json update{{"operation", "forget"}};
    if (auto id = event.data.find("id"); id != event.data.end() && id->is_string()) {
      forgotten = store_->forget(id->get<std::string>());
      update["id"] = *id;
    } else if (event.data.contains("filter")) {
      auto filter = memory_filter_from_json(event.data["filter"]);
      forgotten = filter.ok() ? store_->forget(*filter) : Result<size_t>(filter.status());
      update["filter"] = event.data["filter"];
    }
    if (forgotten.ok() && *forgotten > 0) {
      update["count"] = *forgotten;
      announce(std::move(update));
    }
    answer(event, forgotten.ok() ? Json{{"ok", true}, {"forgotten", *forgotten}}
                                 : error_reply(forgotten.status()));
    co_return;
  }

  Result<ConsolidationReport> run_consolidation() {
    auto report = store_->consolidate();
    if (!report.ok()) {
      log(LogLevel::kError, cat("consolidation failed: ", message_of(report.status())));
      return report;
    }
    if (report->promoted + report->archived + report->working_expired > 0) {
      Json update = to_json(*report);
      update["operation"] = "consolidate";
      announce(std::move(update));
    }
    if (!report->summary_id.empty() && summary_model_ != "none") {
      summarizing_.fetch_add(1);
      start_detached(summarize_with_llm(report->summary_id, report->archived_ids),
                     [this](std::exception_ptr failure) {
                       if (failure) log(LogLevel::kError, "summarizing ended with an exception");
                       summarizing_.fetch_sub(1);
                     });
    }
    return report;
  }

  // Replaces the extractive summary `extractive_id` of `archived` with the
  // model's, announced as {"operation": "summarize"}. With no LLM configured
  // (FailedPrecondition) the extractive summary stays, quietly.
  Task<void> summarize_with_llm(std::string extractive_id, std::vector<std::string> archived) {
    auto extractive = store_->get(extractive_id);
    if (!extractive.ok()) co_return;
    std::string notes;
    for (const std::string& id : archived) {
      auto record = store_->get(id);
      if (!record.ok()) continue;
      notes += cat("- ", record->content.substr(0, 2'000), "\n");
      if (notes.size() > kSummaryInputBytes) break;
    }
    if (notes.empty()) co_return;
    ChatRequest request;
    request.model = summary_model_;
    request.max_tokens = 400;
    request.cancel = &stopping_;
    request.messages = {ChatMessage::system(std::string(kSummaryInstructions)),
                        ChatMessage::user(std::move(notes))};
    auto asked = chat(std::move(request));
    auto answer = co_await std::move(asked);
    if (!answer.ok()) {
      if (!absl::IsFailedPrecondition(answer.status()) && !absl::IsCancelled(answer.status())) {
        log(LogLevel::kWarn,
            cat("keeping the extractive summary ", extractive_id,
                ": the model could not summarize (", message_of(answer.status()), ")"));
      }
      co_return;
    }
    std::string text = std::string(absl::StripAsciiWhitespace(answer->text));
    if (text.empty() || stopping_.load()) co_return;
    MemoryInput input;
    input.content = std::move(text);
    input.type = MemoryType::kSemantic;
    input.metadata = extractive->metadata;
    input.metadata["method"] = "llm";
    input.metadata["model"] = answer->model;
    input.importance = extractive->importance;
    input.module = "memory";
    auto summary = store_->remember(std::move(input));
    if (!summary.ok()) {
      log(LogLevel::kWarn, cat("cannot store the model's summary: ", message_of(summary.status())));
      co_return;
    }
    store_->forget(extractive_id).IgnoreError();
    announce(Json{{"operation", "summarize"},
                  {"id", summary->id},
                  {"replaces", extractive_id},
                  {"method", "llm"},
                  {"model", answer->model}});
  }

  Task<void> on_consolidate(const Event& event) {
    auto report = run_consolidation();
    if (report.ok()) {
      Json out = to_json(*report);
      out["ok"] = true;
      answer(event, std::move(out));
    } else {
      answer(event, error_reply(report.status()));
    }
    co_return;
  }

  // Another node's change (or this one's): the server profile applies it to
  // this node's index now rather than at the next recall.
  Task<void> on_update(const Event&) {
    if (Status s = store_->sync(); !s.ok()) {
      log(LogLevel::kWarn, cat("cannot follow memory_updates: ", message_of(s)));
    }
    co_return;
  }

  Task<void> periodic_consolidation() {
    run_consolidation().IgnoreError();
    co_return;
  }

  Task<ToolResult> remember_tool(const Json& arguments) {
    auto record = store(arguments, "");
    if (!record.ok()) co_return record.status();
    co_return to_json(*record);
  }

  Task<ToolResult> recall_tool(const Json& arguments) { co_return recall(arguments); }

  Task<ToolResult> relate_tool(const Json& arguments) {
    auto stored = relate(arguments, "");
    if (!stored.ok()) co_return stored.status();
    co_return to_json(*stored);
  }

  Task<ToolResult> relations_tool(const Json& arguments) { co_return find_relations(arguments); }

  std::unique_ptr<MemoryStore> store_;
  size_t recall_limit_ = 10;
  std::string summary_model_;  // "" = the configured default; "none" = extractive only
  std::atomic<bool> stopping_{false};
  std::atomic<int> summarizing_{0};
};

static RegisterBuiltinModule<MemoryModule> registered("memory");

}  // namespace
}  // namespace lotus
