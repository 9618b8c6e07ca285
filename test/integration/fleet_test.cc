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
#include "test/integration/requirements.h"
#include "test/integration/running_haproxy.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

using Clock = std::chrono::steady_clock;

// A port on `ip` that nobody else can take while the returned socket lives
// (bound with SO_REUSEADDR, never listening), for a host that must come back
// on the same address after a restart. tcpfork binds with SO_REUSEADDR too.
BoundPort reservePort(const std::string& ip) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int on = 1;
  if (!fd || ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) return {};
  SocketAddress address = parseAddress(ip + ":0");
  if (::bind(fd.get(), address.get(), address.length) != 0) return {};
  int port = localAddress(fd.get()).port();
  return {std::move(fd), port};
}

bool reapWithin(pid_t pid, std::chrono::milliseconds timeout) {
  return waitUntil([&] { return ::waitpid(pid, nullptr, WNOHANG) == pid || (::kill(pid, 0) != 0 && errno == ESRCH); },
                   timeout);
}

// One host: a tcpfork master on 127.0.0.N with fixed (reserved) service,
// metrics and agent ports, restarted and upgraded in place. Its masters are
// our children, or after a binary upgrade our adoptees (we are a subreaper);
// every one is killed by pid with its workers when the test ends.
class FleetHost {
 public:
  FleetHost(int n, unsigned workers)
      : ip_("127.0.0." + std::to_string(n)),
        name_(uniqueName()),
        configPath_(tempPath("fleet.yaml")),
        pidFile_(tempPath("fleet.pid")),
        logPath_(tempPath("fleet.log")),
        service_(reservePort(ip_)),
        metrics_(reservePort(ip_)),
        agent_(reservePort(ip_)) {
    std::ofstream(configPath_) << "name: " << name_ << "\nlisten: " << ip_ << ":" << service_.port
                               << "\npid_file: " << pidFile_ << "\nworkers: " << workers
                               << "\nmetrics:\n  listen: " << ip_ << ":" << metrics_.port
                               << "\nagent:\n  listen: " << ip_ << ":" << agent_.port << "\n  drain_delay: 600ms"
                               << "\ndrain_timeout: 5s\nworker_timeout: 20s\nsteering:\n  stale_after: 300ms\n"
                               << "profile:\n  dir: " << tempPath("profiles") << "\n";
  }
  ~FleetHost() { kill(); }
  FleetHost(const FleetHost&) = delete;
  FleetHost& operator=(const FleetHost&) = delete;

  bool reserved() const { return service_.port && metrics_.port && agent_.port; }
  std::string serviceAddress() const { return ip_ + ":" + std::to_string(service_.port); }
  std::string agentAddress() const { return ip_ + ":" + std::to_string(agent_.port); }
  int agentPort() const { return agent_.port; }
  pid_t masterPid() const { return pid_; }
  const std::string& name() const { return name_; }
  std::string log() const { return readFile(logPath_); }

  // Starts a master and waits until it is ready.
  ::testing::AssertionResult start() {
    size_t before = count(log(), "ready:");
    children_.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{binary("tcpfork"), "-c", configPath_}, std::vector<int>{}, logPath_));
    pid_ = children_.back()->pid();
    if (!waitUntil([&] { return count(log(), "ready:") > before || !alive(pid_); }, 15s) || !alive(pid_)) {
      return ::testing::AssertionFailure() << ip_ << ": the master did not become ready; its log:\n" << log();
    }
    return ::testing::AssertionSuccess();
  }

  // QUIT, and waits until the master has exited.
  ::testing::AssertionResult quit() {
    ::kill(pid_, SIGQUIT);
    if (!reap(pid_, 20s)) return ::testing::AssertionFailure() << ip_ << ": the master did not exit; its log:\n" << log();
    pid_ = 0;
    return ::testing::AssertionSuccess();
  }

  // USR2; once the new master serves, QUIT to the old one and waits until it
  // has exited.
  ::testing::AssertionResult upgrade() {
    size_t before = count(log(), "serves beside it until it gets SIGQUIT");
    pid_t old = pid_;
    ::kill(old, SIGUSR2);
    if (!waitUntil([&] { return count(log(), "serves beside it until it gets SIGQUIT") > before; }, 20s)) {
      return ::testing::AssertionFailure() << ip_ << ": the new master did not serve; the log:\n" << log();
    }
    // The new master has written its pid there (the old one's is .oldbin).
    pid_t next = 0;
    try {
      next = pid_t(std::stoi(readFile(pidFile_)));
    } catch (const std::exception& e) {
      return ::testing::AssertionFailure() << ip_ << ": no pid in " << pidFile_ << ": " << e.what();
    }
    if (next == old) return ::testing::AssertionFailure() << ip_ << ": " << pidFile_ << " still names the old master";
    adopted_.insert(next);
    ::kill(old, SIGQUIT);
    if (!reap(old, 20s)) return ::testing::AssertionFailure() << ip_ << ": the old master did not exit:\n" << log();
    pid_ = next;
    return ::testing::AssertionSuccess();
  }

  // SIGKILL to the master and every worker, as a crash of the machine would.
  void kill() {
    std::set<pid_t> workers = workerPids(name_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap(pid_, 5s);
    }
    for (pid_t pid : workers) ::kill(pid, SIGKILL);
    for (pid_t pid : workers) reapWithin(pid, 5s);
    pid_ = 0;
    stats::StatsSegment::remove(name_);
  }

  std::set<pid_t> workers() const { return workerPids(name_); }

 private:
  static bool alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }
  bool reap(pid_t pid, std::chrono::milliseconds timeout) {
    for (auto& child : children_) {
      if (child->pid() == pid) return child->waitExit(timeout).has_value();
    }
    bool gone = reapWithin(pid, timeout);
    if (gone) adopted_.erase(pid);
    return gone;
  }

  std::string ip_;
  std::string name_;
  std::string configPath_;
  std::string pidFile_;
  std::string logPath_;
  BoundPort service_;
  BoundPort metrics_;
  BoundPort agent_;
  std::vector<std::unique_ptr<ChildProcess>> children_;
  std::set<pid_t> adopted_;
  pid_t pid_ = 0;
};

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
