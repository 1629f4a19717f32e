#include "core/metrics.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lotus {
namespace {

using std::chrono::microseconds;
using std::chrono::nanoseconds;

// Midpoint reporting in a bucket at most 1/16 of its lower bound wide.
constexpr double kBucketError = 1.0 / 32 + 1e-9;

void expect_near_relative(double actual, double expected, double tolerance, const char* what) {
  EXPECT_LE(std::abs(actual - expected), tolerance * expected)
      << what << ": got " << actual << ", expected " << expected << " within " << tolerance * 100
      << "%";
}

TEST(LatencyHistogramBucketsTest, SmallValuesHaveExactBuckets) {
  for (uint64_t ns = 0; ns < 32; ++ns) {
    EXPECT_EQ(LatencyHistogram::bucket_index(ns), ns);
    EXPECT_EQ(LatencyHistogram::bucket_lower_bound(ns), ns);
    EXPECT_EQ(LatencyHistogram::bucket_width(ns), 1u);
  }
}

TEST(LatencyHistogramBucketsTest, BucketsTileTheRangeWithBoundedWidth) {
  uint64_t expected_lower = 0;
  for (size_t i = 0; i < LatencyHistogram::kBucketCount; ++i) {
    const uint64_t lower = LatencyHistogram::bucket_lower_bound(i);
    const uint64_t width = LatencyHistogram::bucket_width(i);
    ASSERT_EQ(lower, expected_lower) << "bucket " << i << " must start where the last ended";
    ASSERT_EQ(LatencyHistogram::bucket_index(lower), i);
    ASSERT_EQ(LatencyHistogram::bucket_index(lower + width - 1), i);
    if (lower >= 32) {
      ASSERT_LE(static_cast<double>(width) / static_cast<double>(lower), 1.0 / 16)
          << "bucket " << i;
    }
    expected_lower = lower + width;
  }
  EXPECT_EQ(expected_lower - 1, LatencyHistogram::kMaxValueNanos);
  EXPECT_GT(LatencyHistogram::kMaxValueNanos, uint64_t{100'000'000'000}) << "covers 100 s";
}

TEST(LatencyHistogramTest, EmptyHistogramReportsZero) {
  LatencyHistogram histogram;
  EXPECT_EQ(histogram.count(), 0u);
  EXPECT_EQ(histogram.percentile(50), 0);
  EXPECT_EQ(histogram.mean(), 0);
  LatencyHistogram::Summary summary = histogram.summary();
  EXPECT_EQ(summary.count, 0u);
  EXPECT_EQ(summary.max_us, 0);
}

TEST(LatencyHistogramTest, SingleValuesAcrossTheRangeComeBackWithinBucketError) {
  for (double us : {0.1, 0.25, 1.0, 7.3, 42.0, 999.0, 12'345.0, 1e6, 3.3e7, 1e8}) {
    LatencyHistogram histogram;
    histogram.record(nanoseconds(static_cast<int64_t>(us * 1000)));
    EXPECT_EQ(histogram.count(), 1u);
    for (double p : {0.0, 50.0, 99.9, 100.0}) {
      expect_near_relative(histogram.percentile(p), us, kBucketError, "single value");
    }
  }
}

TEST(LatencyHistogramTest, TinyValuesAreExact) {
  LatencyHistogram histogram;
  histogram.record(nanoseconds(17));
  EXPECT_DOUBLE_EQ(histogram.percentile(50), 0.017);
}

TEST(LatencyHistogramTest, NegativeAndHugeValuesAreClamped) {
  LatencyHistogram histogram;
  histogram.record(nanoseconds(-5));
  EXPECT_EQ(histogram.percentile(100), 0);
  histogram.record(std::chrono::hours(2));
  histogram.record(nanoseconds::max());
  EXPECT_EQ(histogram.count(), 3u);
  const double top_us = static_cast<double>(LatencyHistogram::kMaxValueNanos) / 1000;
  expect_near_relative(histogram.percentile(100), top_us, kBucketError, "clamped to the top");
}

TEST(LatencyHistogramTest, UniformDistributionPercentiles) {
  LatencyHistogram histogram;
  constexpr int kValues = 100'000;  // 1 us .. 100 ms in 1 us steps
  for (int i = 1; i <= kValues; ++i) histogram.record(microseconds(i));
  EXPECT_EQ(histogram.count(), static_cast<uint64_t>(kValues));
  for (double p : {1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99}) {
    const double expected = p / 100 * kValues;  // in us
    expect_near_relative(histogram.percentile(p), expected, kBucketError, "uniform");
  }
  expect_near_relative(histogram.percentile(0), 1.0, kBucketError, "min");
  expect_near_relative(histogram.percentile(100), kValues, kBucketError, "max");
  expect_near_relative(histogram.mean(), (kValues + 1) / 2.0, 0.01, "mean");
}

TEST(LatencyHistogramTest, ExponentialDistributionPercentiles) {
  // Deterministic inverse-CDF samples of an exponential with a 2 ms mean.
  constexpr double kMeanUs = 2000;
  constexpr int kValues = 200'000;
  LatencyHistogram histogram;
  for (int i = 0; i < kValues; ++i) {
    const double u = (i + 0.5) / kValues;
    histogram.record(nanoseconds(static_cast<int64_t>(-kMeanUs * std::log(1 - u) * 1000)));
  }
  for (double p : {10.0, 50.0, 90.0, 99.0, 99.9}) {
    const double expected = -kMeanUs * std::log(1 - p / 100);
    expect_near_relative(histogram.percentile(p), expected, 0.05, "exponential");
  }
  expect_near_relative(histogram.mean(), kMeanUs, 0.02, "exponential mean");
}

TEST(LatencyHistogramTest, LogNormalTailFromRandomSamples) {
  // Heavy-tailed like real handler latencies: median 50 us, sigma 1.5.
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> distribution(std::log(50.0), 1.5);
  std::vector<double> samples(300'000);
  LatencyHistogram histogram;
  for (double& us : samples) {
    us = distribution(rng);
    histogram.record(nanoseconds(static_cast<int64_t>(us * 1000)));
  }
  std::sort(samples.begin(), samples.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const double exact = samples[static_cast<size_t>(std::ceil(p / 100 * samples.size())) - 1];
    expect_near_relative(histogram.percentile(p), exact, 0.05, "log-normal");
  }
}

TEST(LatencyHistogramTest, PercentileArgumentIsClamped) {
  LatencyHistogram histogram;
  for (int i = 1; i <= 10; ++i) histogram.record(microseconds(i * 10));
  EXPECT_EQ(histogram.percentile(-5), histogram.percentile(0));
  EXPECT_EQ(histogram.percentile(250), histogram.percentile(100));
  EXPECT_EQ(histogram.percentile(std::nan("")), histogram.percentile(0));
}

TEST(LatencyHistogramTest, SummaryMatchesIndividualQueries) {
  LatencyHistogram histogram;
  for (int i = 1; i <= 10'000; ++i) histogram.record(microseconds(i));
  LatencyHistogram::Summary summary = histogram.summary();
  EXPECT_EQ(summary.count, 10'000u);
  EXPECT_EQ(summary.p50_us, histogram.percentile(50));
  EXPECT_EQ(summary.p90_us, histogram.percentile(90));
  EXPECT_EQ(summary.p99_us, histogram.percentile(99));
  EXPECT_EQ(summary.p999_us, histogram.percentile(99.9));
  EXPECT_EQ(summary.max_us, histogram.percentile(100));
  EXPECT_EQ(summary.mean_us, histogram.mean());
  EXPECT_LT(summary.p50_us, summary.p90_us);
  EXPECT_LT(summary.p99_us, summary.max_us);
}

TEST(LatencyHistogramTest, MergeAddsCountsAndResetClears) {
  LatencyHistogram fast;
  LatencyHistogram slow;
  for (int i = 0; i < 900; ++i) fast.record(microseconds(10));
  for (int i = 0; i < 100; ++i) slow.record(microseconds(1000));
  LatencyHistogram total;
  fast.merge_into(total);
  slow.merge_into(total);
  total.merge_into(total);  // no-op, not a doubling
  EXPECT_EQ(total.count(), 1000u);
  expect_near_relative(total.percentile(50), 10, kBucketError, "merged p50");
  expect_near_relative(total.percentile(95), 1000, kBucketError, "merged p95");
  EXPECT_EQ(fast.count(), 900u) << "the source is left as it was";

  total.reset();
  EXPECT_EQ(total.count(), 0u);
  EXPECT_EQ(total.percentile(99), 0);
}

TEST(LatencyHistogramTest, ConcurrentRecordingLosesNothing) {
  LatencyHistogram histogram;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&histogram, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Half the writes hit one shared bucket, the rest spread out.
        histogram.record(i % 2 == 0 ? microseconds(5) : nanoseconds(100 + t * 1000 + i % 5000));
      }
    });
  }
  // Readers alongside the writers must not crash or block them.
  for (int i = 0; i < 100; ++i) (void)histogram.percentile(99);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(histogram.count(), static_cast<uint64_t>(kThreads) * kPerThread);
  expect_near_relative(histogram.percentile(75), 5, kBucketError, "shared bucket");
}

TEST(ProcessStatsTest, ReadsSaneValuesForThisProcess) {
  ProcessStats stats = read_process_stats();
  EXPECT_GT(stats.rss_bytes, 1024u * 1024) << "a gtest binary is resident in more than 1 MiB";
  EXPECT_LT(stats.rss_bytes, uint64_t{64} << 30);
  EXPECT_GE(stats.peak_rss_bytes, stats.rss_bytes);
  EXPECT_GE(stats.threads, 1);
  EXPECT_GE(stats.cpu_user_seconds, 0);
  EXPECT_GE(stats.cpu_system_seconds, 0);
}

TEST(ProcessStatsTest, CountsThreadsAndCpuTime) {
  const ProcessStats before = read_process_stats();
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&] {
      std::unique_lock lock(mutex);
      cv.wait(lock, [&] { return done; });
    });
  }
  // Burn a little CPU so user time visibly moves.
  volatile uint64_t sink = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(60);
  while (std::chrono::steady_clock::now() < until) {
    for (int i = 0; i < 10000; ++i) sink = sink + static_cast<uint64_t>(i);
  }
  const ProcessStats during = read_process_stats();
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  cv.notify_all();
  for (auto& thread : threads) thread.join();

  EXPECT_GE(during.threads, before.threads + 3);
  EXPECT_GT(during.cpu_user_seconds + during.cpu_system_seconds,
            before.cpu_user_seconds + before.cpu_system_seconds);
}

TEST(ProcessStatsTest, ParsesProcStatusText) {
  constexpr std::string_view kStatus =
      "Name:\tlotus\n"
      "Umask:\t0022\n"
      "State:\tS (sleeping)\n"
      "VmPeak:\t  900000 kB\n"
      "VmHWM:\t   65536 kB\n"
      "VmRSS:\t   40960 kB\n"
      "Threads:\t17\n"
      "no colon on this line\n"
      "SigQ:\t0/63460";
  ProcessStats stats;
  parse_proc_status(kStatus, stats);
  EXPECT_EQ(stats.rss_bytes, 40960u * 1024);
  EXPECT_EQ(stats.peak_rss_bytes, 65536u * 1024);
  EXPECT_EQ(stats.threads, 17);

  ProcessStats untouched;
  parse_proc_status("", untouched);
  parse_proc_status("VmRSS:\n", untouched);
  EXPECT_EQ(untouched.rss_bytes, 0u);
  EXPECT_EQ(untouched.threads, 0);
}

}  // namespace
}  // namespace lotus
