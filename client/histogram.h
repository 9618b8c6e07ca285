#pragma once
// Latency histograms for the load client. LatencyHistogram is written by one
// bench thread (relaxed atomic stores, no read-modify-write on the hot path)
// and read by the progress reporter; HistogramSnapshot is a plain copy that
// can be summed, diffed and queried.
//
// Buckets are log-linear (HdrHistogram-style): 32 linear sub-buckets per power
// of two, so any recorded value is reported within about 3%.

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace tcpfork::client {

inline constexpr unsigned kSubBucketBits = 5;
inline constexpr size_t kSubBuckets = size_t{1} << kSubBucketBits;
inline constexpr size_t kHistogramBuckets = 64 * kSubBuckets;

constexpr size_t bucketIndex(uint64_t value) {
  if (value < 2 * kSubBuckets) return static_cast<size_t>(value);
  unsigned exponent = 63 - static_cast<unsigned>(std::countl_zero(value));
  unsigned shift = exponent - kSubBucketBits;
  return (shift + 1) * kSubBuckets + static_cast<size_t>((value >> shift) - kSubBuckets);
}

// Smallest value that lands in bucket `index`.
constexpr uint64_t bucketLowerBound(size_t index) {
  if (index < 2 * kSubBuckets) return index;
  unsigned shift = static_cast<unsigned>(index / kSubBuckets) - 1;
  return (kSubBuckets + index % kSubBuckets) << shift;
}

// Largest value that lands in bucket `index`.
constexpr uint64_t bucketUpperBound(size_t index) {
  return index + 1 < kHistogramBuckets ? bucketLowerBound(index + 1) - 1 : UINT64_MAX;
}

class HistogramSnapshot {
 public:
  void add(uint64_t value, uint64_t count = 1);
  HistogramSnapshot& operator+=(const HistogramSnapshot& other);
  // Counts recorded since `earlier` (a snapshot of the same histogram). The max
  // of an interval is not recoverable from two snapshots: it keeps this one's.
  HistogramSnapshot since(const HistogramSnapshot& earlier) const;

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }
  double mean() const;
  // Upper bound of the bucket holding quantile q (0 < q <= 1), capped at max();
  // 0 when empty.
  uint64_t percentile(double q) const;
  // Calls fn(upper bound, count) for each bucket that counted anything, in
  // ascending order (the last bound capped at max()).
  template <typename Fn>
  void forEachBucket(Fn fn) const {
    for (size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] != 0) fn(std::min(bucketUpperBound(i), max_), counts_[i]);
    }
  }

 private:
  friend class LatencyHistogram;
  std::array<uint64_t, kHistogramBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t max_ = 0;
  // Sum in buckets' lower bounds would drift; keep the exact sum.
  uint64_t sum_ = 0;
};

class LatencyHistogram {
 public:
  // Single writer only.
  void record(uint64_t value) {
    bump(counts_[bucketIndex(value)], 1);
    bump(sum_, value);
    if (value > max_.load(std::memory_order_relaxed)) max_.store(value, std::memory_order_relaxed);
  }
  // Safe from any thread while the writer runs; slightly torn at worst.
  HistogramSnapshot snapshot() const;

 private:
  static void bump(std::atomic<uint64_t>& counter, uint64_t by) {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
  std::array<std::atomic<uint64_t>, kHistogramBuckets> counts_{};
  std::atomic<uint64_t> sum_{0};
  std::atomic<uint64_t> max_{0};
};

}  // namespace tcpfork::client
