// Scale-out behind a real HAProxy (Debian package `haproxy`): two tcpfork
// masters behind the shipped deploy/haproxy/haproxy.cfg, load through the
// proxy, one instance killed, HAProxy's protocol health check taking it out.
// Skipped where the package is absent; `make test` installs it.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <regex>
#include <optional>
#include <set>
#include <thread>

#include "test/integration/http_get.h"
#include "test/integration/requirements.h"
#include "test/integration/running_haproxy.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

std::string shippedConfig() { return readFile(std::string(TCPFORK_SOURCE_DIR) + "/deploy/haproxy/haproxy.cfg"); }

std::vector<std::byte> fromHex(const std::string& hex) {
  std::vector<std::byte> bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes.push_back(std::byte(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

// Dead: no such process, or a zombie waiting for its new parent to reap it.
bool gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

// The request counters of one instance, from its /metrics.
struct Counters {
  double requests = -1;
  double acks = -1;
  double bytesIn = -1;
  bool operator==(const Counters&) const = default;
};

Counters scrapeCounters(const RunningMaster& master) {
  std::string text = master.scrape();
  return {metricValue(text, "tcp_server_req_recv_total"), metricValue(text, "tcp_server_rsp_send_total"),
          metricValue(text, "tcp_server_bytes_received_total")};
}

// Counters at rest: two scrapes 20 ms apart that agree, so that no health
// check (or the tail of a batch being published) is half counted.
Counters settledCounters(const RunningMaster& master) {
  Counters settled;
  bool ok = waitUntil(
      [&] {
        Counters first = scrapeCounters(master);
        std::this_thread::sleep_for(20ms);
        settled = scrapeCounters(master);
        return first == settled && settled.requests >= 0 && settled.bytesIn >= 0;
      },
      10s);
  EXPECT_TRUE(ok) << "the counters of " << master.name() << " never settled";
  return settled;
}

// What the bench sends: Submit frames with a 16-byte payload (29 bytes). The
// health check sends 18-byte frames (payload "hello") on its own connections.
constexpr int kBenchPayloadBytes = 16;
const double kBenchFrameBytes = double(submitFrame(1, std::string(kBenchPayloadBytes, 'x')).size());
const double kCheckFrameBytes = double(submitFrame(1, "hello").size());

// Of the requests an instance read between two settled scrapes, how many were
// the client's: HAProxy's checks land on the same counters, but requests and
// bytes give two equations for the two unknowns
//   requests = client + checks,  bytes = 29 * client + 18 * checks.
// Returns -1 when the numbers fit no whole split (something else was counted).
double clientRequests(const Counters& before, const Counters& after) {
  double requests = after.requests - before.requests;
  double bytes = after.bytesIn - before.bytesIn;
  double client = (bytes - kCheckFrameBytes * requests) / (kBenchFrameBytes - kCheckFrameBytes);
  double checks = requests - client;
  if (client != std::floor(client) || client < 0 || checks < 0) return -1;
  return client;
}

// `tcpfork-client bench` arguments: 20 connections x window 8, pipelined.
std::vector<std::string> benchArgs(int port, const std::string& seconds) {
  return {"--addr", addr(port), "-c", "20", "-w", "8", "--payload-bytes", std::to_string(kBenchPayloadBytes),
          "-d", seconds, "-q"};
}

std::vector<std::string> withBench(std::vector<std::string> args) {
  args.insert(args.begin(), "bench");
  return args;
}

// SIGKILLs an instance's master and its `workers` (as a crash of the host
// would) and times how long HAProxy takes to mark `server` DOWN; nullopt if
// it never does within 20 s.
std::optional<std::chrono::milliseconds> killUntilDown(RunningMaster& instance, const std::set<pid_t>& workers,
                                                       RunningHaproxy& haproxy, const std::string& server) {
  auto killedAt = std::chrono::steady_clock::now();
  instance.process().signal(SIGKILL);
  for (pid_t pid : workers) ::kill(pid, SIGKILL);
  if (!waitUntil([&] { return haproxy.serverStatus(server) == "DOWN"; }, 20s)) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killedAt);
}

void expectCleanBench(const ToolRun& run, const std::string& phase) {
  SCOPED_TRACE(phase);
  ASSERT_TRUE(run.report.is_object()) << run.output;
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_GT(run.report["acked"].get<uint64_t>(), 0u) << run.output;
  EXPECT_EQ(run.report["acked"], run.report["sent"]) << run.output;
  EXPECT_EQ(run.report["errors_total"], 0) << run.output;
  EXPECT_EQ(run.report["connects_failed"], 0) << run.output;
  EXPECT_EQ(run.report["closed_by_server"], 0) << run.output;
  EXPECT_EQ(run.report["unacked_at_end"], 0) << run.output;
}

// Both shipped files: one instance set (haproxy.cfg) and a fleet with the
// agent check (fleet.cfg).
TEST(HaProxy, ShippedConfigIsValid) {
  TCPFORK_REQUIRE(::access(kHaproxy, X_OK) == 0, "Debian package haproxy not installed");
  for (std::string file : {"haproxy.cfg", "fleet.cfg"}) {
    SCOPED_TRACE(file);
    std::string log = tempPath("haproxy-check.out");
    ChildProcess haproxy({kHaproxy, "-c", "-f", std::string(TCPFORK_SOURCE_DIR) + "/deploy/haproxy/" + file}, {}, log);
    auto status = haproxy.waitExit(30s);
    ToolRun check{status ? WEXITSTATUS(*status) : -1, readFile(log), {}};
    EXPECT_EQ(check.exitCode, 0) << check.output;
    EXPECT_EQ(check.output.find("WARNING"), std::string::npos) << check.output;
  }
}

// The fleet's health check is the same protocol check, and its servers are
// told by the master's agent.
TEST(HaProxy, ShippedFleetConfigChecksTheProtocolAndAsksTheAgent) {
  std::string fleet = readFile(std::string(TCPFORK_SOURCE_DIR) + "/deploy/haproxy/fleet.cfg");
  std::string single = shippedConfig();
  for (const char* line : {"tcp-check send-binary 0000001202303030303030303168656c6c6f",
                           "tcp-check expect min-recv 14 binary 0000000e81303030303030303100", "option redispatch 1"}) {
    EXPECT_NE(single.find(line), std::string::npos) << line;
    EXPECT_NE(fleet.find(line), std::string::npos) << line;
  }
  EXPECT_TRUE(std::regex_search(fleet, std::regex(R"(default-server .*agent-check agent-port \d+ agent-inter \S+)")));
  EXPECT_FALSE(std::regex_search(fleet, std::regex(R"(^[^#\n]*shutdown-sessions)", std::regex::multiline)))
      << "a draining host's sessions carry the acks it still owes";
}

// The health check's bytes are the protocol's: the design's Submit example and its ack.
TEST(HaProxy, ShippedHealthCheckSpeaksTheProtocol) {
  std::string cfg = shippedConfig();
  std::smatch send;
  std::smatch expect;
  ASSERT_TRUE(std::regex_search(cfg, send, std::regex(R"(tcp-check send-binary ([0-9a-fA-F]+))")));
  ASSERT_TRUE(std::regex_search(cfg, expect, std::regex(R"(tcp-check expect (?:min-recv \d+ )?binary ([0-9a-fA-F]+))")));
  EXPECT_EQ(fromHex(send[1]), submitFrame(1, "hello"));
  EXPECT_EQ(fromHex(expect[1]), submitAckFrame(1));
}

TEST(HaProxy, BalancesAndFailsOverWhenAnInstanceDies) {
  TCPFORK_REQUIRE(::access(kHaproxy, X_OK) == 0, "Debian package haproxy not installed");
  RunningMaster one(2);
  RunningMaster two(2);
  ASSERT_NE(one.name(), two.name());
  ASSERT_NE(one.metricsPort(), two.metricsPort());
  RunningHaproxy haproxy({one.port(), two.port()});
  ASSERT_TRUE(waitUntil(
      [&] { return haproxy.serverStatus("tcpfork1") == "UP" && haproxy.serverStatus("tcpfork2") == "UP"; }, 15s))
      << "tcpfork1 " << haproxy.serverStatus("tcpfork1") << ", tcpfork2 " << haproxy.serverStatus("tcpfork2")
      << "; haproxy's log:\n" << haproxy.log();

  // Phase 1, both up: every request the client had acked was read by one of
  // the two instances, and both took a share.
  Counters oneBefore = settledCounters(one);
  Counters twoBefore = settledCounters(two);
  ToolRun balanced = runClient(withBench(benchArgs(haproxy.port(), "3")), true);
  expectCleanBench(balanced, "both instances up");
  Counters oneAfter = settledCounters(one);
  Counters twoAfter = settledCounters(two);
  double clientOnOne = clientRequests(oneBefore, oneAfter);
  double clientOnTwo = clientRequests(twoBefore, twoAfter);
  EXPECT_GT(clientOnOne, 0) << "leastconn gave tcpfork1 nothing";
  EXPECT_GT(clientOnTwo, 0) << "leastconn gave tcpfork2 nothing";
  EXPECT_EQ(clientOnOne + clientOnTwo, balanced.report["acked"].get<double>());
  EXPECT_EQ(oneAfter.acks - oneBefore.acks, oneAfter.requests - oneBefore.requests) << "tcpfork1 owes acks";
  EXPECT_EQ(twoAfter.acks - twoBefore.acks, twoAfter.requests - twoBefore.requests) << "tcpfork2 owes acks";
  std::cout << "[ haproxy  ] both up: " << balanced.report["acked"] << " acked = " << clientOnOne
            << " read by tcpfork1 + " << clientOnTwo << " read by tcpfork2\n";

  // Phase 2, load running on both: kill the whole of instance two (master
  // and workers, SIGKILL; the workers would follow the master anyway by
  // PDEATHSIG) and time how long HAProxy's check takes to mark it DOWN.
  BackgroundClient during(benchArgs(haproxy.port(), "60"));
  ASSERT_TRUE(waitUntil(
      [&] {
        return scrapeCounters(one).requests > oneAfter.requests + 10000 &&
               scrapeCounters(two).requests > twoAfter.requests + 10000;
      },
      20s))
      << "the load never reached both instances";
  std::set<pid_t> workers = two.servingPids();
  ASSERT_EQ(workers.size(), 2u);
  auto toDown = killUntilDown(two, workers, haproxy, "tcpfork2");
  ASSERT_TRUE(toDown.has_value()) << "tcpfork2 is " << haproxy.serverStatus("tcpfork2") << "; haproxy's log:\n" << haproxy.log();
  EXPECT_TRUE(two.process().waitExit(5s).has_value()) << "the killed master is still running";
  for (pid_t pid : workers) EXPECT_TRUE(waitUntil([&] { return gone(pid); }, 5s)) << "worker " << pid << " lives on";
  EXPECT_EQ(haproxy.serverStatus("tcpfork1"), "UP");
  // Checks every 200 ms, 100 ms after a first failure, two failures: about
  // 300 ms; the bound only allows for a loaded machine.
  EXPECT_LT(*toDown, 10s);
  RecordProperty("kill_to_down_ms", int(toDown->count()));

  during.interrupt();
  ToolRun failover = during.finish(30s);
  ASSERT_TRUE(failover.report.is_object()) << failover.output;
  // HAProxy never mixes streams: no ack is ever wrong, and connecting to the
  // proxy never fails. Connections that were on instance two are closed
  // (their unacked requests lost, which the client reports) and reconnect.
  EXPECT_EQ(failover.report["errors_total"], 0) << failover.output;
  EXPECT_EQ(failover.report["connects_failed"], 0) << failover.output;
  EXPECT_GT(failover.report["acked"].get<uint64_t>(), 0u) << failover.output;
  StatRow dead = haproxy.serverStat("tcpfork2");
  std::cout << "[ haproxy  ] kill to DOWN " << toDown->count() << " ms; during: " << failover.report["acked"]
            << " acked, " << failover.report["connects_failed"] << " connects failed, "
            << failover.report["closed_by_server"] << " connections closed (" << failover.report["unacked_on_closed"]
            << " unacked on them), " << failover.report["unacked_at_end"] << " unacked at end; haproxy tcpfork2: econ " << dead["econ"] << ", wretr " << dead["wretr"]
            << ", wredis " << dead["wredis"] << ", chkfail " << dead["chkfail"] << ", chkdown " << dead["chkdown"]
            << "\n";

  // Phase 3, after DOWN: all load goes to instance one and nothing fails.
  Counters oneSurvivorBefore = settledCounters(one);
  ToolRun after = runClient(withBench(benchArgs(haproxy.port(), "3")), true);
  expectCleanBench(after, "after tcpfork2 is DOWN");
  Counters oneSurvivorAfter = settledCounters(one);
  EXPECT_EQ(clientRequests(oneSurvivorBefore, oneSurvivorAfter), after.report["acked"].get<double>());
  std::cout << "[ haproxy  ] after DOWN: " << after.report["acked"] << " acked, " << after.report["connects_failed"]
            << " connects failed, " << after.report["errors_total"] << " ack errors\n";

  // HAProxy's own Prometheus exporter (the shipped stats frontend) agrees.
  HttpResponse exported = httpGet(haproxy.statsPort(), "/metrics");
  EXPECT_EQ(exported.status, 200);
  EXPECT_EQ(metricValue(exported.body, R"(haproxy_server_status{proxy="tcpfork",server="tcpfork2",state="DOWN"})"), 1)
      << exported.body.substr(0, 2000);
  EXPECT_EQ(metricValue(exported.body, R"(haproxy_server_status{proxy="tcpfork",server="tcpfork1",state="UP"})"), 1);
}

// The shipped check timing (inter 1s, fastinter 500ms, fall 2), unchanged:
// a dead instance is DOWN within about 1.5 s.
TEST(HaProxy, ShippedCheckTimingMarksADeadInstanceDown) {
  TCPFORK_REQUIRE(::access(kHaproxy, X_OK) == 0, "Debian package haproxy not installed");
  RunningMaster one(1);
  RunningMaster two(1);
  RunningHaproxy haproxy({one.port(), two.port()}, "");
  ASSERT_TRUE(waitUntil(
      [&] { return haproxy.serverStatus("tcpfork1") == "UP" && haproxy.serverStatus("tcpfork2") == "UP"; }, 15s))
      << haproxy.log();
  std::set<pid_t> workers = two.servingPids();
  auto toDown = killUntilDown(two, workers, haproxy, "tcpfork2");
  ASSERT_TRUE(toDown.has_value()) << "tcpfork2 is " << haproxy.serverStatus("tcpfork2") << "; haproxy's log:\n" << haproxy.log();
  EXPECT_LT(*toDown, 10s);
  RecordProperty("kill_to_down_ms", int(toDown->count()));
  std::cout << "[ haproxy  ] shipped check timing: kill to DOWN " << toDown->count() << " ms\n";
  ToolRun after = runClient(withBench(benchArgs(haproxy.port(), "1")), true);
  expectCleanBench(after, "after tcpfork2 is DOWN");
}

}  // namespace
}  // namespace tcpfork::test
