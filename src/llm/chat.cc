#include "lotus/llm.h"

#include <utility>

#include "lotus/strings.h"

namespace lotus {

std::string_view to_string(ChatRole role) {
  switch (role) {
    case ChatRole::kSystem:
      return "system";
    case ChatRole::kUser:
      return "user";
    case ChatRole::kAssistant:
      return "assistant";
    case ChatRole::kTool:
      return "tool";
  }
  return "user";
}

std::string_view to_string(StopReason reason) {
  switch (reason) {
    case StopReason::kEndTurn:
      return "end_turn";
    case StopReason::kToolUse:
      return "tool_use";
    case StopReason::kMaxTokens:
      return "max_tokens";
    case StopReason::kStopSequence:
      return "stop_sequence";
    case StopReason::kOther:
      return "other";
  }
  return "other";
}

ChatMessage ChatMessage::system(std::string text) {
  ChatMessage m;
  m.role = ChatRole::kSystem;
  m.text = std::move(text);
  return m;
}

ChatMessage ChatMessage::user(std::string text) {
  ChatMessage m;
  m.role = ChatRole::kUser;
  m.text = std::move(text);
  return m;
}

ChatMessage ChatMessage::assistant(std::string text, std::vector<ToolCall> calls) {
  ChatMessage m;
  m.role = ChatRole::kAssistant;
  m.text = std::move(text);
  m.tool_calls = std::move(calls);
  return m;
}

ChatMessage ChatMessage::tool_result(const ToolCall& call, std::string result, bool is_error) {
  ChatMessage m;
  m.role = ChatRole::kTool;
  m.text = std::move(result);
  m.tool_call_id = call.id;
  m.tool_name = call.name;
  m.is_error = is_error;
  return m;
}

Json to_json(const ChatMessage& message) {
  Json out = {{"role", to_string(message.role)}, {"text", message.text}};
  if (!message.tool_calls.empty()) {
    Json calls = Json::array();
    for (const ToolCall& call : message.tool_calls) {
      calls.push_back({{"id", call.id}, {"name", call.name}, {"arguments", call.arguments}});
    }
    out["tool_calls"] = std::move(calls);
  }
  if (!message.tool_call_id.empty()) out["tool_call_id"] = message.tool_call_id;
  if (!message.tool_name.empty()) out["tool_name"] = message.tool_name;
  if (message.is_error) out["is_error"] = true;
  return out;
}

Result<ChatMessage> chat_message_from_json(const Json& json) {
  if (!json.is_object()) return absl::InvalidArgumentError("a message must be a JSON object");
  ChatMessage m;
  std::string role = json.value("role", "");
  if (role == "system") {
    m.role = ChatRole::kSystem;
  } else if (role == "user") {
    m.role = ChatRole::kUser;
  } else if (role == "assistant") {
    m.role = ChatRole::kAssistant;
  } else if (role == "tool") {
    m.role = ChatRole::kTool;
  } else {
    return absl::InvalidArgumentError(
        cat("role: expected system, user, assistant or tool, got \"", role, "\""));
  }
  auto text = json.find("text");
  if (text != json.end() && !text->is_string()) {
    return absl::InvalidArgumentError("text: must be a string");
  }
  if (text != json.end()) m.text = text->get<std::string>();
  if (auto calls = json.find("tool_calls"); calls != json.end()) {
    if (!calls->is_array()) return absl::InvalidArgumentError("tool_calls: must be a list");
    for (size_t i = 0; i < calls->size(); ++i) {
      const Json& c = (*calls)[i];
      if (!c.is_object() || !c.value("name", Json()).is_string()) {
        return absl::InvalidArgumentError(cat("tool_calls[", i, "]: needs a \"name\""));
      }
      m.tool_calls.push_back(
          ToolCall{c.value("id", ""), c.value("name", ""), c.value("arguments", Json::object())});
    }
  }
  m.tool_call_id = json.value("tool_call_id", "");
  m.tool_name = json.value("tool_name", "");
  m.is_error = json.value("is_error", false);
  return m;
}

ProbeReport LlmProvider::probe(std::chrono::milliseconds) const {
  ProbeReport report;
  report.status = ready();
  return report;
}

}  // namespace lotus
