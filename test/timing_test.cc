// The parts behind the latency and queue metrics, without a server: the
// kernel's receive stamps on a real loopback connection, TCP_INFO on a real
// listener, AckClock's bookkeeping of partly sent acks, and the parse of
// /proc/net/netstat.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>

#include "base/rx_timestamp.h"
#include "base/socket.h"
#include "master/admin/netstat.h"
#include "protocol/frame.h"
#include "worker/ack_clock.h"
#include "worker/clock_epochs.h"

namespace tcpfork {
namespace {

struct LoopbackPair {
  UniqueFd listener;
  UniqueFd client;
  UniqueFd server;
};

LoopbackPair connectPair(bool stamped) {
  LoopbackPair p;
  p.listener = listenTcp(parseAddress("127.0.0.1:0"), {.backlog = 8, .reusePort = false});
  if (stamped) {
    EXPECT_TRUE(enableReceiveTimestamps(p.listener.get()));
  }
  p.client = connectTcp(localAddress(p.listener.get()));
  for (int i = 0; i < 1000 && !p.server; ++i) {
    int fd = ::accept4(p.listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      p.server = UniqueFd(fd);
    } else {
      ::usleep(1000);
    }
  }
  EXPECT_TRUE(p.server) << "accept";
  return p;
}

// The kernel stamps packets only while some socket on the host asks for
// stamps, and it switches stamping on from a work queue a moment after the
// first one asks (net_enable_timestamp), so where nothing else asks, the first
// packets after a setsockopt arrive unstamped. A pair whose accepted socket
// asks for stamps itself and has read one proves stamping is on, and keeps it
// on while it stays open.
LoopbackPair stampingSwitchedOn() {
  LoopbackPair p = connectPair(false);
  EXPECT_TRUE(enableReceiveTimestamps(p.server.get()));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    EXPECT_EQ(::send(p.client.get(), "x", 1, 0), 1);
    std::array<std::byte, 1> byte;
    uint64_t stamp = 0;
    EXPECT_EQ(readTimestamped(p.server.get(), byte, stamp), 1);
    if (stamp != 0) return p;
    ::usleep(1000);
  }
  ADD_FAILURE() << "the kernel stamped nothing within 10 s of SO_TIMESTAMPNS";
  return p;
}

TEST(ReceiveTimestamps, AnAcceptedSocketInheritsThemFromItsListener) {
  LoopbackPair keepsStampingOn = stampingSwitchedOn();
  LoopbackPair p = connectPair(true);
  uint64_t before = realtimeNanos();
  ASSERT_EQ(::send(p.client.get(), "abc", 3, 0), 3);
  std::array<std::byte, 16> buffer;
  uint64_t stamp = 0;
  ASSERT_EQ(readTimestamped(p.server.get(), buffer, stamp), 3);  // blocking socket: waits for the bytes
  uint64_t after = realtimeNanos();
  EXPECT_GE(stamp, before);
  EXPECT_LE(stamp, after);
}

TEST(ReceiveTimestamps, WithoutThemAReadSaysSo) {
  LoopbackPair p = connectPair(false);
  ASSERT_EQ(::send(p.client.get(), "abc", 3, 0), 3);
  std::array<std::byte, 16> buffer;
  uint64_t stamp = 1;
  ASSERT_EQ(readTimestamped(p.server.get(), buffer, stamp), 3);
  EXPECT_EQ(stamp, 0u);
}

TEST(AcceptQueue, TcpInfoGivesAListenersQueueAndLimit) {
  UniqueFd listener = listenTcp(parseAddress("127.0.0.1:0"), {.backlog = 8, .reusePort = false});
  auto empty = acceptQueue(listener.get());
  ASSERT_TRUE(empty.has_value());
  EXPECT_EQ(empty->length, 0u);
  EXPECT_EQ(empty->limit, 8u);
  // Handshakes complete in the kernel: connected, not yet accepted.
  UniqueFd a = connectTcp(localAddress(listener.get()));
  UniqueFd b = connectTcp(localAddress(listener.get()));
  auto two = acceptQueue(listener.get());
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->length, 2u);
  EXPECT_FALSE(acceptQueue(a.get()).has_value()) << "a connected socket is not a listener";
}

constexpr uint64_t kSecond = 1'000'000'000;

TEST(AckClock, AnAckCountsWhenItsLastByteIsSent) {
  AckClock clock;
  AckClock::Histogram h{};
  clock.queued(10 * kSecond, 2);
  clock.sent(protocol::kAckFrameBytes - 1, 11 * kSecond, h);
  EXPECT_EQ(h.buckets[stats::bucketOf(stats::kRequestBoundsNs, kSecond)], 0u) << "no ack wholly sent yet";
  clock.sent(1, 11 * kSecond, h);
  EXPECT_EQ(h.buckets[stats::bucketOf(stats::kRequestBoundsNs, kSecond)], 1u);
  clock.sent(protocol::kAckFrameBytes, 13 * kSecond, h);
  EXPECT_EQ(h.buckets[stats::bucketOf(stats::kRequestBoundsNs, 3 * kSecond)], 1u);
  EXPECT_EQ(h.sumNs, 4 * kSecond);
}

