// The shared-memory layout and its arithmetic, on a real segment.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "stats/header_lock.h"
#include "stats/segment.h"
#include "stats/snapshot.h"
#include "test/integration/process.h"

namespace tcpfork::stats {
namespace {

using test::readFile;
using test::uniqueName;

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
  StatsSegment worker = StatsSegment::attach(name, UniqueFd(::dup(segment.fd())));
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

// Flocks belong to open files, so a second create() in this process is a
// second master as far as the lock can tell.
TEST(Segment, ASecondMasterOfTheNameIsRefusedNamingTheFirst) {
  std::string name = uniqueName() + "-owned";
  StatsSegment first = StatsSegment::create(name, 1);
  try {
    StatsSegment::create(name, 1);
    FAIL() << "two masters own '" << name << "'";
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find("stats segment '" + name + "' belongs to a running master (pid " +
                                         std::to_string(::getpid()) + ")"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(StatsSegment::openReadOnly(name)) << "the refused master took nothing from the first";
}

TEST_F(SegmentFixture, NobodyHoldingItCanResizeIt) {
  struct stat st {};
  ASSERT_EQ(::fstat(segment.fd(), &st), 0);
  for (off_t size : {off_t(0), off_t(4096), st.st_size - 1, st.st_size + 4096}) {
    errno = 0;
    EXPECT_EQ(::ftruncate(segment.fd(), size), -1) << size;
    EXPECT_EQ(errno, EPERM) << size;
  }
  // Opened afresh read-write, as anyone with access to the master's /proc could.
  UniqueFd reopened(::open(("/proc/self/fd/" + std::to_string(segment.fd())).c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(reopened) << std::strerror(errno);
  EXPECT_EQ(::ftruncate(reopened.get(), 4096), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::fallocate(reopened.get(), 0, 0, st.st_size + 4096), -1) << "grown by fallocate";
  // Nor can a seal be added that would stop the next worker from mapping it.
  EXPECT_EQ(::fcntl(reopened.get(), F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
  EXPECT_EQ(errno, EPERM);
  ASSERT_EQ(::fstat(segment.fd(), &st), 0);
  EXPECT_EQ(size_t(st.st_size), segmentBytes(4));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SegmentFixture, ReadersFindItThroughTheLocator) {
  std::string locator = readFile(SegmentLocator::path(name));
  EXPECT_EQ(locator, fmt::format("{:>10} {:>10}\n", ::getpid(), segment.fd()));
  store(segment.slot(3).pid, 77);
  store(segment.slot(3).state, uint64_t(WorkerState::kServing));
  StatsSegment reader = StatsSegment::openReadOnly(name);
  EXPECT_EQ(reader.slotCount(), 4u);
  EXPECT_EQ(load(reader.header().masterPid), uint64_t(::getpid()));
  EXPECT_EQ(load(reader.slot(3).pid), 77u);
  EXPECT_EQ(reader.fd(), -1) << "a reader keeps only its mapping";
}

TEST(Segment, AStaleLocatorIsTakenOver) {
  std::string name = uniqueName() + "-stale";
  pid_t dead = ::fork();
  if (dead == 0) _exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  // What a master killed outright leaves: its pid and descriptor, unlocked.
  std::ofstream(SegmentLocator::path(name)) << fmt::format("{:>10} {:>10}\n", dead, 5);
  try {
    StatsSegment::openReadOnly(name);
    FAIL() << "opened the segment of a dead master";
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find(fmt::format("its master (pid {}) is no longer running", dead)),
              std::string::npos)
        << e.what();
  }
  {
    StatsSegment taken = StatsSegment::create(name, 2);
    EXPECT_EQ(SegmentLocator::find(name).pid, ::getpid());
    EXPECT_EQ(StatsSegment::openReadOnly(name).slotCount(), 2u);
  }
  EXPECT_FALSE(std::filesystem::exists(SegmentLocator::path(name))) << "the master removes its locator";
}

TEST(Segment, AMasterThatFailsBeforePublishingLeavesNoLocator) {
  std::string name = uniqueName() + "-unpublished";
  { SegmentLocator taken = SegmentLocator::take(name); }
  EXPECT_FALSE(std::filesystem::exists(SegmentLocator::path(name)));
}

TEST(Segment, RefusesALocatorItCannotTrust) {
  std::string name = uniqueName() + "-planted";
  std::string path = SegmentLocator::path(name);
  std::string target = path + "-target";
  std::ofstream(target) << "";
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
  try {
    StatsSegment::create(name, 1);
    ADD_FAILURE() << "followed a symlink";
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find("a symlink: refused"), std::string::npos) << e.what();
  }
  ::unlink(path.c_str());
  if (::geteuid() == 0) {
    // Another user's file: its owner could write any pid into it.
    ASSERT_EQ(::rename(target.c_str(), path.c_str()), 0);
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
    try {
      StatsSegment::create(name, 1);
      ADD_FAILURE() << "took a locator owned by uid 65534";
    } catch (const SegmentError& e) {
      EXPECT_NE(std::string(e.what()).find("belongs to uid 65534"), std::string::npos) << e.what();
    }
    ::unlink(path.c_str());
  }
  ::unlink(target.c_str());
}

TEST(Segment, RefusesToMapAnUnsealedSegment) {
  // A correct header in a memfd anybody holding it could shrink.
  UniqueFd fd(::memfd_create("tcpfork-unit-unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_TRUE(fd);
  ASSERT_EQ(::ftruncate(fd.get(), off_t(segmentBytes(1))), 0);
  Header h{};
  h.magic = kMagic;
  h.layoutVersion = kLayoutVersion;
  h.slotCount = 1;
  h.segmentBytes = segmentBytes(1);
  ASSERT_EQ(::pwrite(fd.get(), &h, sizeof h, 0), ssize_t(sizeof h));
  try {
    StatsSegment::attach("unsealed", std::move(fd));
    FAIL() << "mapped an unsealed segment";
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find("is not sealed against resizing"), std::string::npos) << e.what();
  }
}

// The workers' user can write the header: the master goes by what it checked.
TEST_F(SegmentFixture, AForgedSlotCountIsNotBelieved) {
  segment.header().slotCount = 1'000'000;
  EXPECT_EQ(segment.slotCount(), 4u);
  EXPECT_THROW(segment.slot(4), SegmentError);
  Snapshot s = takeSnapshot(segment);
  EXPECT_TRUE(s.workers.empty());
}

TEST_F(SegmentFixture, AForgedCountOfRetiredNamesIsNotBelieved) {
  Slot& slot = segment.slot(0);
  std::strcpy(slot.handlerCounters[0].name, "stored");
  store(slot.handlerCounters[0].value, 5);
  storeRelease(slot.handlerCounterCount, 1);
  store(segment.header().retiredHandlerCount, uint64_t(1) << 40);
  std::vector<std::string> lost = foldIntoRetired(segment.header(), slot);
  EXPECT_EQ(lost, std::vector<std::string>{"stored"}) << "no room among the (forged) full table";
}

// The workers' user can write any pid into the header's lock word.
TEST_F(SegmentFixture, ALockWordHeldPastAnyCriticalSectionIsTakenOver) {
  store(segment.header().writerPid, uint64_t(::getppid()));  // alive, and never releases
  auto start = std::chrono::steady_clock::now();
  {
    HeaderLock lock(segment.header());
    EXPECT_EQ(load(segment.header().writerPid), uint64_t(::getpid()));
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(load(segment.header().writerPid), 0u);
}

TEST_F(SegmentFixture, AnUpgradeAdoptsTheSegmentAndTheNameLockByDescriptor) {
  try {
    StatsSegment::adopt(name, UniqueFd(), UniqueFd());
    ADD_FAILURE() << "adopted nothing";
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find("handed over no stats segment descriptor"), std::string::npos) << e.what();
  }
  try {
    StatsSegment::adopt(name + "-renamed", UniqueFd(::dup(segment.fd())), UniqueFd(::dup(segment.lockFd())));
    ADD_FAILURE() << "adopted the segment under another name";
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find("a new name needs a restart"), std::string::npos) << e.what();
  }
  StatsSegment next = StatsSegment::adopt(name, UniqueFd(::dup(segment.fd())), UniqueFd(::dup(segment.lockFd())));
  store(next.slot(1).pid, 99);
  EXPECT_EQ(load(segment.slot(1).pid), 99u) << "one segment";
  EXPECT_NE(next.fd(), segment.fd());
  next.claimName();
  EXPECT_EQ(SegmentLocator::find(name).fd, next.fd()) << "readers are pointed at the new master's descriptor";
  EXPECT_THROW(StatsSegment::create(name, 1), SegmentError) << "the lock is held";
}

}  // namespace
}  // namespace tcpfork::stats
