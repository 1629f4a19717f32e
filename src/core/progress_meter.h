// ProgressMeter: tells a person how far long work (a reindex, a bulk import)
// has got.
//
// On a terminal it redraws one bar in place, at most ten times a second; into
// a pipe or a log it writes a plain line at each tenth of the way instead, so
// the output stays readable there. Not thread-safe: one worker reports.
#pragma once

#include <cstddef>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace lotus {

class ProgressMeter {
 public:
  // `clock` gives seconds (steady); tests inject it.
  ProgressMeter(std::ostream& out, bool terminal, std::function<double()> clock = {});
  ~ProgressMeter();
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

  // `done` of `total` units of `what` (total 0: not known).
  void update(std::string_view what, size_t done, size_t total);
  // Ends the bar's line, if one is drawn.
  void finish();

  // Whether `fd` is a terminal and TERM is not "dumb".
  static bool is_terminal(int fd);

 private:
  void draw(size_t done, size_t total);

  std::ostream& out_;
  bool terminal_;
  std::function<double()> clock_;
  std::string what_;
  bool drawn_ = false;  // a bar is on the current line
  double last_draw_ = -1;
  int last_tenth_ = -1;
};

}  // namespace lotus
