#include "mcp/stdio_transport.h"

#include <signal.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace lotus::mcp {
namespace {

struct Collected {
  std::vector<std::string> lines;
  std::vector<size_t> oversized;
  LineHandlers handlers() {
    return {[this](std::string_view line) { lines.emplace_back(line); },
            [this](size_t bytes) { oversized.push_back(bytes); }};
  }
};

TEST(StdioTransportTest, SplitsLinesSkipsOversizedOnesAndEndsAtEof) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::thread writer([fd = fds[1]] {
    std::string input = "one\r\n\n" + std::string(300, 'x') + "\ntwo\nthr";
    for (char c : input) ASSERT_EQ(write(fd, &c, 1), 1);  // byte by byte: split anywhere
    ASSERT_EQ(write(fd, "ee", 2), 2);
    close(fd);
  });
  Collected got;
  EXPECT_EQ(read_lines(fds[0], -1, 100, got.handlers()), ReadEnd::kEof);
  writer.join();
  close(fds[0]);
  EXPECT_EQ(got.lines, (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(got.oversized, (std::vector<size_t>{300}));
}

TEST(StdioTransportTest, StopsWhenAskedTo) {
  int in[2], stop[2];
  ASSERT_EQ(pipe(in), 0);
  ASSERT_EQ(pipe(stop), 0);
  ASSERT_EQ(write(stop[1], "x", 1), 1);
  Collected got;
  EXPECT_EQ(read_lines(in[0], stop[0], 100, got.handlers()), ReadEnd::kStopped);
  for (int fd : {in[0], in[1], stop[0], stop[1]}) close(fd);
}

TEST(StdioTransportTest, WriterSaysWhenTheReaderIsGone) {
  signal(SIGPIPE, SIG_IGN);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  LineWriter writer(fds[1]);
  EXPECT_TRUE(writer.write("{\"a\":1}"));
  char buffer[16] = {};
  ASSERT_EQ(read(fds[0], buffer, sizeof buffer), 8);
  EXPECT_EQ(std::string(buffer, 8), "{\"a\":1}\n");
  close(fds[0]);
  EXPECT_FALSE(writer.write("lost"));
  EXPECT_TRUE(writer.broken());
  close(fds[1]);
}

}  // namespace
}  // namespace lotus::mcp
