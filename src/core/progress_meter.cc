#include "core/progress_meter.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace lotus {

ProgressMeter::ProgressMeter(std::ostream& out, bool terminal, std::function<double()> clock)
    : out_(out), terminal_(terminal), clock_(std::move(clock)) {
  if (!clock_) {
    clock_ = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
  }
}

ProgressMeter::~ProgressMeter() { finish(); }

bool ProgressMeter::is_terminal(int fd) {
  const char* term = std::getenv("TERM");
  return isatty(fd) == 1 && (term == nullptr || std::strcmp(term, "dumb") != 0);
}

void ProgressMeter::update(std::string_view what, size_t done, size_t total) {
  if (what != what_) {
    finish();
    what_ = std::string(what);
    last_tenth_ = -1;
    last_draw_ = -1;
  }
  const bool complete = total > 0 && done >= total;
  if (terminal_) {
    const double now = clock_();
    if (!complete && last_draw_ >= 0 && now - last_draw_ < 0.1) return;
    last_draw_ = now;
    draw(done, total);
    if (complete) finish();
    return;
  }
  if (total == 0) {
    // Unknown length: a line every 10 s at most.
    const double now = clock_();
    if (last_draw_ >= 0 && now - last_draw_ < 10) return;
    last_draw_ = now;
    out_ << what_ << ": " << done << "\n" << std::flush;
    return;
  }
  const int tenth = static_cast<int>(done * 10 / total);
  if (tenth == last_tenth_) return;
  last_tenth_ = tenth;
  out_ << what_ << ": " << done << "/" << total << " (" << tenth * 10 << "%)\n" << std::flush;
}

void ProgressMeter::draw(size_t done, size_t total) {
  constexpr size_t kWidth = 30;
  out_ << "\r\033[K" << what_ << " ";
  if (total > 0) {
    const size_t filled = std::min(kWidth, done * kWidth / total);
    out_ << "[" << std::string(filled, '#') << std::string(kWidth - filled, '.') << "] "
         << done * 100 / total << "% " << done << "/" << total;
  } else {
    out_ << done;
  }
  out_ << std::flush;
  drawn_ = true;
}

void ProgressMeter::finish() {
  if (drawn_) out_ << "\n" << std::flush;
  drawn_ = false;
}

}  // namespace lotus
