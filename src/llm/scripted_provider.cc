#include "llm/scripted_provider.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "llm/provider_http.h"
#include "lotus/strings.h"

namespace lotus::llm {
namespace {

Json yaml_scalar(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return Json(text);  // quoted
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return Json();
  }
  if (text == "true" || text == "True" || text == "TRUE") return Json(true);
  if (text == "false" || text == "False" || text == "FALSE") return Json(false);
  Json number = Json::parse(text, nullptr, false);
  if (!number.is_discarded() && number.is_number()) return number;
  return Json(text);
}

Json yaml_to_json(const YAML::Node& node, int depth) {
  if (depth > 64) return Json();
  switch (node.Type()) {
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : node) out.push_back(yaml_to_json(item, depth + 1));
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& item : node) {
        out[item.first.as<std::string>()] = yaml_to_json(item.second, depth + 1);
      }
      return out;
    }
    case YAML::NodeType::Scalar:
      return yaml_scalar(node);
    default:
      return Json();
  }
}

// The status a scripted `error:` entry stands for, into `out`.
Status error_of(const Json& error, const std::string& where, Status& out) {
  if (!error.is_object()) {
    return absl::InvalidArgumentError(cat(where, ".error: must be {code, message}"));
  }
  std::string code = error.value("code", "unavailable");
  std::string message = error.value("message", cat("scripted ", code, " error"));
  static const std::map<std::string, absl::StatusCode> kCodes = {
      {"unavailable", absl::StatusCode::kUnavailable},
      {"rate_limited", absl::StatusCode::kResourceExhausted},
      {"resource_exhausted", absl::StatusCode::kResourceExhausted},
      {"unauthenticated", absl::StatusCode::kUnauthenticated},
      {"permission_denied", absl::StatusCode::kPermissionDenied},
      {"deadline_exceeded", absl::StatusCode::kDeadlineExceeded},
      {"timeout", absl::StatusCode::kDeadlineExceeded},
      {"invalid_argument", absl::StatusCode::kInvalidArgument},
      {"not_found", absl::StatusCode::kNotFound},
      {"internal", absl::StatusCode::kInternal},
      {"failed_precondition", absl::StatusCode::kFailedPrecondition},
  };
  auto it = kCodes.find(code);
  if (it == kCodes.end()) {
    return absl::InvalidArgumentError(cat(where, ".error.code: unknown code '", code, "'"));
  }
  out = Status(it->second, message);
  return absl::OkStatus();
}

int64_t estimate_tokens(size_t chars) { return static_cast<int64_t>((chars + 3) / 4); }

}  // namespace

Result<Json> yaml_file_to_json(const std::filesystem::path& path) {
  try {
    YAML::Node root = YAML::LoadFile(path.string());
    return yaml_to_json(root, 0);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(cat(path.string(), ": ", e.what()));
  }
}

ScriptedProvider::ScriptedProvider(std::string name, std::vector<Turn> turns, bool loop)
    : name_(std::move(name)), turns_(std::move(turns)), loop_(loop) {}

Result<ScriptedProvider::Turn> ScriptedProvider::parse_turn(const Json& turn, size_t index) {
  std::string where = cat("responses[", index, "]");
  if (turn.is_string()) {
    Turn t;
    t.text = turn.get<std::string>();
    return t;
  }
  if (!turn.is_object()) return absl::InvalidArgumentError(cat(where, ": must be a map or text"));
  static const std::set<std::string> kKnown = {"text",     "tool_calls", "error",
                                               "delay_ms", "usage",      "stop_reason"};
  for (const auto& [key, value] : turn.items()) {
    if (kKnown.count(key) == 0) {
      return absl::InvalidArgumentError(cat(where, ".", key, ": unknown field"));
    }
  }
  Turn t;
  if (auto text = turn.find("text"); text != turn.end()) {
    if (!text->is_string()) return absl::InvalidArgumentError(cat(where, ".text: must be text"));
    t.text = text->get<std::string>();
  }
  if (auto calls = turn.find("tool_calls"); calls != turn.end()) {
    if (!calls->is_array()) {
      return absl::InvalidArgumentError(cat(where, ".tool_calls: must be a list"));
    }
    for (size_t i = 0; i < calls->size(); ++i) {
      const Json& call = (*calls)[i];
      std::string at = cat(where, ".tool_calls[", i, "]");
      if (!call.is_object() || !call.contains("name") || !call["name"].is_string()) {
        return absl::InvalidArgumentError(cat(at, ": needs a name"));
      }
      Json arguments = call.value("arguments", Json::object());
      if (arguments.is_null()) arguments = Json::object();
      std::string id = call.value("id", cat("call_", index, "_", i));
      t.tool_calls.push_back(ToolCall{id, call["name"].get<std::string>(), arguments});
    }
  }
  if (auto error = turn.find("error"); error != turn.end()) {
    if (Status s = error_of(*error, where, t.error); !s.ok()) return s;
  }
  if (auto delay = turn.find("delay_ms"); delay != turn.end()) {
    if (!delay->is_number_integer() || delay->get<int64_t>() < 0) {
      return absl::InvalidArgumentError(cat(where, ".delay_ms: must be a whole number >= 0"));
    }
    t.delay_ms = delay->get<int>();
  }
  if (auto usage = turn.find("usage"); usage != turn.end()) {
    if (!usage->is_object()) return absl::InvalidArgumentError(cat(where, ".usage: must be a map"));
    t.usage = TokenUsage{usage->value("input_tokens", int64_t{0}),
                         usage->value("output_tokens", int64_t{0})};
  }
  if (auto reason = turn.find("stop_reason"); reason != turn.end() && reason->is_string()) {
    t.raw_stop_reason = reason->get<std::string>();
    for (StopReason r : {StopReason::kEndTurn, StopReason::kToolUse, StopReason::kMaxTokens,
                         StopReason::kStopSequence}) {
      if (to_string(r) == t.raw_stop_reason) t.stop_reason = r;
    }
    if (!t.stop_reason) t.stop_reason = StopReason::kOther;
  }
  return t;
}

