#include "core/progress_meter.h"

#include <sstream>

#include <gtest/gtest.h>

namespace lotus {
namespace {

TEST(ProgressMeterTest, PlainLinesAtEachTenthOffATerminal) {
  std::ostringstream out;
  ProgressMeter meter(out, /*terminal=*/false, [] { return 0.0; });
  for (size_t i = 0; i <= 200; ++i) meter.update("importing", i, 200);
  meter.update("rebuilding", 5, 5);
  const std::string text = out.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("importing: 0/200 (0%)\n"), std::string::npos);
  EXPECT_NE(text.find("importing: 100/200 (50%)\n"), std::string::npos);
  EXPECT_NE(text.find("importing: 200/200 (100%)\nrebuilding: 5/5 (100%)\n"), std::string::npos);
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 12u) << text;
}

TEST(ProgressMeterTest, ABarRedrawnInPlaceAtMostTenTimesASecondOnATerminal) {
  std::ostringstream out;
  double now = 0;
  {
    ProgressMeter meter(out, /*terminal=*/true, [&] { return now; });
    meter.update("reindex", 0, 100);
    meter.update("reindex", 10, 100);  // too soon: not drawn
    now = 0.5;
    meter.update("reindex", 50, 100);
    meter.update("reindex", 100, 100);  // the end is always drawn, and ends the line
  }
  const std::string text = out.str();
  EXPECT_EQ(text,
            "\r\033[Kreindex [..............................] 0% 0/100"
            "\r\033[Kreindex [###############...............] 50% 50/100"
            "\r\033[Kreindex [##############################] 100% 100/100\n");
}

}  // namespace
}  // namespace lotus
