#include <gtest/gtest.h>

#include <random>

#include "client/histogram.h"

namespace tcpfork::client {
namespace {

TEST(Histogram, BucketsAreContiguousAndHoldTheirValues) {
  for (size_t i = 0; i + 1 < 60 * kSubBuckets; ++i) {
    ASSERT_EQ(bucketUpperBound(i) + 1, bucketLowerBound(i + 1)) << "bucket " << i;
    ASSERT_EQ(bucketIndex(bucketLowerBound(i)), i);
    ASSERT_EQ(bucketIndex(bucketUpperBound(i)), i);
  }
  EXPECT_LT(bucketIndex(UINT64_MAX), kHistogramBuckets);
}

TEST(Histogram, BucketsAreWithinThreePercent) {
  for (uint64_t v : {100ull, 1'000ull, 12'345ull, 1'000'000ull, 987'654'321ull, 60'000'000'000ull}) {
    size_t i = bucketIndex(v);
    double width = double(bucketUpperBound(i) - bucketLowerBound(i) + 1);
    EXPECT_LE(width / double(v), 1.0 / kSubBuckets + 1e-9) << v;
  }
}

TEST(Histogram, PercentilesOfAUniformSpread) {
  HistogramSnapshot h;
  for (uint64_t v = 1; v <= 100'000; ++v) h.add(v * 1000);  // 1 us .. 100 ms
  EXPECT_EQ(h.count(), 100'000u);
  EXPECT_EQ(h.max(), 100'000'000u);
  EXPECT_NEAR(double(h.percentile(0.5)), 50e6, 50e6 * 0.035);
  EXPECT_NEAR(double(h.percentile(0.99)), 99e6, 99e6 * 0.035);
  EXPECT_EQ(h.percentile(1.0), 100'000'000u);
  EXPECT_NEAR(h.mean(), 50'000'500.0, 1.0);
}

TEST(Histogram, EmptyIsZero) {
  HistogramSnapshot h;
  EXPECT_EQ(h.percentile(0.99), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(Histogram, SnapshotsSumAndDiff) {
  LatencyHistogram live;
  for (int i = 0; i < 10; ++i) live.record(1000);
  HistogramSnapshot first = live.snapshot();
  for (int i = 0; i < 90; ++i) live.record(5'000'000);
  HistogramSnapshot second = live.snapshot();
  HistogramSnapshot interval = second.since(first);
  EXPECT_EQ(interval.count(), 90u);
  EXPECT_NEAR(double(interval.percentile(0.5)), 5e6, 5e6 * 0.035);

  HistogramSnapshot total = first;
  total += interval;
  EXPECT_EQ(total.count(), second.count());
  EXPECT_EQ(total.percentile(0.05), second.percentile(0.05));
}

}  // namespace
}  // namespace tcpfork::client
