// A fleet behind HAProxy (deploy/haproxy/fleet.cfg): three tcpfork hosts on
// their own loopback addresses (127.0.0.2, .3, .4), each master answering
// HAProxy's agent check, under pipelined load and a connect storm through
// HAProxy. A rolling restart and a rolling binary upgrade of every host lose
// no connect and no ack; a host killed outright is taken out within the
// check intervals; a stalled worker lowers its host's weight until it runs.
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <set>

#include "base/socket.h"
#include "stats/segment.h"
#include "test/integration/agent_check.h"
#include "test/integration/fleet_host.h"
#include "test/integration/requirements.h"
#include "test/integration/running_haproxy.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

using Clock = std::chrono::steady_clock;

struct ServerView {
  std::string status;  // UP, DOWN, DRAIN, ...
  int weight = -1;
  long sessions = -1;  // stot: connections HAProxy has sent it in all
};

ServerView view(const RunningHaproxy& haproxy, const std::string& server) {
  StatRow row = haproxy.serverStat(server);
  ServerView v;
  v.status = row["status"];
  if (!row["weight"].empty()) v.weight = std::stoi(row["weight"]);
  if (!row["stot"].empty()) v.sessions = std::stol(row["stot"]);
  return v;
}

std::string describe(const RunningHaproxy& haproxy, const std::vector<std::string>& servers) {
  std::string out;
  for (const auto& s : servers) {
    ServerView v = view(haproxy, s);
    out += s + ": " + v.status + " weight " + std::to_string(v.weight) + " stot " + std::to_string(v.sessions) + "; ";
  }
  return out;
}

// Up at full weight and given a new connection since: the host takes load.
bool takesLoad(const RunningHaproxy& haproxy, const std::string& server, std::chrono::milliseconds timeout) {
  if (!waitUntil([&] { ServerView v = view(haproxy, server); return v.status == "UP" && v.weight == 100; }, timeout)) {
    return false;
  }
  long before = view(haproxy, server).sessions;
  return waitUntil([&] { return view(haproxy, server).sessions > before; }, timeout);
}

std::vector<std::string> benchArgs(int port) {
  return {"--addr", "127.0.0.1:" + std::to_string(port), "-c", "16", "-w", "8", "-d", "150", "--drain", "5", "-q"};
}
std::vector<std::string> stormArgs(int port) {
  return {"--addr", "127.0.0.1:" + std::to_string(port), "-c", "4", "-d", "150", "--timeout", "10", "-q"};
}

// The bench's counts for one cycle: every request acked, or on a connection
// the server closed (after flushing what it owed); no connect failed, no
// ack was wrong. The storm's: every connection acked.
void expectNothingLost(const ToolRun& bench, const ToolRun& storm, const std::string& cycle) {
  SCOPED_TRACE(cycle);
  ASSERT_TRUE(bench.report.is_object()) << bench.output;
  ASSERT_TRUE(storm.report.is_object()) << storm.output;
  const auto& b = bench.report;
  const auto& s = storm.report;
  EXPECT_EQ(b["connects_failed"], 0) << b.dump();
  EXPECT_EQ(b["errors_total"], 0) << b.dump();
  EXPECT_EQ(b["unacked_at_end"], 0) << b.dump();
  EXPECT_EQ(b["sent"].get<uint64_t>(), b["acked"].get<uint64_t>() + b["unacked_on_closed"].get<uint64_t>()) << b.dump();
  EXPECT_GT(b["acked"].get<uint64_t>(), 0u) << b.dump();
  EXPECT_EQ(s["failed"], 0) << s.dump();
  EXPECT_EQ(s["wrong_acks"], 0) << s.dump();
  EXPECT_GT(s["acked"].get<uint64_t>(), 0u) << s.dump();
  std::cout << "[ fleet    ] " << cycle << ": bench sent " << b["sent"] << ", acked " << b["acked"]
            << ", connects failed " << b["connects_failed"] << ", connects reset " << b["connects_reset"]
            << ", wrong acks " << b["errors_total"] << ", connections closed by the server " << b["closed_by_server"]
            << " (" << b["unacked_on_closed"] << " requests unacked on them), unacked at end " << b["unacked_at_end"]
            << "; storm: " << s["acked"] << " connections acked, " << s["failed"] << " failed, " << s["wrong_acks"]
            << " wrong acks\n";
}

class Fleet : public ::testing::Test {
 protected:
  void SetUp() override {
    TCPFORK_REQUIRE(::access(kHaproxy, X_OK) == 0, "Debian package haproxy not installed");
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    for (int n = 2; n <= 4; ++n) {
      hosts_.push_back(std::make_unique<FleetHost>(n, 2));
      if (!hosts_.back()->reserved()) GTEST_SKIP() << "cannot bind 127.0.0." << n << " (loopback beyond 127.0.0.1)";
    }
    std::vector<FleetServer> servers;
    for (size_t i = 0; i < hosts_.size(); ++i) {
      ASSERT_TRUE(hosts_[i]->start());
      names_.push_back("host" + std::to_string(i + 1));
      servers.push_back({names_.back(), hosts_[i]->serviceAddress(), hosts_[i]->agentPort()});
    }
    haproxy_ = std::make_unique<RunningHaproxy>(servers, kFastFleetChecks);
    for (const auto& s : names_) {
      ASSERT_TRUE(waitUntil([&] { ServerView v = view(*haproxy_, s); return v.status == "UP" && v.weight == 100; }, 15s))
          << describe(*haproxy_, names_) << "\n" << haproxy_->log();
    }
  }

  std::vector<std::unique_ptr<FleetHost>> hosts_;
  std::vector<std::string> names_;
  std::unique_ptr<RunningHaproxy> haproxy_;
};