TEST(AckClock, RunsKeepTheirOwnStampsInOrder) {
  AckClock clock;
  AckClock::Histogram h{};
  clock.queued(1 * kSecond, 3);
  clock.queued(1 * kSecond, 1);  // same stamp: joins the run
  clock.queued(5 * kSecond, 2);
  clock.queued(8 * kSecond, 1);
  clock.sent(7 * protocol::kAckFrameBytes, 10 * kSecond, h);
  auto v = stats::HistogramView<stats::kRequestBoundsNs>::read(h);
  EXPECT_EQ(v.count(), 7u);
  EXPECT_EQ(v.sumNs, 4 * 9 * kSecond + 2 * 5 * kSecond + 2 * kSecond);
  EXPECT_EQ(v.buckets[stats::bucketOf(stats::kRequestBoundsNs, 9 * kSecond)], 4u);   // le=10
  EXPECT_EQ(v.buckets[stats::bucketOf(stats::kRequestBoundsNs, 5 * kSecond)], 2u);   // le=5
  EXPECT_EQ(v.buckets[stats::bucketOf(stats::kRequestBoundsNs, 2 * kSecond)], 1u);   // le=2.5
  // Empty again, a new run starts clean.
  clock.queued(20 * kSecond, 1);
  clock.sent(protocol::kAckFrameBytes, 20 * kSecond, h);
  EXPECT_EQ(stats::HistogramView<stats::kRequestBoundsNs>::read(h).count(), 8u);
}

TEST(AckClock, AClockSteppedBackCountsAsZero) {
  AckClock clock;
  AckClock::Histogram h{};
  clock.queued(10 * kSecond, 1);
  clock.sent(protocol::kAckFrameBytes, 9 * kSecond, h);
  EXPECT_EQ(h.buckets[0], 1u);
  EXPECT_EQ(h.sumNs, 0u);
}

// The worker's view of the two clocks, read together at each read, with a
// wall clock the test steps: a stamp keeps its true age across a step either
// way, and one that cannot be placed counts from its read, never as an hour.
constexpr uint64_t kHour = 3600 * kSecond;
constexpr uint64_t kWallAtBoot = 1'800'000'000 * kSecond;

TEST(ClockEpochs, AStampKeepsItsAgeAcrossAForwardStep) {
  ClockEpochs clocks;
  int64_t stepped = 0;
  EXPECT_FALSE(clocks.observe(kWallAtBoot + 100 * kSecond, 100 * kSecond, stepped));
  // NTP's slewing (2 ms over 4 s) is followed, not taken for a step.
  EXPECT_FALSE(clocks.observe(kWallAtBoot + 104 * kSecond + 2'000'000, 104 * kSecond, stepped));
  uint64_t oldStamp = kWallAtBoot + 104 * kSecond + 2'000'000 + 500'000'000;  // at 104.5 s
  // Stepped an hour forward at 104.8 s; the next read is at 105 s.
  ASSERT_TRUE(clocks.observe(kWallAtBoot + kHour + 105 * kSecond, 105 * kSecond, stepped));
  EXPECT_EQ(stepped, int64_t(kHour) - 2'000'000);
  EXPECT_EQ(clocks.toMonotonic(oldStamp, 105 * kSecond), 104 * kSecond + 500'000'000) << "the stamp from before";
  uint64_t newStamp = kWallAtBoot + kHour + 104 * kSecond + 900'000'000;  // at 104.9 s, after the step
  EXPECT_EQ(clocks.toMonotonic(newStamp, 105 * kSecond), 104 * kSecond + 900'000'000) << "the stamp from after";
}

TEST(ClockEpochs, AStampKeepsItsAgeAcrossABackwardStepOrCountsFromItsRead) {
  ClockEpochs clocks;
  int64_t stepped = 0;
  clocks.observe(kWallAtBoot + 100 * kSecond, 100 * kSecond, stepped);
  ASSERT_TRUE(clocks.observe(kWallAtBoot - kHour + 101 * kSecond, 101 * kSecond, stepped));
  EXPECT_EQ(stepped, -int64_t(kHour));
  uint64_t newStamp = kWallAtBoot - kHour + 100 * kSecond + 600'000'000;  // 100.6 s, after the step
  EXPECT_EQ(clocks.toMonotonic(newStamp, 101 * kSecond), 100 * kSecond + 600'000'000);
  // From before the step, on the old wall clock: it cannot be told from one
  // an hour later on the new one, so it counts from the read.
  uint64_t oldStamp = kWallAtBoot + 100 * kSecond + 300'000'000;
  EXPECT_EQ(clocks.toMonotonic(oldStamp, 101 * kSecond), 101 * kSecond);
}

TEST(Netstat, ReadsListenOverflowsAndDropsFromTcpExt) {
  const char* text =
      "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops TCPHPHits\n"
      "TcpExt: 0 0 17 23 9000\n"
      "IpExt: InNoRoutes ListenOverflows\n"
      "IpExt: 1 99\n";
  auto c = parseListenCounters(text);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->overflows, 17u);
  EXPECT_EQ(c->drops, 23u);
  EXPECT_FALSE(parseListenCounters("IpExt: A B\nIpExt: 1 2\n").has_value());
  EXPECT_FALSE(parseListenCounters("TcpExt: ListenOverflows\nTcpExt: 5\n").has_value()) << "drops missing";
}

TEST(Netstat, ThisHostHasThem) { EXPECT_TRUE(readListenCounters().has_value()); }

}  // namespace
}  // namespace tcpfork