Result<std::unique_ptr<ScriptedProvider>> ScriptedProvider::from_json(std::string name,
                                                                      const Json& script) {
  const Json* list = &script;
  bool loop = false;
  if (script.is_object()) {
    auto responses = script.find("responses");
    if (responses == script.end()) {
      return absl::InvalidArgumentError("scripted provider: the script needs `responses:`");
    }
    list = &*responses;
    loop = script.value("loop", false);
  }
  if (!list->is_array()) {
    return absl::InvalidArgumentError("scripted provider: `responses` must be a list of turns");
  }
  std::vector<Turn> turns;
  for (size_t i = 0; i < list->size(); ++i) {
    Result<Turn> turn = absl::InternalError("");
    try {
      turn = parse_turn((*list)[i], i);
    } catch (const Json::exception& e) {
      turn = absl::InvalidArgumentError(cat("responses[", i, "]: wrong type: ", e.what()));
    }
    if (!turn.ok()) {
      return absl::InvalidArgumentError(cat("scripted provider: ", message_of(turn.status())));
    }
    turns.push_back(std::move(*turn));
  }
  return std::unique_ptr<ScriptedProvider>(
      new ScriptedProvider(std::move(name), std::move(turns), loop));
}

Result<std::unique_ptr<ScriptedProvider>> ScriptedProvider::from_file(
    std::string name, const std::filesystem::path& path) {
  Json script;
  if (path.extension() == ".json") {
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(cat("scripted provider: cannot read ", path.string()));
    std::stringstream text;
    text << in.rdbuf();
    script = Json::parse(text.str(), nullptr, false);
    if (script.is_discarded()) {
      return absl::InvalidArgumentError(cat(path.string(), ": not valid JSON"));
    }
  } else {
    if (!std::filesystem::exists(path)) {
      return absl::NotFoundError(cat("scripted provider: cannot read ", path.string()));
    }
    auto doc = yaml_file_to_json(path);
    if (!doc.ok()) return doc.status();
    script = std::move(*doc);
  }
  auto provider = from_json(std::move(name), script);
  if (!provider.ok()) {
    return absl::InvalidArgumentError(cat(path.string(), ": ", message_of(provider.status())));
  }
  return provider;
}

Result<ChatResponse> ScriptedProvider::chat(const ChatRequest& request,
                                            const StreamCallback& on_text) {
  Turn turn;
  {
    std::lock_guard lock(mutex_);
    if (keep_requests_ > 0) {
      requests_.push_back(request);
      while (requests_.size() > keep_requests_) requests_.pop_front();
    }
    if (turns_.empty() || (!loop_ && next_ >= turns_.size())) {
      return absl::FailedPreconditionError(
          cat(name_, ": the script has no more responses (", turns_.size(), " used)"));
    }
    turn = turns_[next_ % turns_.size()];
    ++next_;
  }
  if (turn.delay_ms > 0) {
    cancellable_sleep(std::chrono::milliseconds(turn.delay_ms), request.cancel);
  }
  if (request.cancel != nullptr && request.cancel->load()) {
    return absl::CancelledError(cat(name_, ": cancelled"));
  }
  if (!turn.error.ok()) return Status(turn.error.code(), cat(name_, ": ", message_of(turn.error)));

  ChatResponse response;
  response.provider = name_;
  response.model = request.model;
  response.text = turn.text;
  response.tool_calls = turn.tool_calls;
  if (turn.stop_reason) {
    response.stop_reason = *turn.stop_reason;
    response.raw_stop_reason = turn.raw_stop_reason;
  } else {
    response.stop_reason = turn.tool_calls.empty() ? StopReason::kEndTurn : StopReason::kToolUse;
    response.raw_stop_reason = std::string(to_string(response.stop_reason));
  }
  if (turn.usage) {
    response.usage = *turn.usage;
  } else {
    size_t chars = 0;
    for (const ChatMessage& m : request.messages) chars += m.text.size();
    response.usage = {estimate_tokens(chars), estimate_tokens(turn.text.size())};
  }
  if (request.stream && on_text) {
    // Word-sized pieces, spaces kept, as a real stream would deliver them.
    size_t start = 0;
    while (start < turn.text.size()) {
      size_t end = turn.text.find(' ', start + 1);
      end = end == std::string::npos ? turn.text.size() : end;
      on_text(std::string_view(turn.text).substr(start, end - start));
      start = end;
    }
  }
  return response;
}

std::vector<ChatRequest> ScriptedProvider::requests() const {
  std::lock_guard lock(mutex_);
  return std::vector<ChatRequest>(requests_.begin(), requests_.end());
}

void ScriptedProvider::set_keep_requests(size_t keep) {
  std::lock_guard lock(mutex_);
  keep_requests_ = keep;
  while (requests_.size() > keep_requests_) requests_.pop_front();
}

size_t ScriptedProvider::remaining() const {
  std::lock_guard lock(mutex_);
  if (loop_) return turns_.size();
  return turns_.size() - std::min(next_, turns_.size());
}

}  // namespace lotus::llm