TEST_F(Fleet, RollingRestartAndUpgradeLoseNothingAndAKilledHostIsTakenOut) {
  // A rolling restart: QUIT one host, wait until its master exits, start it
  // again, wait until HAProxy gives it load, then the next.
  {
    BackgroundClient bench(benchArgs(haproxy_->port()));
    BackgroundClient storm(stormArgs(haproxy_->port()), "connects");
    for (const auto& s : names_) ASSERT_TRUE(takesLoad(*haproxy_, s, 15s)) << describe(*haproxy_, names_);
    for (size_t i = 0; i < hosts_.size(); ++i) {
      auto quitAt = Clock::now();
      ASSERT_TRUE(hosts_[i]->quit());
      ServerView out = view(*haproxy_, names_[i]);
      std::cout << "[ fleet    ] restart " << names_[i] << ": master exited "
                << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - quitAt).count()
                << " ms after QUIT; HAProxy then: " << out.status << " weight " << out.weight << "\n";
      ASSERT_TRUE(hosts_[i]->start());
      ASSERT_TRUE(takesLoad(*haproxy_, names_[i], 15s)) << describe(*haproxy_, names_) << "\n" << haproxy_->log();
    }
    bench.interrupt();
    storm.interrupt();
    expectNothingLost(bench.finish(60s), storm.finish(60s), "rolling restart");
  }

  // A rolling binary upgrade: USR2, QUIT of the old master once the new one
  // serves; the agent says drain from USR2 until the old master has exited.
  {
    BackgroundClient bench(benchArgs(haproxy_->port()));
    BackgroundClient storm(stormArgs(haproxy_->port()), "connects");
    for (const auto& s : names_) ASSERT_TRUE(takesLoad(*haproxy_, s, 15s)) << describe(*haproxy_, names_);
    for (size_t i = 0; i < hosts_.size(); ++i) {
      pid_t old = hosts_[i]->masterPid();
      ASSERT_TRUE(hosts_[i]->upgrade());
      ASSERT_NE(hosts_[i]->masterPid(), old);
      ASSERT_TRUE(takesLoad(*haproxy_, names_[i], 15s)) << describe(*haproxy_, names_) << "\n" << haproxy_->log();
    }
    bench.interrupt();
    storm.interrupt();
    expectNothingLost(bench.finish(60s), storm.finish(60s), "rolling upgrade");
  }

  // A stopped worker: its host's weight falls to its share, and comes back.
  {
    std::set<pid_t> workers = hosts_[2]->workers();
    ASSERT_EQ(workers.size(), 2u);
    pid_t stopped = *workers.begin();
    ::kill(stopped, SIGSTOP);
    bool fell = waitUntil([&] { return view(*haproxy_, names_[2]).weight == 50; }, 10s);
    ::kill(stopped, SIGCONT);
    EXPECT_TRUE(fell) << describe(*haproxy_, names_) << " agent: " << agentCheck(hosts_[2]->agentAddress());
    EXPECT_TRUE(waitUntil([&] { return view(*haproxy_, names_[2]).weight == 100; }, 10s)) << describe(*haproxy_, names_);
  }

  // One host killed outright under load: how long until HAProxy stops
  // sending it connections (DOWN); the others take the load, no connect fails.
  {
    BackgroundClient bench(benchArgs(haproxy_->port()));
    BackgroundClient storm(stormArgs(haproxy_->port()), "connects");
    for (const auto& s : names_) ASSERT_TRUE(takesLoad(*haproxy_, s, 15s)) << describe(*haproxy_, names_);
    auto killedAt = Clock::now();
    hosts_[1]->kill();
    ASSERT_TRUE(waitUntil([&] { return view(*haproxy_, names_[1]).status == "DOWN"; }, 20s))
        << describe(*haproxy_, names_);
    auto toDown = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killedAt);
    long sessionsAtDown = view(*haproxy_, names_[1]).sessions;
    for (size_t i : {0u, 2u}) EXPECT_TRUE(takesLoad(*haproxy_, names_[i], 10s)) << describe(*haproxy_, names_);
    EXPECT_EQ(view(*haproxy_, names_[1]).sessions, sessionsAtDown) << "HAProxy sent connections to a DOWN host";
    std::cout << "[ fleet    ] kill -9 of host2 (master and workers) to HAProxy marking it DOWN: " << toDown.count()
              << " ms (health check inter 200ms, fastinter 100ms, fall 2)\n";
    RecordProperty("kill_to_down_ms", int(toDown.count()));
    EXPECT_LT(toDown, 10s);
    bench.interrupt();
    storm.interrupt();
    ToolRun b = bench.finish(60s);
    ToolRun s = storm.finish(60s);
    ASSERT_TRUE(b.report.is_object()) << b.output;
    ASSERT_TRUE(s.report.is_object()) << s.output;
    // The killed host's connections are reset (their unacked requests are
    // the client's to resend); a connect never fails and no ack is wrong.
    EXPECT_EQ(b.report["connects_failed"], 0) << b.report.dump();
    EXPECT_EQ(b.report["errors_total"], 0) << b.report.dump();
    EXPECT_EQ(s.report["wrong_acks"], 0) << s.report.dump();
    std::cout << "[ fleet    ] kill -9: bench " << b.report["acked"] << " acked, " << b.report["connects_failed"]
              << " connects failed, " << b.report["closed_by_server"] << " connections closed ("
              << b.report["unacked_on_closed"] << " unacked on them); storm " << s.report["acked"] << " acked, "
              << s.report["failed"] << " failed (" << s.report["reset"] << " reset, " << s.report["unanswered"]
              << " unanswered)\n";
  }
}

}  // namespace
}  // namespace tcpfork::test
