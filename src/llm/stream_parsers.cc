#include "llm/stream_parsers.h"

#include <utility>

namespace lotus::llm {

Status SseParser::feed(std::string_view bytes) {
  if (!bom_checked_ && !bytes.empty()) {
    // A UTF-8 byte order mark may open the stream; it may itself be split.
    std::string_view bom = "\xEF\xBB\xBF";
    std::string probe = pending_ + std::string(bytes.substr(0, 3));
    if (probe.size() < 3 && bom.substr(0, probe.size()) == probe) {
      pending_ = probe;
      return absl::OkStatus();
    }
    bom_checked_ = true;
    if (probe.substr(0, 3) == bom) {
      size_t from_bytes = 3 - pending_.size();
      pending_.clear();
      bytes.remove_prefix(from_bytes);
    }
  }
  size_t start = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    char c = bytes[i];
    if (skip_lf_) {
      skip_lf_ = false;
      if (c == '\n') {
        start = i + 1;
        continue;
      }
    }
    if (c != '\n' && c != '\r') continue;
    std::string_view piece = bytes.substr(start, i - start);
    Status s;
    if (pending_.empty()) {
      s = line(piece);
    } else {
      pending_.append(piece);
      std::string whole = std::move(pending_);
      pending_.clear();
      s = line(whole);
    }
    if (!s.ok()) return s;
    skip_lf_ = c == '\r';
    start = i + 1;
  }
  pending_.append(bytes.substr(start));
  return absl::OkStatus();
}

Status SseParser::line(std::string_view text) {
  if (text.empty()) {
    // Blank line: dispatch the event, if it carried data.
    started_ = false;
    if (!has_data_) {
      event_.clear();
      return absl::OkStatus();
    }
    SseEvent event{event_.empty() ? "message" : std::move(event_), std::move(data_), id_};
    event_.clear();
    data_.clear();
    has_data_ = false;
    return handler_(event);
  }
  if (text.front() == ':') return absl::OkStatus();  // a comment (keep-alive)
  started_ = true;
  std::string_view field = text;
  std::string_view value;
  if (auto colon = text.find(':'); colon != std::string_view::npos) {
    field = text.substr(0, colon);
    value = text.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) id_.assign(value);
  }
  return absl::OkStatus();
}

bool SseParser::has_partial_event() const { return started_ || !pending_.empty(); }

Status NdjsonParser::feed(std::string_view bytes) {
  size_t start = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != '\n') continue;
    std::string_view piece = bytes.substr(start, i - start);
    std::string whole;
    if (!pending_.empty()) {
      pending_.append(piece);
      whole = std::move(pending_);
      pending_.clear();
      piece = whole;
    }
    if (!piece.empty() && piece.back() == '\r') piece.remove_suffix(1);
    if (piece.find_first_not_of(" \t") != std::string_view::npos) {
      if (Status s = handler_(piece); !s.ok()) return s;
    }
    start = i + 1;
  }
  pending_.append(bytes.substr(start));
  return absl::OkStatus();
}

Status NdjsonParser::finish(bool* trailing) {
  std::string rest = std::move(pending_);
  pending_.clear();
  bool has_content = rest.find_first_not_of(" \t\r") != std::string::npos;
  if (trailing != nullptr) *trailing = has_content;
  if (!has_content) return absl::OkStatus();
  return handler_(rest);
}

}  // namespace lotus::llm
