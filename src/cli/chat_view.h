// ChatView: how a conversation with LOTUS looks in a terminal.
//
// Renders action.display events (streamed reply text, tool calls and their
// results, errors) and approval requests as text. The interactive session
// and `lotus ask` share it, so both show the same thing the same way.
#pragma once

#include <string>

#include "lotus/event.h"

namespace lotus::cli {

class ChatView {
 public:
  explicit ChatView(bool color) : color_(color) {}

  // The text to write for one action.display event: streamed deltas come
  // without a newline; everything else ends with one (closing a streamed
  // line first when needed).
  std::string render(const Event& display);
  // "Allow fs.write(path=a.txt)? (risk high) [y/N] ". For a readline
  // prompt, colour codes are marked so the line editor does not count them.
  std::string approval_question(const Json& request, bool for_prompt = false) const;
  // True while a streamed reply is mid-line.
  bool mid_line() const { return mid_line_; }
  // What ends a streamed line, if one is open ("" otherwise).
  std::string close_line();

 private:
  std::string paint(std::string_view code, const std::string& text, bool for_prompt = false) const;

  bool color_ = false;
  bool mid_line_ = false;
};

}  // namespace lotus::cli
