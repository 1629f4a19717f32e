#include "core/metrics.h"

#include <sys/resource.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <string>

namespace lotus {
namespace {

using Counts = std::array<uint64_t, LatencyHistogram::kBucketCount>;

// The value a bucket stands for: the middle of the integers it holds.
double representative_nanos(size_t index) {
  return static_cast<double>(LatencyHistogram::bucket_lower_bound(index)) +
         static_cast<double>(LatencyHistogram::bucket_width(index) - 1) / 2.0;
}

uint64_t load_counts(const std::array<std::atomic<uint64_t>, LatencyHistogram::kBucketCount>& in,
                     Counts& out) {
  uint64_t total = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    out[i] = in[i].load(std::memory_order_relaxed);
    total += out[i];
  }
  return total;
}

double percentile_of(const Counts& counts, uint64_t total, double p) {
  if (total == 0) return 0;
  if (!(p > 0)) p = 0;  // also catches NaN
  if (p > 100) p = 100;
  const auto rank = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total))));
  uint64_t seen = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i];
    if (seen >= rank) return representative_nanos(i) / 1000.0;
  }
  return representative_nanos(counts.size() - 1) / 1000.0;
}

double mean_of(const Counts& counts, uint64_t total) {
  if (total == 0) return 0;
  double sum = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] != 0) sum += static_cast<double>(counts[i]) * representative_nanos(i);
  }
  return sum / static_cast<double>(total) / 1000.0;
}

double seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// The first number in a /proc status value: "\t  123456 kB" -> 123456.
uint64_t parse_number(std::string_view value) {
  uint64_t number = 0;
  size_t i = value.find_first_of("0123456789");
  if (i == std::string_view::npos) return 0;
  for (; i < value.size() && value[i] >= '0' && value[i] <= '9'; ++i) {
    number = number * 10 + static_cast<uint64_t>(value[i] - '0');
  }
  return number;
}

}  // namespace

double LatencyHistogram::percentile(double p) const {
  Counts counts;
  const uint64_t total = load_counts(buckets_, counts);
  return percentile_of(counts, total, p);
}

uint64_t LatencyHistogram::count() const {
  uint64_t total = 0;
  for (const auto& bucket : buckets_) total += bucket.load(std::memory_order_relaxed);
  return total;
}

double LatencyHistogram::mean() const {
  Counts counts;
  const uint64_t total = load_counts(buckets_, counts);
  return mean_of(counts, total);
}

LatencyHistogram::Summary LatencyHistogram::summary() const {
  Counts counts;
  Summary summary;
  summary.count = load_counts(buckets_, counts);
  summary.mean_us = mean_of(counts, summary.count);
  summary.p50_us = percentile_of(counts, summary.count, 50);
  summary.p90_us = percentile_of(counts, summary.count, 90);
  summary.p99_us = percentile_of(counts, summary.count, 99);
  summary.p999_us = percentile_of(counts, summary.count, 99.9);
  summary.max_us = percentile_of(counts, summary.count, 100);
  return summary;
}

void LatencyHistogram::merge_into(LatencyHistogram& target) const {
  if (&target == this) return;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    const uint64_t n = buckets_[i].load(std::memory_order_relaxed);
    if (n != 0) target.buckets_[i].fetch_add(n, std::memory_order_relaxed);
  }
}

void LatencyHistogram::reset() {
  for (auto& bucket : buckets_) bucket.store(0, std::memory_order_relaxed);
}

void parse_proc_status(std::string_view text, ProcessStats& stats) {
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, colon);
    const std::string_view value = line.substr(colon + 1);
    if (key == "VmRSS") {
      stats.rss_bytes = parse_number(value) * 1024;
    } else if (key == "VmHWM") {
      stats.peak_rss_bytes = parse_number(value) * 1024;
    } else if (key == "Threads") {
      stats.threads = static_cast<int>(parse_number(value));
    }
  }
}

ProcessStats read_process_stats() {
  ProcessStats stats;
  // getrusage is exact for CPU time and needs no parsing; /proc/self/status
  // has what it lacks (current RSS, thread count).
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    stats.cpu_user_seconds = seconds(usage.ru_utime);
    stats.cpu_system_seconds = seconds(usage.ru_stime);
    stats.peak_rss_bytes = static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux: KiB
  }
  std::ifstream in("/proc/self/status");
  if (in) {
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    parse_proc_status(text, stats);
  }
  return stats;
}

}  // namespace lotus
