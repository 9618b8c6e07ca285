// The shared-memory layout and its arithmetic, on a real segment.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "stats/segment.h"
#include "stats/snapshot.h"

namespace tcpfork::stats {
namespace {

std::string uniqueName() { return "tcpfork-unit-" + std::to_string(::getpid()); }

struct SegmentFixture : ::testing::Test {
  std::string name = uniqueName();
  StatsSegment segment = StatsSegment::create(name, 4);

};

TEST(Layout, SlotsOwnWholeCacheLines) {
  EXPECT_EQ(sizeof(Slot) % 64, 0u);
  EXPECT_EQ(alignof(Slot), 64u);
  EXPECT_EQ(sizeof(Header) % 64, 0u);
  EXPECT_EQ(segmentBytes(4), sizeof(Header) + 4 * sizeof(Slot));
}

TEST_F(SegmentFixture, ReadersSeeWhatAWorkerPublishes) {
  StatsSegment worker = StatsSegment::openReadWrite(name);
  Slot& slot = worker.slot(2);
  store(slot.pid, 4242);
  store(slot.state, uint64_t(WorkerState::kServing));
  add(slot.totals.counters[index(Counter::kRequestsReceived)], 10);
  add(slot.totals.counters[index(Counter::kRequestsReceived)], 5);
  slot.totals.requestDuration.record(30'000, 15);
  slot.totals.handlerDuration.record(3'000, 15);
  slot.loopLag.record(2'000'000'000);
  store(slot.connectionsCurrent, 3);

  Snapshot s = takeSnapshot(StatsSegment::openReadOnly(name));
  ASSERT_EQ(s.workers.size(), 1u);
  EXPECT_EQ(s.workers[0].slot, 2u);
  EXPECT_EQ(s.workers[0].pid, 4242);
  EXPECT_EQ(s.total().counter(Counter::kRequestsReceived), 15u);
  EXPECT_EQ(s.connected(), 3u);
  EXPECT_EQ(s.total().requestDuration.count(), 15u);
  EXPECT_EQ(s.total().requestDuration.quantileNs(0.99), 50'000u);
  EXPECT_EQ(s.total().requestDuration.sumNs, 450'000u);
  EXPECT_EQ(s.total().handlerDuration.quantileNs(0.99), 5'000u);
  EXPECT_EQ(s.workers[0].loopLag.countAbove(1'000'000'000), 1u);
}

// The bounds Prometheus' `le` labels come from: what DESIGN.md and the
// dashboards promise.
TEST(Histograms, RequestBucketsRunFromTenMicrosecondsToThirtySeconds) {
  EXPECT_EQ(kRequestBoundsNs.front(), 10'000u);
  EXPECT_GE(kRequestBoundsNs.back(), 30'000'000'000u);
  EXPECT_TRUE(std::is_sorted(kRequestBoundsNs.begin(), kRequestBoundsNs.end()));
  EXPECT_TRUE(std::adjacent_find(kRequestBoundsNs.begin(), kRequestBoundsNs.end()) == kRequestBoundsNs.end());
  EXPECT_GE(kLoopLagBoundsNs.back(), 10'000'000'000u);
  EXPECT_TRUE(std::is_sorted(kLoopLagBoundsNs.begin(), kLoopLagBoundsNs.end()));
  EXPECT_TRUE(std::is_sorted(kHandlerBoundsNs.begin(), kHandlerBoundsNs.end()));
}

TEST(Histograms, AValueOnABoundCountsInThatBucket) {
  // Prometheus buckets are "less than or equal".
  EXPECT_EQ(bucketOf(kRequestBoundsNs, 0), 0u);
  EXPECT_EQ(bucketOf(kRequestBoundsNs, 10'000), 0u);
  EXPECT_EQ(bucketOf(kRequestBoundsNs, 10'001), 1u);
  EXPECT_EQ(bucketOf(kRequestBoundsNs, 30'000'000'000), kRequestBoundsNs.size() - 1);
  EXPECT_EQ(bucketOf(kRequestBoundsNs, 30'000'000'001), kRequestBoundsNs.size());  // +Inf
}

TEST(Histograms, AViewSubtractsAndFindsQuantiles) {
  Histogram<kRequestBoundsNs> h{};
  h.record(20'000, 98);
  h.record(2'000'000'000, 2);
  auto before = HistogramView<kRequestBoundsNs>::read(h);
  EXPECT_EQ(before.count(), 100u);
  EXPECT_EQ(before.quantileNs(0.5), 25'000u);
  EXPECT_EQ(before.quantileNs(0.99), 2'500'000'000u);
  EXPECT_EQ(before.countAbove(1'000'000'000), 2u);
  h.record(60'000'000'000);  // past the last bound: +Inf
  auto after = HistogramView<kRequestBoundsNs>::read(h);
  auto d = after.since(before);
  EXPECT_EQ(d.count(), 1u);
  EXPECT_EQ(d.buckets.back(), 1u);
  EXPECT_EQ(d.quantileNs(0.5), kRequestBoundsNs.back());
  EXPECT_EQ(d.sumNs, 60'000'000'000u);
}

TEST_F(SegmentFixture, FoldingAnExitedWorkerKeepsTotalsAndEmptiesTheSlot) {
  Slot& a = segment.slot(0);
  Slot& b = segment.slot(1);
  for (Slot* s : {&a, &b}) {
    store(s->state, uint64_t(WorkerState::kServing));
    add(s->totals.counters[index(Counter::kRequestsReceived)], 100);
    add(s->totals.protocolErrors[0], 1);
  }
  TotalsView before = takeSnapshot(segment).total();
  foldIntoRetired(segment.header(), a);
  Snapshot after = takeSnapshot(segment);
  EXPECT_EQ(after.total().counter(Counter::kRequestsReceived), before.counter(Counter::kRequestsReceived));
  EXPECT_EQ(after.total().protocolErrors[0], 2u);
  EXPECT_EQ(after.workers.size(), 1u);
  EXPECT_EQ(load(a.state), uint64_t(WorkerState::kEmpty));
  EXPECT_EQ(load(a.totals.counters[index(Counter::kRequestsReceived)]), 0u);
  EXPECT_EQ(load(segment.header().foldSequence) % 2, 0u);
}

void declare(HandlerCounter& counter, std::string_view name, uint64_t value) {
  std::memset(&counter, 0, sizeof counter);
  std::memcpy(counter.name, name.data(), std::min(name.size(), sizeof counter.name));
  std::memcpy(counter.help, "help", 4);
  store(counter.value, value);
}

// The workers' user can write anything into a slot: readers and the fold
// take only counters a worker of ours could have declared, so that no name
// against the rule reaches a sample line or a JSON key, and a name counts once.
TEST_F(SegmentFixture, ReadersAndTheFoldSkipCountersNoWorkerCouldDeclare) {
  Slot& slot = segment.slot(0);
  store(slot.state, uint64_t(WorkerState::kServing));
  declare(slot.handlerCounters[0], "seen", 1);
  declare(slot.handlerCounters[1], "seen", 10);
  declare(slot.handlerCounters[2], "x 1\nforged_sample", 100);
  declare(slot.handlerCounters[3], "completions_dropped", 1000);
  declare(slot.handlerCounters[4], std::string(kHandlerCounterNameBytes, 'a'), 10000);
  declare(slot.handlerCounters[5], "\xff", 100000);
  declare(slot.handlerCounters[6], "Upper", 1000000);
  declare(slot.handlerCounters[7], "ok_2", 2);
  storeRelease(slot.handlerCounterCount, 8);

  auto names = [](const std::map<std::string, HandlerCounterView>& counters) {
    std::map<std::string, uint64_t> out;
    for (const auto& [name, c] : counters) out[name] = c.value;
    return out;
  };
  const std::map<std::string, uint64_t> expected = {{"ok_2", 2}, {"seen", 1}};
  EXPECT_EQ(names(takeSnapshot(segment).handlerTotals()), expected);
  EXPECT_EQ(takeSnapshot(segment).workers.at(0).handlerCounters.size(), 2u);
  EXPECT_EQ(foldIntoRetired(segment.header(), slot), std::vector<std::string>{});
  EXPECT_EQ(load(segment.header().retiredHandlerCount), 2u) << "only what a worker could declare is folded";
  EXPECT_EQ(names(takeSnapshot(segment).handlerTotals()), expected);
}

TEST(HandlerCounterNames, FollowTheRuleTheAbiStates) {
  for (const char* good : {"a", "seen", "ok_2", "a23456789012345678901234567890123456789012345678"}) {
    EXPECT_EQ(handlerCounterNameProblem(good), nullptr) << good;
  }
  for (const char* bad :
       {"", "2a", "_a", "Bad", "a-b", "a b", "a\n", "a234567890123456789012345678901234567890123456789"}) {
    EXPECT_STREQ(handlerCounterNameProblem(bad), "a name is [a-z][a-z0-9_]{0,47}") << bad;
  }
  EXPECT_STREQ(handlerCounterNameProblem("completions_dropped"), "the name is taken by tcpfork's own counter");
}

TEST_F(SegmentFixture, RefusesAMismatchedLayoutByName) {
  store(segment.header().magic, kMagic);
  segment.header().layoutVersion = kLayoutVersion + 1;
  try {
    StatsSegment::openReadOnly(name);
    FAIL() << "opened a segment of another layout version";
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find("layout version"), std::string::npos) << e.what();
  }
}

TEST(Segment, TheCreatorRemovesItsSegment) {
  std::string name = uniqueName() + "-owned-by-creator";
  {
    StatsSegment created = StatsSegment::create(name, 1);
    StatsSegment moved = std::move(created);
    EXPECT_NO_THROW(StatsSegment::openReadOnly(name));
  }
  EXPECT_THROW(StatsSegment::openReadOnly(name), SegmentError);
}

TEST(Segment, ExplainsAMissingSegment) {
  try {
    StatsSegment::openReadOnly("tcpfork-unit-absent");
    FAIL();
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find("is a tcpfork master with this name running?"), std::string::npos);
  }
}

TEST(Segment, RefusesToReplaceALiveMastersSegment) {
  std::string name = uniqueName() + "-owned";
  StatsSegment first = StatsSegment::create(name, 1);
  store(first.header().masterPid, uint64_t(::getppid()));  // a live process other than us
  EXPECT_THROW(StatsSegment::create(name, 1), SegmentError);
  store(first.header().masterPid, uint64_t(::getpid()));  // ours again, so that it is removed
}

}  // namespace
}  // namespace tcpfork::stats
