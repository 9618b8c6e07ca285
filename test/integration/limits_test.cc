// Worker limits against a live master: the memory budget for what peers make
// a worker buffer (max_buffered_bytes), beside a bystander that must see full
// service throughout.

#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <signal.h>
#include <sstream>

#include "base/socket.h"
#include "protocol/codec.h"
#include "test/integration/hostile_peers.h"
#include "test/integration/http_get.h"
#include "test/integration/running_worker.h"
#include "test/integration/tcp_sockets.h"
#include "test/integration/test_module.h"

namespace tcpfork::test {
namespace {

using namespace std::chrono_literals;

constexpr size_t kMiB = 1024 * 1024;

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer's quarantine keeps freed blocks (256 MiB of them by
// default) and its shadow adds an eighth: RSS there says nothing of ours.
constexpr bool kRssIsOurs = false;
#else
constexpr bool kRssIsOurs = true;
#endif

// Clients that each send all but the last byte of a `frameBytes` Submit and
// wait ("parking" it), driven by one poll loop.
class ParkedFrames {
 public:
  ParkedFrames(int port, size_t count, size_t frameBytes) : port_(port), frame_(frameBytes, std::byte{'x'}) {
    // A Submit whose totalLength is the whole frame: its header, then 'x's.
    std::vector<std::byte> header(protocol::kMinRequestFrameBytes);
    protocol::encodeRequest(protocol::Command::kSubmit, protocol::formatId(1), {}, header.data());
    std::copy(header.begin(), header.end(), frame_.begin());
    for (size_t i = 0; i < protocol::kLengthBytes; ++i) {
      frame_[i] = std::byte((frameBytes >> (8 * (protocol::kLengthBytes - 1 - i))) & 0xff);
    }
    parkers_.resize(count);
    for (auto& p : parkers_) {
      p.fd = connectLoopback(port);
      p.port = localAddress(p.fd.get()).port();
      setNonBlocking(p.fd.get());
    }
  }

