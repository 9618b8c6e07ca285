// OverloadDetector on a synthetic clock: when an overload begins and ends,
// and which requests it sheds.
#include "worker/overload_detector.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace tcpfork {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kTarget = 5 * kMs;
constexpr uint64_t kInterval = 100 * kMs;

// Feeds one request every `stepNs` from `fromNs` until `untilNs`, each with
// the sojourn `sojournNs`; returns how many were shed.
uint64_t feed(OverloadDetector& d, uint64_t fromNs, uint64_t untilNs, uint64_t stepNs, uint64_t sojournNs) {
  uint64_t shed = 0;
  for (uint64_t t = fromNs; t < untilNs; t += stepNs) shed += d.shed(sojournNs, t) ? 1 : 0;
  return shed;
}

TEST(OverloadDetector, ShortDelaysNeverOverload) {
  OverloadDetector d(kTarget, kInterval);
  EXPECT_EQ(feed(d, kMs, 2000 * kMs, kMs / 10, kTarget), 0u);  // at the target is not over it
  EXPECT_FALSE(d.overloaded());
}

TEST(OverloadDetector, OverloadBeginsOnceAWholeIntervalPassedOverTheTarget) {
  OverloadDetector d(kTarget, kInterval);
  // Every request waited over the target, but not yet for a whole interval.
  EXPECT_EQ(feed(d, kMs, kMs + kInterval, kMs, 50 * kMs), 0u);
  EXPECT_FALSE(d.overloaded());
  // An interval after the first of them: overloaded, and this one is shed.
  EXPECT_TRUE(d.shed(50 * kMs, kMs + kInterval));
  EXPECT_TRUE(d.overloaded());
}

TEST(OverloadDetector, OneShortDelayInTheIntervalIsNoOverload) {
  OverloadDetector d(kTarget, kInterval);
  feed(d, 0, 50 * kMs, kMs, 50 * kMs);
  d.shed(kMs, 50 * kMs);  // one request went through at once: a burst's queue, not a standing one
  feed(d, 51 * kMs, 150 * kMs, kMs, 50 * kMs);
  EXPECT_FALSE(d.overloaded());
  d.shed(50 * kMs, 150 * kMs);  // a whole interval since the short one
  EXPECT_TRUE(d.overloaded());
}

TEST(OverloadDetector, RequestsAnIntervalApartAreNoQueue) {
  OverloadDetector d(kTarget, kInterval);
  for (uint64_t t = 0; t < 20 * kInterval; t += kInterval + kMs) EXPECT_FALSE(d.shed(50 * kMs, t));
  EXPECT_FALSE(d.overloaded());
}

TEST(OverloadDetector, ShedsOnlyWhatWaitedOverTwiceTheTarget) {
  OverloadDetector d(kTarget, kInterval);
  feed(d, 0, kInterval + kMs, kMs, 20 * kMs);
  ASSERT_TRUE(d.overloaded());
  uint64_t t = kInterval + 2 * kMs;
  EXPECT_FALSE(d.shed(2 * kTarget, t));      // exactly twice the target is served
  EXPECT_TRUE(d.shed(2 * kTarget + 1, t));   // over it is shed
  EXPECT_FALSE(d.shed(kTarget + kMs, t));    // over the target but under twice it: served
  EXPECT_TRUE(d.shed(200 * kMs, t));
}

TEST(OverloadDetector, NothingIsShedWhileNotOverloaded) {
  OverloadDetector d(kTarget, kInterval);
  EXPECT_EQ(feed(d, 0, kInterval, kMs, 500 * kMs), 0u);
}

TEST(OverloadDetector, RecoversOnceAnIntervalHadShortDelaysAndShedNothing) {
  OverloadDetector d(kTarget, kInterval);
  feed(d, 0, kInterval + kMs, kMs, 20 * kMs);
  ASSERT_TRUE(d.overloaded());
  // Shedding clears the old requests: the newest go through at once, while
  // older ones are still shed. The shortest delay is within the target, but
  // requests were shed: still overloaded.
  uint64_t t = kInterval + kMs;
  uint64_t shed = 0;
  for (; t < 3 * kInterval; t += kMs) {
    shed += d.shed(kMs, t) ? 1 : 0;
    shed += d.shed(30 * kMs, t) ? 1 : 0;
  }
  EXPECT_GT(shed, 0u);
  EXPECT_TRUE(d.overloaded());
  // The load drops: every delay short. The interval in progress still shed
  // something; the one after it sheds nothing and ends the overload.
  uint64_t recoveredAt = 0;
  for (; t < 6 * kInterval && recoveredAt == 0; t += kMs) {
    EXPECT_FALSE(d.shed(kMs, t));
    if (!d.overloaded()) recoveredAt = t;
  }
  ASSERT_NE(recoveredAt, 0u);
  EXPECT_LE(recoveredAt, 3 * kInterval + 2 * kInterval);
}

TEST(OverloadDetector, AnIntervalWithoutRequestsEndsTheOverload) {
  OverloadDetector d(kTarget, kInterval);
  feed(d, 0, kInterval + kMs, kMs, 20 * kMs);
  ASSERT_TRUE(d.overloaded());
  // The load stops: the loop's ticks end the interval in progress (which
  // had requests over the target) and then one with none.
  uint64_t t = kInterval + kMs;
  d.idle(t + kInterval);
  EXPECT_TRUE(d.overloaded());
  d.idle(t + 2 * kInterval);
  EXPECT_FALSE(d.overloaded());
}

TEST(OverloadDetector, IdleTicksInsideAnIntervalChangeNothing) {
  OverloadDetector d(kTarget, kInterval);
  feed(d, 0, kInterval + kMs, kMs, 20 * kMs);
  ASSERT_TRUE(d.overloaded());
  d.idle(kInterval + 50 * kMs);  // the interval begun at 100 ms runs to 200 ms
  EXPECT_TRUE(d.overloaded());
  EXPECT_TRUE(d.shed(20 * kMs, kInterval + 60 * kMs));
}

}  // namespace
}  // namespace tcpfork
