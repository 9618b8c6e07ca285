// Hostile clients against a live master, each beside a well-behaved bystander
// (the real bench) that must see full service throughout: malformed frames
// from many connections at once, 2 GiB length claims, slowloris, 10 000
// abandoned connections, pipelining clients that never read, half-closes.
// worker_test.cc covers the same classes one connection at a time against a
// bare worker; these check that they stay contained under a real master.

#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#include <cerrno>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>

#include "protocol/codec.h"
#include "test/integration/hostile_peers.h"
#include "test/integration/http_get.h"
#include "test/integration/requirements.h"
#include "test/integration/tcp_sockets.h"

namespace tcpfork::test {
namespace {

constexpr size_t kMiB = 1024 * 1024;

// The worker RSS bound while hostile traffic runs: 32 MiB. An idle worker is
// about 5.3 MiB. What a peer can make it hold is bounded per connection:
// input, one incomplete frame (a small one in a buffer of its own size) plus
// one 64 KiB read; output, output_high_water plus one read's worth of acks,
// in chains up to twice their contents; about 750 B of bookkeeping. By that
// arithmetic the heaviest cases stay well under 32 MiB: 20 never-reading
// clients at a 128 KiB high water, under 10 MiB of buffers (12 MiB RSS
// measured); 5 000 idle connections per worker, under 8 MiB (12 MiB
// measured). Anything that kept what a peer sent or claimed (2 GiB lengths,
// 160 MiB pipelined) would blow through it. Under AddressSanitizer the
// allocator's quarantine and shadow memory swamp these figures, so the memory
// bounds are only reported there.
constexpr size_t kWorkerRssBound = 32 * kMiB;
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMemoryBoundsHold = false;
#else
constexpr bool kMemoryBoundsHold = true;
#endif

void expectRssUnderBound(size_t peak) {
  if (kMemoryBoundsHold) {
    EXPECT_LT(peak, kWorkerRssBound) << "worker RSS peak " << peak;
  }
}

bool connectedBecomes(const RunningMaster& master, double count, std::chrono::milliseconds timeout) {
  return waitUntil([&] { return master.metric("tcp_server_client_connected") == count; }, timeout);
}

void report(const char* test, size_t rssPeak, const nlohmann::json& bystander) {
  std::cout << test << ": worker RSS peak " << rssPeak / 1024 << " KiB; bystander " << summary(bystander) << "\n";
}

struct Malformed {
  const char* reason;
  std::vector<std::byte> frame;
};

// With max_frame_bytes 4096: every class, and each more than one way.
std::vector<Malformed> malformedFrames() {
  return {
      {"negative_length", bytes({0x80, 0x00, 0x00, 0x20, 0x02})},
      {"negative_length", bytes({0xff, 0xff, 0xff, 0xff})},
      {"length_too_short", bytes({0x00, 0x00, 0x00, 0x04})},
      {"length_too_short", bytes({0x00, 0x00, 0x00, 0x00, 0x02})},
      {"length_too_long", bytes({0x00, 0x00, 0x10, 0x01, 0x02})},
      {"body_too_short", bytes({0x00, 0x00, 0x00, 0x0c, 0x02, '1', '2', '3', '4', '5', '6', '7'})},
      {"body_too_short", bytes({0x00, 0x00, 0x00, 0x09, 0x01, '1', '2', '3', '4'})},
      {"unknown_command", bytes({0x00, 0x00, 0x00, 0x0d, 0x07, '0', '0', '0', '0', '0', '0', '0', '1'})},
      // Acks sent to the server.
      {"unknown_command", bytes({0x00, 0x00, 0x00, 0x0e, 0x81, '0', '0', '0', '0', '0', '0', '0', '1', 0x00})},
      {"unknown_command", bytes({0x00, 0x00, 0x00, 0x0e, 0x80, '0', '0', '0', '0', '0', '0', '0', '1', 0x00})},
  };
}

// Hostile traffic comes in rounds until the bystander has run beside it for
// kHostileSpan, so that its figures mean something. Rounds start at most one
// per kRoundPeriod: every connection a client closes first leaves a TIME_WAIT
// entry holding a local port for 60 s, on a machine other tests share.
constexpr auto kHostileSpan = 2s;
constexpr auto kRoundPeriod = 50ms;

template <typename Round>
int roundsFor(Round round) {
  auto start = std::chrono::steady_clock::now();
  int rounds = 0;
  while (std::chrono::steady_clock::now() - start < kHostileSpan) {
    std::this_thread::sleep_until(start + rounds * kRoundPeriod);  // pacing, not waiting for anything
    round(rounds++);
    if (::testing::Test::HasFatalFailure()) break;
  }
  return rounds;
}

// One storm of malformed frames: every connection is owed 1 to 3 acks; half
// send the bad frame in the same write as their Submits, half only once their
// acks have arrived. Each must get exactly its acks, then EOF.
void malformedStorm(int port, std::map<std::string, double>& expected) {
  constexpr size_t kPerFrame = 16;
  auto frames = malformedFrames();
  std::vector<ScriptedPeer> peers(frames.size() * kPerFrame);
  for (size_t i = 0; i < peers.size(); ++i) {
    const Malformed& bad = frames[i / kPerFrame];
    size_t owed = 1 + i % 3;
    auto good = submits(i * 10, owed);
    if (i % 2 == 0) {
      peers[i].first = concat(good, bad.frame);
    } else {
      peers[i].first = good;
      peers[i].awaitBytes = owed * protocol::kAckFrameBytes;
      peers[i].second = bad.frame;
    }
    expected[bad.reason] += 1;
  }
  ASSERT_EQ(runPeers(peers, port, 15s), peers.size()) << "some connections were never closed";
  for (size_t i = 0; i < peers.size(); ++i) {
    ASSERT_EQ(peers[i].received, submitAcks(i * 10, 1 + i % 3))
        << "connection " << i << " (" << frames[i / kPerFrame].reason << ") did not get exactly its acks";
    ASSERT_FALSE(peers[i].reset) << "connection " << i << " was reset rather than closed after its acks";
  }
}  // the peers close here: the worker lets go of their lingering connections

TEST(Hostile, MalformedFramesFromManyConnectionsGetTheirAcksThenEof) {
  RunningMaster master(2, "max_frame_bytes: 4096\n");
  Bystander bystander(master);
  RssPeak rss(master.servingPids());

  std::map<std::string, double> expected;
  int rounds = roundsFor([&](int) { malformedStorm(master.port(), expected); });
  for (const auto& [reason, count] : expected) {
    std::string series = "tcp_server_protocol_errors_total{reason=\"" + reason + "\"}";
    EXPECT_TRUE(waitUntil([&] { return master.metric(series) == count; }, 5s))
        << series << " is " << master.metric(series) << ", want " << count;
  }
  EXPECT_TRUE(connectedBecomes(master, Bystander::kConnections, 10s)) << master.scrape();
  auto figures = bystander.stop();
  expectFullService(figures);
  expectRssUnderBound(rss.peak());
  std::cout << "malformed: " << rounds << " rounds of " << malformedFrames().size() * 16 << " connections\n";
  report("malformed", rss.peak(), figures);
}

TEST(Hostile, TwoGibClaimedLengthsAreClosedAtOnceAndNotBuffered) {
  RunningMaster master(1);
  Bystander bystander(master);
  pid_t worker = *master.servingPids().begin();
  size_t before = residentBytes(worker);
  RssPeak rss({worker});

  // Each claim is followed by 2 MiB of "body": were any of it kept, one
  // round of 16 connections would add 32 MiB to the worker.
  constexpr size_t kPerClaim = 8;
  constexpr size_t kFollowing = 2 * kMiB;
  const std::vector<std::pair<std::vector<std::byte>, const char*>> claims = {
      {bytes({0x7f, 0xff, 0xff, 0xff, 0x02}), "length_too_long"},  // 2 GiB - 1
      {bytes({0x80, 0x00, 0x00, 0x00, 0x02}), "negative_length"},  // 2 GiB: the sign bit
  };
  auto slowest = std::chrono::steady_clock::duration::zero();
  int rounds = roundsFor([&](int) {
    std::vector<ScriptedPeer> peers(claims.size() * kPerClaim);
    for (size_t i = 0; i < peers.size(); ++i) {
      peers[i].first = concat(claims[i / kPerClaim].first, std::vector<std::byte>(kFollowing, std::byte{'x'}));
    }
    ASSERT_EQ(runPeers(peers, master.port(), 10s), peers.size());
    for (const auto& peer : peers) {
      ASSERT_TRUE(peer.received.empty());
      ASSERT_FALSE(peer.reset) << "a FIN was expected, not a reset";
      slowest = std::max(slowest, peer.closedAfter);
    }
  });
  // At once: even on a loaded 2-core machine that is well under this.
  EXPECT_LT(slowest, 2s);
  for (const auto& [claim, reason] : claims) {
    std::string series = std::string("tcp_server_protocol_errors_total{reason=\"") + reason + "\"}";
    EXPECT_EQ(master.metric(series), double(kPerClaim * rounds)) << series;
  }
  size_t peak = rss.peak();
  // Growth allowed: noise from the bystander and 16 connections' bookkeeping.
  if (kMemoryBoundsHold) {
    EXPECT_LT(peak, before + 8 * kMiB) << "RSS went from " << before << " to " << peak;
  }
  EXPECT_TRUE(connectedBecomes(master, Bystander::kConnections, 10s)) << master.scrape();
  auto figures = bystander.stop();
  expectFullService(figures);
  std::cout << "2 GiB claims: " << rounds << " rounds of " << claims.size() * kPerClaim
            << " connections, each closed after at most "
            << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms; RSS before "
            << before / 1024 << " KiB\n";
  report("2 GiB claims", peak, figures);
}

TEST(Hostile, SlowlorisFramesAreCutOffAfterIdleTimeout) {
  RunningMaster master(2, "idle_timeout: 1s\n");
  Bystander bystander(master);
  RssPeak rss(master.servingPids());

  // Half trickle from a fresh connection, half after a Submit answered at once.
  constexpr size_t kTricklers = 12;
  struct Trickler {
    std::unique_ptr<TestConnection> connection;
    std::vector<std::byte> frame;
    size_t offset = 0;
    std::optional<std::chrono::steady_clock::duration> closedAfter;
  };
  std::vector<Trickler> tricklers(kTricklers);
  for (size_t i = 0; i < kTricklers; ++i) {
    auto& t = tricklers[i];
    t.connection = std::make_unique<TestConnection>(master.port(), 2s);
    setNoDelay(t.connection->fd());
    if (i % 2 == 1) {
      t.connection->send(submitFrame(i));
      ASSERT_EQ(t.connection->read(kAckBytes), submitAckFrame(i));
    }
    t.frame = submitFrame(100 + i, std::string(1000, 's'));  // 1017 bytes: 100 s at this pace
  }
  // One byte each per 100 ms: every byte would restart a plain idle timer.
  auto start = std::chrono::steady_clock::now();
  size_t open = kTricklers;
  while (open > 0 && std::chrono::steady_clock::now() - start < 10s) {
    for (auto& t : tricklers) {
      if (t.closedAfter) continue;
      int fd = t.connection->fd();
      char sink[64];
      ssize_t got = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
      bool closed = got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
      if (!closed) closed = ::send(fd, t.frame.data() + t.offset++, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1;
      if (closed) {
        t.closedAfter = std::chrono::steady_clock::now() - start;
        --open;
      }
    }
    std::this_thread::sleep_for(100ms);  // the trickle's pace
  }
  auto latest = std::chrono::steady_clock::duration::zero();
  for (size_t i = 0; i < kTricklers; ++i) {
    ASSERT_TRUE(tricklers[i].closedAfter) << "trickler " << i << " was never cut off";
    // Not before idle_timeout; within it plus a trickle step and a loaded machine's slack.
    EXPECT_GE(*tricklers[i].closedAfter, 1s) << "trickler " << i;
    EXPECT_LT(*tricklers[i].closedAfter, 3s) << "trickler " << i;
    latest = std::max(latest, *tricklers[i].closedAfter);
  }
  EXPECT_EQ(master.metric("tcp_server_idle_timeouts_total"), double(kTricklers));
  EXPECT_TRUE(master.waitForLog("a frame has trickled in for over idle_timeout", 2s)) << master.log();
  tricklers.clear();
  EXPECT_TRUE(connectedBecomes(master, Bystander::kConnections, 5s)) << master.scrape();
  auto figures = bystander.stop();
  expectFullService(figures);
  expectRssUnderBound(rss.peak());
  std::cout << "slowloris: every trickler cut off, the last after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(latest).count() << " ms\n";
  report("slowloris", rss.peak(), figures);
}

// Found by the slowloris case's bystander on a loaded machine: when a worker
// did not run for longer than idle_timeout (descheduled, stopped, busy),
// libevent reported the expired timers alone, and every connection whose
// input had arrived meanwhile was closed as idle.
TEST(Hostile, AWorkerStalledPastIdleTimeoutKeepsTheConnectionsThatSent) {
  RunningMaster master(1, "idle_timeout: 1s\n");
  Bystander bystander(master);
  TestConnection silent(master.port());  // sends nothing: idle by any measure
  ASSERT_TRUE(connectedBecomes(master, Bystander::kConnections + 1, 5s));
  pid_t worker = *master.servingPids().begin();
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  std::this_thread::sleep_for(1500ms);  // the stall itself (worker_timeout is 10 s)
  ::kill(worker, SIGCONT);
  EXPECT_TRUE(silent.closedWithin(5s));
  // Serving newcomers again while the bystander catches up.
  roundsFor([&](int i) { ASSERT_TRUE(master.roundTrip(uint64_t(i))) << "round trip " << i; });
  auto figures = bystander.stop();
  expectFullService(figures);
  EXPECT_EQ(master.metric("tcp_server_idle_timeouts_total"), 1) << "only the silent connection was idle";
  EXPECT_EQ(master.servingPids(), std::set<pid_t>{worker});
  std::cout << "stalled worker: bystander " << summary(figures) << "\n";
}

// Found by the test above in CI: after a stall between one and two
// idle_timeouts, libevent set the next deadline at the missed one plus
// idle_timeout, which came before a peer that had just been answered could
// send again, and that peer was closed as idle. The idle clock must restart
// when the late timer finds input. The waits below are the scenario itself.
TEST(Hostile, AConnectionServedAfterAStallGetsAWholeIdleTimeout) {
  using Clock = std::chrono::steady_clock;
  RunningMaster master(1, "idle_timeout: 1s\n");
  pid_t worker = *master.servingPids().begin();
  // One try; nullopt when this test process itself was descheduled so long
  // that the timing proves nothing.
  auto attempt = [&](uint64_t firstId) -> std::optional<bool> {
    TestConnection c(master.port());
    c.send(submitFrame(firstId));
    if (c.read(kAckBytes) != submitAckFrame(firstId)) return false;
    auto lastServed = Clock::now();  // the worker's idle deadline is about a second after this
    ::kill(worker, SIGSTOP);
    std::this_thread::sleep_until(lastServed + 900ms);
    c.send(submitFrame(firstId + 1));  // waits in the socket for the stopped worker
    std::this_thread::sleep_until(lastServed + 1500ms);
    ::kill(worker, SIGCONT);
    if (c.read(kAckBytes) != submitAckFrame(firstId + 1)) return false;
    auto answered = Clock::now();
    // Past the missed deadline plus idle_timeout, well inside a second from now.
    std::this_thread::sleep_until(std::max(lastServed + 2200ms, answered + 200ms));
    if (Clock::now() - answered > 800ms) return std::nullopt;
    c.send(submitFrame(firstId + 2));
    return c.read(kAckBytes) == submitAckFrame(firstId + 2);
  };
  std::optional<bool> served;
  double idleBefore = 0;  // a discarded round may rightly have ended in an idle timeout
  for (uint64_t round = 0; round < 3 && !served; ++round) {
    idleBefore = master.metric("tcp_server_idle_timeouts_total");
    served = attempt(round * 3);
  }
  ASSERT_TRUE(served.has_value()) << "descheduled in every round";
  EXPECT_TRUE(*served) << "closed as idle less than idle_timeout after it was served\n" << master.log();
  EXPECT_EQ(master.metric("tcp_server_idle_timeouts_total"), idleBefore);
}

TEST(Hostile, TenThousandAbandonedConnectionsLeaveServiceIntact) {
  constexpr size_t kAbandoned = 10000;
  // This process holds every client end; each worker (which inherits the
  // limit through the master) about half the server ends.
  DescriptorLimit limit;
  TCPFORK_REQUIRE(limit.raiseFor(kAbandoned + 512), "needs a descriptor hard limit of " << kAbandoned + 512
                      << " (ulimit -Hn); it is " << limit.hard() << " and this process may not raise it");
  RunningMaster master(2, "max_connections: 11000\n");
  std::set<pid_t> workers = master.servingPids();
  Bystander bystander(master);
  // VmData: heap and anonymous mappings, whether or not resident yet.
  std::map<pid_t, size_t> dataBefore;
  for (pid_t pid : workers) dataBefore[pid] = statusBytes(pid, "VmData");
  RssPeak rss(workers);

  // Four kinds, all left open: silent; half a Submit; a Submit whose ack is
  // never read; half a length.
  auto half = submitFrame(0);
  half.resize(half.size() / 2);
  auto whole = submitFrame(1);
  auto halfLength = bytes({0x00, 0x00});
  std::vector<UniqueFd> abandoned;
  abandoned.reserve(kAbandoned);
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < kAbandoned; ++i) {
    try {
      abandoned.push_back(connectLoopback(master.port()));
    } catch (const std::system_error& e) {
      if (e.code().value() != EADDRNOTAVAIL) throw;
      // Not the server's doing: connect() found no free local port. A plain
      // skip, tolerated in CI too: the ports are shared with every test that
      // runs beside this one (ctest -j), and nothing of CI's set-up keeps
      // their TIME_WAIT entries from using up the range.
      GTEST_SKIP() << "only " << i << " connections could be opened: the machine is out of local ports ("
                   << e.what() << "), usually TIME_WAIT entries left by other tests (ss -tan state time-wait)";
    }
    const std::vector<std::byte>* what = i % 4 == 1 ? &half : i % 4 == 2 ? &whole : i % 4 == 3 ? &halfLength : nullptr;
    if (what) {
      ASSERT_EQ(::send(abandoned.back().get(), what->data(), what->size(), MSG_NOSIGNAL), ssize_t(what->size()));
    }
  }
  auto connectTime = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(connectedBecomes(master, kAbandoned + Bystander::kConnections, 30s)) << master.scrape();

  // Everything still up and serving newcomers.
  EXPECT_TRUE(master.process().running());
  EXPECT_EQ(master.servingPids(), workers);
  EXPECT_EQ(httpGet(master.metricsPort(), "/healthz").status, 200);
  // Held for as long as the other cases run hostile traffic, while newcomers
  // keep being served.
  int trips = roundsFor([&](int i) { ASSERT_TRUE(master.roundTrip(uint64_t(i))) << "round trip " << i; });
  std::string m = master.scrape();
  EXPECT_EQ(metricValue(m, "tcp_server_connections_rejected_total"), 0);
  EXPECT_EQ(metricValue(m, "tcp_server_accept_errors_total"), 0);
  size_t holdingPeak = rss.peak();
  // What the workers allocated for them, resident or not: about 750 B of
  // bookkeeping per connection, and a partial frame's few bytes. (A partial
  // frame used to pin the whole 64 KiB read chunk it arrived in, 128 KiB
  // once libevent rounded it up: 5 000 such connections took 640 MiB of
  // address space, resident wherever the heap had been used before.)
  size_t dataGrowth = 0;
  for (pid_t pid : workers) dataGrowth = std::max(dataGrowth, statusBytes(pid, "VmData") - dataBefore[pid]);
  if (kMemoryBoundsHold) {
    EXPECT_LT(dataGrowth, 32 * kMiB) << "a worker's data segment grew by " << dataGrowth;
  }

  // Most go by reset (SO_LINGER 0), one in ten by FIN (few: each leaves a
  // TIME_WAIT entry behind).
  for (size_t i = 0; i < abandoned.size(); ++i) {
    if (i % 10 == 0) continue;
    linger reset{1, 0};
    ::setsockopt(abandoned[i].get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  }
  abandoned.clear();
  EXPECT_TRUE(connectedBecomes(master, Bystander::kConnections, 20s)) << master.scrape();
  auto figures = bystander.stop();
  expectFullService(figures);
  EXPECT_TRUE(connectedBecomes(master, 0, 5s)) << master.scrape();
  EXPECT_TRUE(master.process().running());
  expectRssUnderBound(holdingPeak);
  std::cout << "abandoned: " << kAbandoned << " connections opened in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(connectTime).count()
            << " ms, held through " << trips << " round trips by newcomers; largest growth of a worker's data segment "
            << dataGrowth / 1024 << " KiB\n";
  report("abandoned", holdingPeak, figures);
}

TEST(Hostile, PipeliningClientsThatNeverReadAreHeldAtTheHighWaterMark) {
  constexpr size_t kHighWater = 128 * 1024;
  RunningMaster master(1, "output_high_water: " + std::to_string(kHighWater) + "\n");
  Bystander bystander(master);
  RssPeak rss(master.servingPids());

  // Empty Submits (13 bytes, 14-byte acks), as much as 8 MiB per client:
  // more than the kernel's buffers both ways can absorb, so each worker-side
  // output buffer reaches the high-water mark.
  constexpr size_t kHogs = 20;
  constexpr size_t kHogBytes = 8 * kMiB;
  const auto chunk = submits(0, 4096, "");
  std::vector<UniqueFd> hogs;
  std::vector<size_t> written(kHogs, 0);
  for (size_t i = 0; i < kHogs; ++i) hogs.push_back(connectLoopback(master.port(), 64 * 1024));
  auto lastProgress = std::chrono::steady_clock::now();
  auto deadline = lastProgress + 30s;
  while (std::chrono::steady_clock::now() - lastProgress < 500ms && std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < kHogs; ++i) {
      if (written[i] >= kHogBytes) continue;
      size_t at = written[i] % chunk.size();
      ssize_t n = ::send(hogs[i].get(), chunk.data() + at, std::min(chunk.size() - at, kHogBytes - written[i]),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        written[i] += size_t(n);
        lastProgress = std::chrono::steady_clock::now();
      }
    }
  }

  // Once nothing moves, account for every byte per client: what it wrote is
  // in its own send queue, the server's receive queue, or was read by the
  // worker; each request read became an ack now in the worker's output
  // buffer, the server's send queue or the client's receive queue.
  struct Queues {
    uint64_t clientOut, clientIn, serverTx, serverRx;
    bool operator==(const Queues&) const = default;
  };
  auto sample = [&] {
    std::vector<Queues> all;
    for (const auto& hog : hogs) {
      int out = 0, in = 0;
      ::ioctl(hog.get(), SIOCOUTQ, &out);
      ::ioctl(hog.get(), SIOCINQ, &in);
      auto server = serverEnd(master.port(), localAddress(hog.get()).port());
      all.push_back({uint64_t(out), uint64_t(in), server ? server->txQueue : ~0ull, server ? server->rxQueue : ~0ull});
    }
    return all;
  };
  auto previous = sample();
  bool steady = false;
  for (int i = 0; i < 50 && !steady; ++i) {
    std::this_thread::sleep_for(200ms);  // the window over which nothing may move
    auto now = sample();
    steady = now == previous;
    previous = now;
  }
  ASSERT_TRUE(steady) << "the queues never settled";
  constexpr uint64_t kOneReadOfAcks = 64 * 1024 / protocol::kMinRequestFrameBytes * protocol::kAckFrameBytes;
  uint64_t maxPending = 0;
  for (size_t i = 0; i < kHogs; ++i) {
    const Queues& q = previous[i];
    ASSERT_NE(q.serverTx, ~0ull) << "hog " << i << " not found in /proc/net/tcp";
    uint64_t readByWorker = written[i] - q.clientOut - q.serverRx;
    uint64_t acks = readByWorker / protocol::kMinRequestFrameBytes * protocol::kAckFrameBytes;
    uint64_t pending = acks - q.serverTx - q.clientIn;
    maxPending = std::max(maxPending, pending);
    EXPECT_GT(q.serverRx, 0u) << "hog " << i << ": the worker read everything, so it never pushed back";
    // Reading stops once the output reaches the mark (checked after every
    // 64 KiB read) and resumes only below half of it.
    EXPECT_GE(pending, kHighWater / 2) << "hog " << i;
    EXPECT_LE(pending, kHighWater + kOneReadOfAcks) << "hog " << i;
    std::cout << "hog " << i << ": wrote " << written[i] << ", its send queue " << q.clientOut
              << ", server receive queue " << q.serverRx << ", worker read " << readByWorker << ", acks in worker "
              << pending << ", server send queue " << q.serverTx << ", its receive queue " << q.clientIn << "\n";
  }
  hogs.clear();
  EXPECT_TRUE(connectedBecomes(master, Bystander::kConnections, 10s)) << master.scrape();
  auto figures = bystander.stop();
  expectFullService(figures);
  expectRssUnderBound(rss.peak());
  std::cout << "never-reading: largest worker output buffer " << maxPending << " bytes (high water " << kHighWater
            << ")\n";
  report("never-reading", rss.peak(), figures);
}

TEST(Hostile, HalfClosedConnectionsGetEveryAckThenEof) {
  RunningMaster master(2);
  Bystander bystander(master);
  RssPeak rss(master.servingPids());

  // From one request to 20 000 (more acks than output_high_water holds, so
  // the worker pauses and resumes reading a half-closed connection); every
  // other one also leaves half a frame before its FIN, which is never answered.
  const size_t counts[] = {1, 10, 100, 1000, 20000};
  constexpr size_t kPeers = 20;
  auto halfFrame = submitFrame(999999);
  halfFrame.resize(halfFrame.size() / 2);
  std::vector<std::vector<std::byte>> requests, acks;
  for (size_t n : counts) {
    requests.push_back(submits(0, n));
    acks.push_back(submitAcks(0, n));
  }
  int rounds = roundsFor([&](int) {
    std::vector<ScriptedPeer> peers(kPeers);
    for (size_t i = 0; i < kPeers; ++i) {
      peers[i].first = requests[i % std::size(counts)];
      if (i % 2 == 1) peers[i].first = concat(std::move(peers[i].first), halfFrame);
      peers[i].shutWrite = true;
    }
    ASSERT_EQ(runPeers(peers, master.port(), 30s), kPeers) << "some half-closed connections were never closed";
    for (size_t i = 0; i < kPeers; ++i) {
      ASSERT_EQ(peers[i].received.size(), acks[i % std::size(counts)].size()) << "connection " << i;
      ASSERT_TRUE(peers[i].received == acks[i % std::size(counts)]) << "connection " << i << ": wrong acks";
      ASSERT_FALSE(peers[i].reset) << "connection " << i << " was reset, not closed";
    }
  });
  std::cout << "half-closed: " << rounds << " rounds of " << kPeers << " connections\n";
  EXPECT_TRUE(connectedBecomes(master, Bystander::kConnections, 10s)) << master.scrape();
  auto figures = bystander.stop();
  expectFullService(figures);
  expectRssUnderBound(rss.peak());
  report("half-closed", rss.peak(), figures);
}

}  // namespace
}  // namespace tcpfork::test
