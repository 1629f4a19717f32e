#include "lotus/llm.h"

#include <utility>

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

}  // namespace lotus
