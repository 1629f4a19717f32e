#include "cli/chat_view.h"

#include "llm/tool_call_text.h"
#include "lotus/strings.h"

namespace lotus::cli {

namespace {

std::string first_lines(const std::string& text, size_t max_lines, size_t max_chars) {
  std::string out;
  size_t lines = 0;
  for (size_t i = 0; i < text.size() && out.size() < max_chars; ++i) {
    if (text[i] == '\n' && ++lines >= max_lines) {
      out += " ...";
      return out;
    }
    out += text[i];
  }
  if (out.size() < text.size() && lines < max_lines) out += " ...";
  return out;
}

}  // namespace

std::string ChatView::paint(std::string_view code, const std::string& text, bool for_prompt) const {
  if (!color_) return text;
  // \001 ... \002 tell the line editor these bytes take no room on screen.
  std::string_view open = for_prompt ? "\001" : "";
  std::string_view close = for_prompt ? "\002" : "";
  return cat(open, "\033[", code, "m", close, text, open, "\033[0m", close);
}

std::string ChatView::close_line() {
  if (!mid_line_) return "";
  mid_line_ = false;
  return "\n";
}

std::string ChatView::render(const Event& display) {
  const Json& d = display.data;
  std::string kind = d.value("kind", "");
  std::string text =
      d.contains("text") && d["text"].is_string() ? d["text"].get<std::string>() : d.dump();
  if (kind == "delta") {
    mid_line_ = true;
    return text;
  }
  std::string out = close_line();
  if (kind == "message") {
    // A streamed reply has been shown piece by piece already.
    if (!d.value("streamed", false)) out += text + "\n";
  } else if (kind == "thought") {
    out += paint("2", text) + "\n";
  } else if (kind == "tool_call") {
    out += paint("36", cat("  -> ", llm::describe_tool_call(d.value("tool", ""),
                                                            d.value("arguments", Json())))) +
           "\n";
  } else if (kind == "tool_result") {
    bool ok = d.value("ok", false);
    out +=
        paint(ok ? "2" : "33", cat("  <- ", ok ? "" : "error: ", first_lines(text, 3, 300))) + "\n";
  } else if (kind == "error") {
    out += paint("31", text) + "\n";
  } else if (kind == "cancelled") {
    out += paint("33", "(cancelled)") + "\n";
  } else {
    out += text + "\n";
  }
  return out;
}

std::string ChatView::approval_question(const Json& request, bool for_prompt) const {
  std::string call =
      llm::describe_tool_call(request.value("tool", "?"), request.value("arguments", Json()));
  std::string because = request.value("because", "");
  std::string why = cat("risk ", request.value("risk", "?"));
  if (!because.empty() && because.rfind("risk ", 0) != 0) why = cat(why, ", ", because);
  return cat(paint("1;33", cat("Allow ", call, "?"), for_prompt), " (", why, ") [y/N] ");
}

}  // namespace lotus::cli
