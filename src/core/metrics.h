// Metrics: latency histograms and process resource figures, for `lotus
// status`, the benchmarks and the supervisor's health reports.
//
// LatencyHistogram is written on hot paths (every event dispatch), so
// recording is one relaxed atomic add on a bucket found with a few bit
// operations: no lock, no allocation, safe from any number of threads.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lotus {

// Log-linear buckets in nanoseconds, as in HdrHistogram: values below 32 ns
// get a bucket each, above that every power of two is split into 16 equal
// buckets. A bucket is at most 1/16 of its lower bound wide, so reporting its
// midpoint is within 3.2% of any value in it, from 100 ns to the top of the
// range (2^38 ns, about 275 s; longer latencies count as 275 s).
class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 4;
  static constexpr int kMaxBitWidth = 38;
  static constexpr uint64_t kMaxValueNanos = (uint64_t{1} << kMaxBitWidth) - 1;
  static constexpr size_t kBucketCount = static_cast<size_t>(kMaxBitWidth - kSubBucketBits + 1)
                                         << kSubBucketBits;

  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // Negative durations count as 0.
  void record(std::chrono::nanoseconds latency) {
    const int64_t ns = latency.count();
    const uint64_t value = ns <= 0 ? 0 : std::min(static_cast<uint64_t>(ns), kMaxValueNanos);
    buckets_[bucket_index(value)].fetch_add(1, std::memory_order_relaxed);
  }

  // The latency in microseconds below which `p` percent of the recorded
  // values fall (p in [0, 100], clamped), e.g. percentile(99.9). 0 when empty.
  // Reads while others record see some consistent-enough mix of old and new.
  double percentile(double p) const;
  uint64_t count() const;
  // Approximate mean in microseconds (bucket midpoints), 0 when empty.
  double mean() const;

  struct Summary {
    uint64_t count = 0;
    double mean_us = 0;
    double p50_us = 0;
    double p90_us = 0;
    double p99_us = 0;
    double p999_us = 0;
    double max_us = 0;
  };
  // Every figure from one pass over the buckets.
  Summary summary() const;

  // Adds this histogram's counts to `target` (e.g. per-thread or per-module
  // histograms into a total).
  void merge_into(LatencyHistogram& target) const;
  // Zeroes every bucket; counts recorded concurrently may survive or not.
  void reset();

  // Bucket arithmetic, public for tests and for exporters.
  static constexpr size_t bucket_index(uint64_t nanos) {
    const int width = static_cast<int>(std::bit_width(nanos));
    const int shift = width > kSubBucketBits + 1 ? width - kSubBucketBits - 1 : 0;
    return (static_cast<size_t>(shift) << kSubBucketBits) + static_cast<size_t>(nanos >> shift);
  }
  static constexpr uint64_t bucket_lower_bound(size_t index) {
    if (index < (size_t{2} << kSubBucketBits)) return index;
    const size_t shift = (index >> kSubBucketBits) - 1;
    const uint64_t mantissa = index - (shift << kSubBucketBits);
    return mantissa << shift;
  }
  static constexpr uint64_t bucket_width(size_t index) {
    if (index < (size_t{2} << kSubBucketBits)) return 1;
    return uint64_t{1} << ((index >> kSubBucketBits) - 1);
  }

 private:
  static_assert(std::atomic<uint64_t>::is_always_lock_free);

  std::array<std::atomic<uint64_t>, kBucketCount> buckets_{};
};

static_assert(LatencyHistogram::bucket_index(LatencyHistogram::kMaxValueNanos) ==
              LatencyHistogram::kBucketCount - 1);

// Resource use of this process. Fields that cannot be read (no /proc) are 0.
struct ProcessStats {
  uint64_t rss_bytes = 0;  // resident set size now
  double cpu_user_seconds = 0;
  double cpu_system_seconds = 0;
  int threads = 0;
  uint64_t peak_rss_bytes = 0;  // high-water mark of the resident set
};

ProcessStats read_process_stats();

// Fills rss_bytes, peak_rss_bytes and threads from the text of
// /proc/<pid>/status; lines it does not know are skipped.
void parse_proc_status(std::string_view text, ProcessStats& stats);

}  // namespace lotus
