#pragma once
// A histogram as the stats segment holds it: one count per bucket (not
// cumulative; +Inf last) and the sum, in nanoseconds, for a fixed table of
// upper bounds. Histogram lives in shared memory and has one writer (its
// worker, or the master while it folds a slot); HistogramView is a reader's
// copy, which sums, subtracts and estimates quantiles.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "stats/fields.h"

namespace tcpfork::stats {

// The bucket of `ns`: the first bound at or above it (Prometheus' `le`), or
// the +Inf bucket past the last.
template <size_t N>
constexpr size_t bucketOf(const std::array<uint64_t, N>& bounds, uint64_t ns) {
  return size_t(std::lower_bound(bounds.begin(), bounds.end(), ns) - bounds.begin());
}

template <const auto& kBounds>
struct Histogram {
  static constexpr const auto& bounds = kBounds;
  static constexpr size_t kBuckets = kBounds.size() + 1;
  uint64_t buckets[kBuckets];
  uint64_t sumNs;

  // `n` observations of `ns` each.
  void record(uint64_t ns, uint64_t n = 1) {
    add(buckets[bucketOf(kBounds, ns)], n);
    add(sumNs, ns * n);
  }
  void addFrom(const Histogram& other) {
    for (size_t i = 0; i < kBuckets; ++i) add(buckets[i], load(other.buckets[i]));
    add(sumNs, load(other.sumNs));
  }
  void clear() {
    for (auto& b : buckets) store(b, 0);
    store(sumNs, 0);
  }
};

template <const auto& kBounds>
struct HistogramView {
  static constexpr const auto& bounds = kBounds;
  std::array<uint64_t, kBounds.size() + 1> buckets{};
  uint64_t sumNs = 0;

  static HistogramView read(const Histogram<kBounds>& h) {
    HistogramView v;
    for (size_t i = 0; i < v.buckets.size(); ++i) v.buckets[i] = load(h.buckets[i]);
    v.sumNs = load(h.sumNs);
    return v;
  }
  HistogramView& operator+=(const HistogramView& other) {
    for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += other.buckets[i];
    sumNs += other.sumNs;
    return *this;
  }
  // What was counted since `before` (a counter reset reads as nothing).
  HistogramView since(const HistogramView& before) const {
    HistogramView d = *this;
    for (size_t i = 0; i < d.buckets.size(); ++i) d.buckets[i] -= std::min(d.buckets[i], before.buckets[i]);
    d.sumNs -= std::min(d.sumNs, before.sumNs);
    return d;
  }
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t b : buckets) n += b;
    return n;
  }
  // Observations above `ns` (which should be one of the bounds).
  uint64_t countAbove(uint64_t ns) const {
    uint64_t n = 0;
    for (size_t i = bucketOf(kBounds, ns) + 1; i < buckets.size(); ++i) n += buckets[i];
    return n;
  }
  // Upper bound of the bucket holding quantile q, in ns (0 when empty; the
  // last finite bound when it falls in +Inf).
  uint64_t quantileNs(double q) const {
    uint64_t total = count();
    if (total == 0) return 0;
    auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * double(total))));
    uint64_t seen = 0;
    for (size_t i = 0; i < kBounds.size(); ++i) {
      seen += buckets[i];
      if (seen >= rank) return kBounds[i];
    }
    return kBounds.back();
  }
};

}  // namespace tcpfork::stats