  // Sends until each parker is closed by the server, or has handed the
  // kernel all its bytes and the worker has read them (its send queue and
  // the server's receive queue empty). Fails if that takes over `timeout`,
  // or if the server answered a frame that is not whole.
  ::testing::AssertionResult park(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::vector<pollfd> polls;
      std::vector<Parker*> polled;
      for (auto& p : parkers_) {
        if (p.closed) continue;
        polls.push_back({p.fd.get(), short(POLLIN | (p.sent < parkBytes() ? POLLOUT : 0)), 0});
        polled.push_back(&p);
      }
      ::poll(polls.data(), polls.size(), 50);
      for (size_t i = 0; i < polls.size(); ++i) {
        Parker& p = *polled[i];
        if (polls[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          if (!stillOpen(p)) continue;
          if (p.answered) return ::testing::AssertionFailure() << "a parked frame was answered: it is not whole";
        }
        if ((polls[i].revents & POLLOUT) && p.sent < parkBytes()) {
          ssize_t n = ::send(p.fd.get(), frame_.data() + p.sent, parkBytes() - p.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
          if (n > 0) {
            p.sent += size_t(n);
          } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            p.closed = true;
          }
        }
      }
      if (settled()) return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "the parkers did not settle within " << timeout.count() << " ms";
  }

  // Waits (bounded) until the server has closed every parker.
  bool allClosedWithin(std::chrono::milliseconds timeout) {
    return waitUntil(
        [&] {
          for (auto& p : parkers_) {
            if (!p.closed) stillOpen(p);
          }
          return open() == 0;
        },
        timeout);
  }

  void closeAll() { parkers_.clear(); }

  size_t open() const {
    size_t n = 0;
    for (const auto& p : parkers_) n += p.closed ? 0 : 1;
    return n;
  }

  // Sends each open parker its last byte and checks its ack.
  ::testing::AssertionResult finishOpenFrames() {
    std::vector<std::byte> ack(protocol::kAckFrameBytes);
    for (auto& p : parkers_) {
      if (p.closed) continue;
      ::fcntl(p.fd.get(), F_SETFL, ::fcntl(p.fd.get(), F_GETFL) & ~O_NONBLOCK);
      timeval bound{10, 0};  // a bound, not a wait: the ack is owed at once
      ::setsockopt(p.fd.get(), SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
      if (::send(p.fd.get(), frame_.data() + parkBytes(), 1, MSG_NOSIGNAL) != 1) {
        return ::testing::AssertionFailure() << "send: " << std::strerror(errno);
      }
      if (::recv(p.fd.get(), ack.data(), ack.size(), MSG_WAITALL) != ssize_t(ack.size())) {
        return ::testing::AssertionFailure() << "a parked frame got no ack once whole: " << std::strerror(errno);
      }
      auto decoded = protocol::decodeAck(ack, protocol::kAckFrameBytes);
      if (decoded.status != protocol::DecodeStatus::kFrame || decoded.message.result != protocol::kResultOk) {
        return ::testing::AssertionFailure() << "a wrong ack for a parked frame";
      }
    }
    return ::testing::AssertionSuccess();
  }

 private:
  struct Parker {
    UniqueFd fd;
    int port = 0;
    size_t sent = 0;
    bool closed = false;    // the server closed it (reset or EOF)
    bool answered = false;  // bytes came back
  };

  size_t parkBytes() const { return frame_.size() - 1; }

  // Reads what is there without waiting: false once the server has closed it.
  bool stillOpen(Parker& p) {
    std::byte sink[64];
    ssize_t n = ::recv(p.fd.get(), sink, sizeof sink, MSG_DONTWAIT);
    if (n > 0) p.answered = true;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) p.closed = true;
    return !p.closed;
  }

  bool settled() const {
    std::map<int, uint64_t> received;  // by the client's port, read once
    for (const TcpSocket& s : tcpSocketsOnPort(port_)) received[s.remotePort] = s.rxQueue;
    for (const auto& p : parkers_) {
      if (p.closed) continue;
      if (p.sent < parkBytes()) return false;
      int unsent = 0;
      if (::ioctl(p.fd.get(), SIOCOUTQ, &unsent) != 0 || unsent != 0) return false;
      auto it = received.find(p.port);
      if (it == received.end() || it->second != 0) return false;
    }
    return true;
  }

  int port_;
  std::vector<std::byte> frame_;
  std::vector<Parker> parkers_;
};

double recycles(const RunningMaster& master, const std::string& reason) {
  return master.metric("tcp_server_worker_recycles_total{reason=\"" + reason + "\"}");
}

// 500 clients each send all but the last byte of a 1 MiB frame (the default
// max_frame_bytes) and wait: 500 MiB that, unbounded, one worker would hold.
// With the default 64 MiB budget the worker closes the connections holding
// the most, so at most 64 parked frames survive and its RSS stays within the
// budget plus a slack of 20 MiB: the idle worker (about 10 MiB with tcmalloc,
// 6 MiB on glibc), one read batch (256 KiB) over the mark before the round
// that sheds, and what the allocator keeps of freed frames. Measured: peaks
// of 69-78 MiB with tcmalloc returning freed pages at once from half the
// budget on (BufferBudget's pressure; 84-93 MiB with tcmalloc keeping them;
// 60-70 MiB on glibc's malloc, where large buffers get mappings of their
// own; 80-84 MiB before they did; 160 MiB when a shedding round waited for an
// event of its own). The survivors are untouched: sent their last byte, each
// gets its ack.
TEST(Limits, ParkedLargeFramesAreShedBiggestFirstWithinTheBudget) {
  constexpr size_t kParkers = 500;
  constexpr size_t kBudget = 64 * kMiB;
  constexpr size_t kSlack = 20 * kMiB;
  constexpr size_t kFrameBytes = kMiB;  // max_frame_bytes, the default
  RunningMaster master(1, "max_buffered_bytes: 64MiB\n");
  Bystander bystander(master);
  RssPeak rss(master.servingPids());

  ParkedFrames parked(master.port(), kParkers, kFrameBytes);
  ASSERT_TRUE(parked.park(90s));

  size_t survivors = parked.open();
  double shed = master.metric("tcp_server_connections_shed_total{reason=\"memory\"}");
  size_t peak = rss.peak();
  std::cout << "parked frames: " << kParkers << " parkers, " << kParkers - survivors << " shed (metric " << shed
            << "), " << survivors << " parked at the end; worker RSS peak " << peak / 1024 << " KiB (budget "
            << kBudget / 1024 << " KiB)\n";
  // Each survivor holds one whole frame's buffer, so the budget holds at
  // most kBudget / kFrameBytes of them; a round sheds down to 3/4 of it.
  EXPECT_LE(survivors, kBudget / kFrameBytes);
  EXPECT_GE(survivors, kBudget / kFrameBytes / 2);
  EXPECT_EQ(shed, double(kParkers - survivors));
  EXPECT_TRUE(master.waitForLog("max_buffered_bytes (67108864 bytes) passed", 10s)) << master.log();
  if (kRssIsOurs) {
    EXPECT_LT(peak, kBudget + kSlack) << "worker RSS peak " << peak;
  }
  // The survivors were left alone: the last byte completes each frame.
  EXPECT_TRUE(parked.finishOpenFrames());
  auto figures = bystander.stop();
  expectFullService(figures);
  std::cout << "parked frames: bystander " << summary(figures) << "\n";
}

// Requests a module holds count against max_buffered_bytes at what they
// cost (about 100 bytes each with their held ack and table entry, where 14
// were counted), and past the budget the worker stops reading and accepting
// instead of closing connections, which frees nothing (their tokens live
// until the module completes them) while their clients reconnect and send
// more. A module that never completes, 400 connections x 2,000 in flight and
// an 8 MiB budget: before, the worker grew 6 -> 316 MiB in 4 s; now it stays
// within the budget plus 16 MiB of slack (the idle worker, about 6 MiB, the
// module's own queue, about 24 bytes a request, and one read batch), and
// the excess waits in the kernel's socket buffers.
TEST(Limits, RequestsPendingInTheModuleStopReadingAndAcceptingAtTheBudget) {
  constexpr size_t kBudget = 8 * kMiB;
  constexpr size_t kSlack = 16 * kMiB;
  RunningMaster master(1, "max_buffered_bytes: 8MiB\n" + testModuleYaml("{defer_every: 1, hold: true}"));
  RssPeak rss(master.servingPids());
  BackgroundClient bench({"--addr", addr(master.port()), "-c", "400", "-w", "2000", "-d", "6", "--drain", "1", "-q"});
  ToolRun run = bench.finish(90s);
  EXPECT_TRUE(master.waitForLog("reading and accepting stop until they complete", 1s)) << master.log();
  size_t peak = rss.peak();
  double pending = master.metric("tcp_server_req_recv_total");
  std::cout << "pending budget: worker RSS peak " << peak / 1024 << " KiB with " << pending
            << " requests pending (budget " << kBudget / 1024 << " KiB)\n";
  if (kRssIsOurs) {
    EXPECT_LT(peak, kBudget + kSlack) << "worker RSS peak " << peak;
  }
  // Pending, not shed: no connection was closed for memory.
  EXPECT_EQ(master.metric("tcp_server_connections_shed_total{reason=\"memory\"}"), 0) << master.scrape();
  EXPECT_EQ(run.report["closed_by_server"], 0) << run.output;
  // It held what the budget allows at 100 to 200 bytes a pending request.
  EXPECT_GT(pending, double(kBudget) / 200);
  EXPECT_LT(pending, double(kBudget) / 100);
}

// A bench run across recycles loses nothing, as across a reload; and
// recycling is not a crash: no restart is counted.
void expectNothingLost(RunningMaster& master, BackgroundClient& bench) {
  bench.interrupt();
  ToolRun run = bench.finish();
  EXPECT_EQ(master.metric("tcp_server_worker_restarts_total"), 0) << master.log();
  stopAndExpectNothingLost(master, run);
  std::cout << "recycling: " << run.report["acked"] << " acked, " << run.report["closed_by_server"]
            << " connections closed by draining workers, 0 connects failed\n";
}

// gunicorn's max_requests: each worker draws its limit in [max_requests,
// max_requests + jitter]; past it a successor starts on the same sockets and
// the old worker drains only once the successor serves.
TEST(Limits, MaxRequestsRecyclesUnderLoadWithNoFailedConnectOrLostAck) {
  RunningMaster master(2, "max_requests: 100000\nmax_requests_jitter: 20000\n");
  BackgroundClient bench({"--addr", addr(master.port()), "-c", "8", "-w", "64", "-d", "120", "--drain", "3", "-q"});
  ASSERT_TRUE(waitUntil([&] { return recycles(master, "requests") >= 4; }, 60s)) << master.log();
  EXPECT_TRUE(master.waitForLog("a successor starts on its sockets, then it drains", 1s)) << master.log();
  expectNothingLost(master, bench);
}

TEST(Limits, MaxLifetimeRecyclesWithItsJitterUnderRequestResponseLoad) {
  RunningMaster master(1, "max_lifetime: 1s\nmax_lifetime_jitter: 500ms\n");
  BackgroundClient bench({"--addr", addr(master.port()), "-c", "4", "-w", "1", "-d", "120", "--drain", "3", "-q"});
  ASSERT_TRUE(waitUntil([&] { return recycles(master, "lifetime") >= 2; }, 30s)) << master.log();
  EXPECT_TRUE(master.waitForLog("reason lifetime", 1s)) << master.log();
  expectNothingLost(master, bench);
}

// A limit 20 MiB above what a fresh worker holds after one request, in MiB,
// measured on a master of its own (under AddressSanitizer a worker starts
// far larger than the plain build's 6 MiB).
uint64_t rssLimitAboveAFreshWorker() {
  RunningMaster probe(1);
  EXPECT_TRUE(probe.roundTrip(1));
  auto pids = probe.servingPids();
  EXPECT_EQ(pids.size(), 1u);
  uint64_t rss = pids.empty() ? 0 : residentBytes(*pids.begin());
  EXPECT_GT(rss, 0u);
  return rss / kMiB + 20;
}

// The worker's memory made to grow for real: a master with `key` set
// 20 MiB above a fresh worker's RSS, and 40 parked 1 MiB frames against its
// one worker. Once it is replaced for `reason`, `check` runs (with the limit
// in MiB); then its parked connections must be closed, a worker must serve,
// the replacement must not be replaced in turn (it is back to its start-up
// size), and no restart is counted.
void growPastTheLimit(const std::string& key, const std::string& reason,
                      const std::function<void(RunningMaster&, uint64_t)>& check) {
  uint64_t limitMiB = rssLimitAboveAFreshWorker();
  RunningMaster master(1, key + ": " + std::to_string(limitMiB) + "MiB\n");
  ASSERT_TRUE(master.roundTrip(1));
  ParkedFrames parked(master.port(), 40, kMiB);
  ASSERT_TRUE(parked.park(60s));
  ASSERT_TRUE(waitUntil([&] { return recycles(master, reason) >= 1; }, 10s)) << master.log();
  check(master, limitMiB);
  EXPECT_TRUE(parked.allClosedWithin(15s)) << parked.open() << " parked connections still open\n" << master.log();
  parked.closeAll();  // a draining worker lingers until its peers close (or 5 s)
  EXPECT_TRUE(master.waitServing(1, 10s));
  EXPECT_TRUE(master.roundTrip(2));
  EXPECT_EQ(recycles(master, reason), 1) << master.log();
  EXPECT_EQ(master.metric("tcp_server_worker_restarts_total"), 0);
}

// Where the worker says it wrote its heap profile, or "" (a sanitizer build
// says why it writes none).
std::string heapProfileWritten(RunningMaster& master) {
#ifdef TCPFORK_SYSTEM_ALLOCATOR
  EXPECT_TRUE(master.waitForLog("SIGURG: no heap profile: this worker allocates with the system allocator", 5s))
      << master.log();
  return "";
#else
  const std::string said = "SIGURG: heap profile written to ";
  EXPECT_TRUE(master.waitForLog(said, 5s)) << master.log();
  std::string log = master.log();
  size_t at = log.find(said);
  if (at == std::string::npos) return "";
  std::string path = log.substr(at + said.size(), log.find('\n', at) - at - said.size());
  EXPECT_TRUE(std::filesystem::exists(path)) << path;
  EXPECT_TRUE(readFile(path).starts_with("heap profile: ")) << path;
  return path;
#endif
}

// Gracefully: its drain closes the parked connections. It writes its heap
// profile first (the parked frames' buffers are in it).
TEST(Limits, MaxRssRecyclesAWorkerWhoseMemoryGrew) {
  growPastTheLimit("max_rss", "rss", [](RunningMaster& master, uint64_t) {
    EXPECT_TRUE(master.waitForLog("reason rss)", 1s)) << master.log();
    heapProfileWritten(master);
  });
}

// hang_dump_grace after asking for its heap profile: its connections are reset.
TEST(Limits, MaxRssHardKillsAWorkerWhoseMemoryGrew) {
  growPastTheLimit("max_rss_hard", "rss_hard", [](RunningMaster& master, uint64_t limitMiB) {
    std::string killing = "past max_rss_hard (" + std::to_string(limitMiB) + " MiB); killing it";
    EXPECT_TRUE(master.waitForLog(killing, 1s)) << master.log();
    std::string path = heapProfileWritten(master);
    if (!path.empty()) {
      std::string log = master.log();
      EXPECT_LT(log.find("heap profile written to " + path), log.find(killing)) << "written before the kill:\n" << log;
    }
  });
}

// The time of a log line, in ms since midnight ("2026-12-03 19:14:03.497 ...").
int64_t logMs(const std::string& log, size_t at) {
  size_t line = log.rfind('\n', at);
  line = line == std::string::npos ? 0 : line + 1;
  int h = 0, m = 0, sec = 0, ms = 0;
  if (std::sscanf(log.c_str() + line, "%*d-%*d-%*d %d:%d:%d.%d", &h, &m, &sec, &ms) != 4) return -1;
  return ((h * 60 + m) * 60 + sec) * 1000 + ms;
}

// A handler that never returns: the heartbeat stops, and after worker_timeout
// the master asks the worker for its stacks, then kills it hang_dump_grace
// later. The log names the spinning frame, its caller in the module and the
// worker's frames below, all before the kill; then the index serves again.
TEST(Limits, AHungWorkerWritesItsStacksBeforeItIsKilled) {
  RunningMaster master(1, "worker_timeout: 1s\nhang_dump_grace: 1s\n" + testModuleYaml("{spin_on: spin}"));
  TestConnection conn(master.port(), 10s);
  conn.send(submitFrame(1, "spin"));
  ASSERT_TRUE(master.waitForLog("wrote its stacks to the log above; killing it", 20s)) << master.log();
  ASSERT_TRUE(master.waitServing(1, 10s)) << master.log();
  EXPECT_TRUE(master.roundTrip(2));
  std::string log = master.log();
  size_t asked = log.find("asking it for its stacks (signal SIGRTMIN), killing it in 1.0s");
  size_t dump = log.find("stack dump (SIGRTMIN");
  size_t spinning = log.find("#0 spin_forever (test_handler.c:");
  size_t caller = log.find("#1 test_handle (test_handler.c:");
  size_t loop = log.find("tcpfork::Worker::run()");
  size_t killed = log.find("wrote its stacks to the log above; killing it");
  ASSERT_NE(asked, std::string::npos) << log;
  ASSERT_NE(spinning, std::string::npos) << log;
  ASSERT_NE(caller, std::string::npos) << log;
  ASSERT_NE(loop, std::string::npos) << log;
  EXPECT_LT(asked, dump);
  EXPECT_LT(dump, spinning);
  EXPECT_LT(spinning, killed);
  EXPECT_NE(log.find("test_handler.so", spinning), std::string::npos) << "the module's file is named";
  size_t written = log.find("error: thread ", dump);  // the line whose frames follow it
  std::cout << "hang: stack dump asked to written " << logMs(log, written) - logMs(log, asked) << " ms, asked to killed "
            << logMs(log, killed) - logMs(log, asked) << " ms\n";
}

// A stopped worker cannot write its stacks: it is killed once the grace is
// over, and the log says it wrote none.
TEST(Limits, AStoppedWorkerIsKilledAfterTheGraceWithNoStacks) {
  RunningMaster master(1, "worker_timeout: 1s\nhang_dump_grace: 500ms\n");
  ASSERT_TRUE(master.waitServing(1, 5s));
  pid_t victim = *master.servingPids().begin();
  ::kill(victim, SIGSTOP);
  ASSERT_TRUE(master.waitForLog("wrote no stack dump within hang_dump_grace", 20s)) << master.log();
  EXPECT_TRUE(waitUntil([&] { return ::kill(victim, 0) != 0; }, 5s)) << "the master reaps what it kills";
  EXPECT_EQ(master.log().find("stack dump (SIGRTMIN"), std::string::npos) << master.log();
  EXPECT_TRUE(master.waitServing(1, 10s));
  EXPECT_TRUE(master.roundTrip(1));
}

// A line of /proc/PID/FILE that starts with `key`, without the key ("" when absent).
std::string procLine(pid_t pid, const std::string& file, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  }
  return "";
}

// cpu_affinity: auto puts worker i on the i-th CPU the master may use, and
// rlimit_nofile is each worker's descriptor limit, soft and hard.
TEST(Limits, WorkersArePinnedAndGetTheirDescriptorLimit) {
  RunningMaster master(2, "cpu_affinity: auto\nrlimit_nofile: 12000\nmax_connections: 5000\n");
  ASSERT_TRUE(master.waitServing(2, 5s));
  cpu_set_t usable;
  ASSERT_EQ(sched_getaffinity(0, sizeof usable, &usable), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &usable)) cpus.push_back(cpu);
  }
  HttpResponse status = httpGet(master.metricsPort(), "/status");
  ASSERT_EQ(status.status, 200);
  size_t checked = 0;
  nlohmann::json json = nlohmann::json::parse(status.body);
  for (const auto& w : json["workers"]) {
    auto pid = w["pid"].get<pid_t>();
    auto index = w["index"].get<size_t>();
    std::string allowed = procLine(pid, "status", "Cpus_allowed_list:");
    allowed.erase(0, allowed.find_first_not_of(" \t"));
    EXPECT_EQ(allowed, std::to_string(cpus[index % cpus.size()])) << "worker " << index;
    std::string limits = procLine(pid, "limits", "Max open files");
    EXPECT_NE(limits.find("12000                12000"), std::string::npos) << limits;
    ++checked;
  }
  EXPECT_EQ(checked, 2u) << status.body;
  EXPECT_TRUE(master.waitForLog("on CPU " + std::to_string(cpus[1 % cpus.size()]), 1s)) << master.log();
  EXPECT_TRUE(master.roundTrip(1));
}

// The buffer budget closes its gate on deferred requests, then opens it as
// they complete, while a connection that never deferred one stays open
// beside them (it had no held acks at all): the worker must serve on. It
// crashed there once, reading through the held acks that connection never had.
TEST(Limits, TheBudgetGateOpensBesideAConnectionThatNeverDeferred) {
  RunningWorker worker({"--max-buffered-bytes", "300000", "--handler-module", testModulePath(), "--handler-config",
                        R"({"defer_every": 1, "thread": true, "delay_ms": 1500})"});
  TestConnection idle(worker.port());
  ToolRun run = runClient({"bench", "--addr", addr(worker.port()), "-c", "50", "-w", "500", "-d", "3", "--drain", "10",
                           "-q"},
                          true);
  ASSERT_TRUE(worker.process().running()) << worker.log();
  EXPECT_EQ(run.exitCode, 0) << run.output << worker.log();
  EXPECT_EQ(run.report.value("errors_total", -1), 0) << run.output;
  EXPECT_GT(run.report.value("acked", 0), 0) << run.output;
  EXPECT_NE(worker.log().find("reading and accepting again"), std::string::npos)
      << "the gate never closed and opened:\n" << worker.log();
}

}  // namespace
}  // namespace tcpfork::test
