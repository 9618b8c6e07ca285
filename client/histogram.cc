#include "client/histogram.h"

#include <algorithm>
#include <cmath>

namespace tcpfork::client {

void HistogramSnapshot::add(uint64_t value, uint64_t count) {
  counts_[bucketIndex(value)] += count;
  count_ += count;
  sum_ += value * count;
  max_ = std::max(max_, value);
}

HistogramSnapshot& HistogramSnapshot::operator+=(const HistogramSnapshot& other) {
  for (size_t i = 0; i < kHistogramBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
  return *this;
}

HistogramSnapshot HistogramSnapshot::since(const HistogramSnapshot& earlier) const {
  HistogramSnapshot delta;
  for (size_t i = 0; i < kHistogramBuckets; ++i) {
    delta.counts_[i] = counts_[i] - std::min(counts_[i], earlier.counts_[i]);
    delta.count_ += delta.counts_[i];
  }
  delta.sum_ = sum_ - std::min(sum_, earlier.sum_);
  delta.max_ = max_;
  return delta;
}

double HistogramSnapshot::mean() const { return count_ ? static_cast<double>(sum_) / count_ : 0.0; }

uint64_t HistogramSnapshot::percentile(double q) const {
  if (count_ == 0) return 0;
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kHistogramBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(bucketUpperBound(i), max_);
  }
  return max_;
}

HistogramSnapshot LatencyHistogram::snapshot() const {
  HistogramSnapshot s;
  for (size_t i = 0; i < kHistogramBuckets; ++i) s.counts_[i] = counts_[i].load(std::memory_order_relaxed);
  // Sum the buckets rather than read count_, so percentiles stay consistent
  // with a snapshot taken while the writer runs.
  for (uint64_t c : s.counts_) s.count_ += c;
  s.sum_ = sum_.load(std::memory_order_relaxed);
  s.max_ = max_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tcpfork::client
