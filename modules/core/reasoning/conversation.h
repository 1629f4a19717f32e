// Conversation: one conversation's messages, kept in the module's state so
// a conversation resumes after a restart.
//
// The model sees a window of the most recent messages; the window always
// starts at a user message, so no tool result is sent without the assistant
// turn that asked for it.
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "lotus/llm.h"
#include "lotus/module.h"

namespace lotus::reasoning {

class Conversation {
 public:
  Conversation(std::string id, size_t keep) : id_(std::move(id)), keep_(keep) {}

  const std::string& id() const { return id_; }
  const std::deque<ChatMessage>& messages() const { return messages_; }

  // Reads what an earlier run kept; a missing entry is an empty conversation.
  Status load(ModuleContext& context);
  Status save(ModuleContext& context) const;

  void append(ChatMessage message);
  // At most `limit` recent messages, starting at a user message.
  std::vector<ChatMessage> window(size_t limit) const;

  static std::string state_key(std::string_view id) { return "conversation." + std::string(id); }

 private:
  std::string id_;
  size_t keep_;
  std::deque<ChatMessage> messages_;
};

}  // namespace lotus::reasoning
