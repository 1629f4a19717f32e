#include "mcp/stdio_transport.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "bus/continuation.h"
#include "lotus/strings.h"

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

TEST(StdioTransportTest, AsyncReaderHandsOverLinesInOrderOnThePoolAndEndsAtEof) {
  boost::asio::thread_pool pool(3);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  Collected got;
  std::vector<bool> on_pool;
  LineHandlers handlers = got.handlers();
  handlers.on_line = [&](std::string_view line) {
    got.lines.emplace_back(line);
    on_pool.push_back(pool.get_executor().running_in_this_thread());
  };
  std::promise<ReadEnd> ended;
  auto reader = AsyncLineReader::start(pool.get_executor(), fds[0], 100, handlers,
                                       [&](ReadEnd how) { ended.set_value(how); });
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string input = "one\r\n\n" + std::string(300, 'x') + "\ntwo\n";
  for (int i = 0; i < 50; ++i) input += std::to_string(i) + "\n";
  input += "last";
  for (char c : input) ASSERT_EQ(write(fds[1], &c, 1), 1);  // split anywhere
  close(fds[1]);
  auto end = ended.get_future();
  ASSERT_EQ(end.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(end.get(), ReadEnd::kEof);
  std::vector<std::string> expected = {"one", "two"};
  for (int i = 0; i < 50; ++i) expected.push_back(std::to_string(i));
  expected.push_back("last");
  EXPECT_EQ(got.lines, expected);
  EXPECT_EQ(got.oversized, (std::vector<size_t>{300}));
  EXPECT_EQ(on_pool, std::vector<bool>(expected.size(), true));
  reader->reset();
  pool.join();
  close(fds[0]);
}

// Of the requests one read brings, all but the last start their work on
// other threads (this one has more to read); the last one's work may run
// here next (see bus/continuation.h).
TEST(StdioTransportTest, OnlyTheLastLineOfAReadLetsItsWorkContinueOnTheReadersThread) {
  std::vector<bool> follow;
  LineSplitter* splitter_in_use = nullptr;
  LineHandlers record{
      [&](std::string_view) { follow.push_back(splitter_in_use->more_lines_follow()); }, nullptr};
  LineSplitter splitter(100, record);
  splitter_in_use = &splitter;
  splitter.feed("a\nb\nc\nd");
  EXPECT_EQ(follow, (std::vector<bool>{true, true, false}));
  splitter.finish();
  EXPECT_EQ(follow, (std::vector<bool>{true, true, false, false}));

  boost::asio::thread_pool pool(2);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(write(fds[1], "a\nb\nc\n", 6), 6);  // there before the first read: one chunk
  std::vector<bool> scoped;
  std::promise<ReadEnd> ended;
  auto reader = AsyncLineReader::start(
      pool.get_executor(), fds[0], 100,
      {[&](std::string_view) { scoped.push_back(in_continuation_scope()); }, nullptr},
      [&](ReadEnd how) { ended.set_value(how); });
  ASSERT_TRUE(reader.ok()) << reader.status();
  close(fds[1]);
  auto end = ended.get_future();
  ASSERT_EQ(end.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(scoped, (std::vector<bool>{false, false, true}));
  reader->reset();
  pool.join();
  close(fds[0]);
}

// After a read that emptied the pipe the reader lets the work it started
// on its thread run before it reads again, but only for so long: work that
// keeps deferring more must not leave the next request unread.
TEST(StdioTransportTest, ContinuationsThatNeverEndDoNotKeepTheNextLineUnread) {
  boost::asio::thread_pool pool(1);  // the reader and the work share the one thread
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::atomic<bool> busy{true};
  std::function<void()> keep_busy = [&] {
    if (busy) continue_after_handler(pool.get_executor(), keep_busy);
  };
  std::promise<void> second;
  std::promise<ReadEnd> ended;
  auto reader = AsyncLineReader::start(pool.get_executor(), fds[0], 100,
                                       {[&](std::string_view line) {
                                          if (line == "first") {
                                            continue_after_handler(pool.get_executor(), keep_busy);
                                            ASSERT_EQ(write(fds[1], "second\n", 7), 7);
                                          }
                                          if (line == "second") second.set_value();
                                        },
                                        nullptr},
                                       [&](ReadEnd how) { ended.set_value(how); });
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ(write(fds[1], "first\n", 6), 6);
  EXPECT_EQ(second.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
  busy = false;
  close(fds[1]);
  auto end = ended.get_future();
  ASSERT_EQ(end.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  reader->reset();
  pool.join();
  close(fds[0]);
}

TEST(StdioTransportTest, AsyncReaderStopsWhenAskedAndGivesTheDescriptorBackBlocking) {
  boost::asio::thread_pool pool(2);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ASSERT_EQ(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
  Collected got;
  std::promise<ReadEnd> ended;
  auto reader = AsyncLineReader::start(pool.get_executor(), fds[0], 100, got.handlers(),
                                       [&](ReadEnd how) { ended.set_value(how); });
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ(write(fds[1], "a\n", 2), 2);
  for (int i = 0; i < 500 && got.lines.empty(); ++i) usleep(10'000);
  (*reader)->stop();
  auto end = ended.get_future();
  ASSERT_EQ(end.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(end.get(), ReadEnd::kStopped);
  EXPECT_EQ(got.lines, (std::vector<std::string>{"a"}));
  // The open file is shared with whoever started us: not left non-blocking.
  EXPECT_EQ(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
  reader->reset();
  pool.join();
  close(fds[0]);
  close(fds[1]);
}

TEST(StdioTransportTest, WritersOnManyThreadsNeverInterleaveMessages) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  LineWriter writer(fds[1]);
  constexpr int kThreads = 4, kEach = 2000;
  Collected got;
  std::thread reader([&] { read_lines(fds[0], -1, 1 << 20, got.handlers()); });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&writer, t] {
      for (int i = 0; i < kEach; ++i) {
        // Long enough that a batch outgrows the pipe and writes partly.
        EXPECT_TRUE(writer.write(std::to_string(t) + ":" + std::to_string(i) + ":" +
                                 std::string(200, static_cast<char>('a' + t))));
      }
    });
  }
  for (auto& w : writers) w.join();
  close(fds[1]);
  reader.join();
  close(fds[0]);
  ASSERT_EQ(got.lines.size(), static_cast<size_t>(kThreads * kEach));
  std::vector<int> next(kThreads, 0);
  for (const std::string& line : got.lines) {
    int t = line[0] - '0';
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    // Each thread's messages whole and in the order it wrote them.
    EXPECT_EQ(line, std::to_string(t) + ":" + std::to_string(next[t]++) + ":" +
                        std::string(200, static_cast<char>('a' + t)));
  }
}

// Replies finished in one go on the bus's pool leave in one system call, and
// flush() writes what a stopped pool never got to.
TEST(StdioTransportTest, APooledWriterGathersAHandlersMessagesIntoOneWrite) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  boost::asio::thread_pool pool(1);
  auto writer = std::make_shared<LineWriter>(fds[1], pool.get_executor());
  std::promise<bool> written_later;
  boost::asio::post(pool, [&] {
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(writer->write(cat("{\"n\":", i, "}")));
    pollfd in{fds[0], POLLIN, 0};
    written_later.set_value(poll(&in, 1, 0) == 0);  // nothing yet: gathered
  });
  auto later = written_later.get_future();
  ASSERT_EQ(later.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_TRUE(later.get());
  pollfd in{fds[0], POLLIN, 0};
  ASSERT_EQ(poll(&in, 1, 10000), 1);
  char buffer[4096];
  ssize_t n = read(fds[0], buffer, sizeof buffer);  // one write: all ten at once
  std::string expected;
  for (int i = 0; i < 10; ++i) expected += cat("{\"n\":", i, "}\n");
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buffer, static_cast<size_t>(n)), expected);

  pool.stop();
  pool.join();
  EXPECT_TRUE(writer->write("late"));  // its flush would run on the stopped pool
  EXPECT_EQ(poll(&in, 1, 0), 0);
  writer->flush();
  n = read(fds[0], buffer, sizeof buffer);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buffer, static_cast<size_t>(n)), "late\n");
  close(fds[0]);
  close(fds[1]);
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
