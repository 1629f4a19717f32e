#include "conversation.h"

#include "lotus/strings.h"

namespace lotus::reasoning {

Status Conversation::load(ModuleContext& context) {
  auto stored = context.get_state(state_key(id_));
  if (!stored.ok()) return stored.status();
  messages_.clear();
  if (stored->is_null()) return absl::OkStatus();
  if (!stored->is_array()) {
    return absl::DataLossError(cat("conversation \"", id_, "\": stored value is not a list"));
  }
  for (size_t i = 0; i < stored->size(); ++i) {
    auto message = chat_message_from_json((*stored)[i]);
    if (!message.ok()) {
      return absl::DataLossError(
          cat("conversation \"", id_, "\" message ", i, ": ", message_of(message.status())));
    }
    messages_.push_back(*std::move(message));
  }
  return absl::OkStatus();
}

Status Conversation::save(ModuleContext& context) const {
  Json list = Json::array();
  for (const ChatMessage& m : messages_) list.push_back(to_json(m));
  return context.set_state(state_key(id_), list);
}

void Conversation::append(ChatMessage message) {
  messages_.push_back(std::move(message));
  // Trim whole exchanges: drop up to the next user message, so what stays
  // still starts where a model can pick it up.
  while (messages_.size() > keep_) {
    messages_.pop_front();
    while (!messages_.empty() && messages_.front().role != ChatRole::kUser) messages_.pop_front();
  }
}

std::vector<ChatMessage> Conversation::window(size_t limit) const {
  size_t start = messages_.size() > limit ? messages_.size() - limit : 0;
  while (start < messages_.size() && messages_[start].role != ChatRole::kUser) ++start;
  if (start == messages_.size() && !messages_.empty()) {
    // No user message inside the window (a very long tool exchange): fall
    // back to the latest user message, however far back.
    for (size_t i = messages_.size(); i-- > 0;) {
      if (messages_[i].role == ChatRole::kUser) {
        start = i;
        break;
      }
    }
  }
  return std::vector<ChatMessage>(messages_.begin() + static_cast<std::ptrdiff_t>(start),
                                  messages_.end());
}

}  // namespace lotus::reasoning
