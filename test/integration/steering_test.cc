// Connection steering against a live master: the reuseport program keeps new
// connections away from a stopped worker, a full one, an overloaded one
// while another is not, and from sockets about to close;
// without it (steering: off, or no privilege to load it) the sockets are
// plain SO_REUSEPORT again, and a stopped worker's share of new connections
// waits for it.

#include <gtest/gtest.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <fstream>
#include <regex>
#include <sstream>

#include "base/socket.h"
#include "master/pidfile.h"
#include "stats/segment.h"
#include "test/integration/http_get.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"
#include "test/integration/worker_slot.h"

namespace tcpfork::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Opens `n` connections at once, sends one Submit on each, and waits up to
// `timeout` for the acks: how many got none (closed and reset ones included).
int unansweredWithin(int port, int n, std::chrono::milliseconds timeout) {
  std::vector<UniqueFd> fds;
  for (int i = 0; i < n; ++i) {
    fds.push_back(connectTcp(parseAddress("127.0.0.1:" + std::to_string(port))));
    auto frame = submitFrame(uint64_t(i));
    EXPECT_EQ(::send(fds.back().get(), frame.data(), frame.size(), MSG_NOSIGNAL), ssize_t(frame.size()));
  }
  const size_t ackBytes = submitAckFrame(0).size();
  std::vector<size_t> got(fds.size(), 0);
  std::vector<bool> over(fds.size(), false);  // acked, closed or reset
  int acked = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> polls;
    std::vector<size_t> which;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (over[i]) continue;
      polls.push_back({fds[i].get(), POLLIN, 0});
      which.push_back(i);
    }
    if (polls.empty()) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (::poll(polls.data(), polls.size(), int(std::max<int64_t>(left.count(), 0))) <= 0) continue;
    for (size_t k = 0; k < polls.size(); ++k) {
      if (!polls[k].revents) continue;
      size_t i = which[k];
      std::byte buffer[64];
      ssize_t r = ::recv(fds[i].get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {
        over[i] = true;
        continue;
      }
      got[i] += size_t(r);
      if (got[i] >= ackBytes) {
        over[i] = true;
        ++acked;
      }
    }
  }
  return n - acked;
}

// A worker's heartbeat age from a scrape (-1 when it has no series).
double heartbeatAge(const std::string& exposition, pid_t pid) {
  std::istringstream in(exposition);
  std::string line;
  std::string label = "pid=\"" + std::to_string(pid) + "\"";
  while (std::getline(in, line)) {
    if (line.rfind("tcp_server_worker_heartbeat_age_seconds{", 0) == 0 && line.find(label) != std::string::npos) {
      return std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return -1;
}

// The worker index the master took out of rotation, from its log line.
std::optional<unsigned> excludedIndex(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"(steering: worker (\d+) out of rotation: its heartbeat)"))) return {};
  return unsigned(std::stoul(m[1]));
}

const std::string kLongTimeout = "worker_timeout: 60s\n";  // a stopped worker stays stopped, not killed

TEST(Steering, NoNewConnectionWaitsForAStoppedWorker) {
  TCPFORK_REQUIRE(::geteuid() == 0, "loading the steering program needs root (CAP_BPF, CAP_NET_ADMIN)");
  RunningMaster master(2, kLongTimeout);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_active") == 1; }, 5s)) << master.log();
  ASSERT_EQ(unansweredWithin(master.port(), 40, 5s), 0);

  pid_t stopped = *master.servingPids().begin();
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  // Out once its heartbeat is stale_after (250 ms) old: the master looks
  // every 100 ms, and the worker beats every 100 ms.
  ASSERT_TRUE(master.waitForLog("out of rotation: its heartbeat", 10s)) << master.log();
  auto index = excludedIndex(master.log());
  ASSERT_TRUE(index.has_value()) << master.log();
  std::string series = "tcp_server_steering_eligible{worker=\"" + std::to_string(*index) + "\"}";
  EXPECT_EQ(master.metric(series), 0);
  EXPECT_EQ(master.metric("tcp_server_steering_excluded_total{reason=\"stale\"}"), 1);
  // Every new connection goes to the worker that runs: none waits for the
  // stopped one (which would hold its ack until it runs again).
  EXPECT_EQ(unansweredWithin(master.port(), 40, 5s), 0);

  ASSERT_EQ(::kill(stopped, SIGCONT), 0);
  ASSERT_TRUE(master.waitForLog("steering: worker " + std::to_string(*index) + " back in rotation", 10s))
      << master.log();
  EXPECT_EQ(master.metric(series), 1);
  EXPECT_EQ(unansweredWithin(master.port(), 40, 5s), 0);
}

// A worker at max_connections closes every new connection at once; the
// master takes it out of rotation as it does a worker with a long accept
// queue, so the other worker's free slots take them. Before, steering_eligible
// stayed 1 for the full worker and about half the new connections were reset
// (18 and 19 of 40 with 50 + 42 held).
TEST(Steering, AWorkerAtMaxConnectionsIsTakenOutOfRotation) {
  TCPFORK_REQUIRE(::geteuid() == 0, "loading the steering program needs root (CAP_BPF, CAP_NET_ADMIN)");
  RunningMaster master(2, kLongTimeout + "max_connections: 50\n");
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_active") == 1; }, 5s)) << master.log();
  // Fill one worker: with the other stopped (so out of rotation), every new
  // connection goes to it; 50 held, each answered.
  std::set<pid_t> pids = master.servingPids();
  ASSERT_EQ(pids.size(), 2u);
  pid_t stopped = *pids.begin();
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  ASSERT_TRUE(master.waitForLog("out of rotation: its heartbeat", 10s)) << master.log();
  std::vector<std::unique_ptr<TestConnection>> held;
  for (uint64_t id = 1; id <= 50; ++id) {
    held.push_back(std::make_unique<TestConnection>(master.port(), 5s));
    held.back()->send(submitFrame(id));
    ASSERT_EQ(held.back()->read(kAckBytes), submitAckFrame(id)) << "connection " << id << "\n" << master.log();
  }
  ASSERT_EQ(::kill(stopped, SIGCONT), 0);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_excluded_total{reason=\"full\"}") >= 1; },
                        10s))
      << master.log();
  // (Its log line may be counted, not written: the stopped worker's was the
  // first 'out of rotation' of this 10 s window.)
  ASSERT_TRUE(master.waitForLog("back in rotation", 10s)) << master.log();
  // One request each, one connection at a time: all go where there is room.
  double rejectedBefore = master.metric("tcp_server_connections_rejected_total");
  int refused = 0;
  for (uint64_t id = 100; id < 140; ++id) {
    TestConnection c(master.port(), 5s);
    c.send(submitFrame(id));
    if (c.read(kAckBytes) != submitAckFrame(id)) ++refused;
  }
  EXPECT_EQ(refused, 0) << master.log();
  EXPECT_EQ(master.metric("tcp_server_connections_rejected_total"), rejectedBefore)
      << "a new connection reached the full worker";
}

// Connections worker `pid` has accepted, from /status (-1 when it has no row).
int64_t acceptedBy(const RunningMaster& master, pid_t pid) {
  HttpResponse reply = httpGet(master.metricsPort(), "/status");
  if (reply.status != 200) return -1;
  nlohmann::json doc = nlohmann::json::parse(reply.body);
  for (const auto& w : doc.at("workers")) {
    if (w.at("pid") == pid) return w.at("totals").at("accepted").get<int64_t>();
  }
  return -1;
}

// A worker whose slot says it is overloaded (the flag a worker sets while it
// sheds by queueing delay; written here by the test) takes no new
// connection while the other is not overloaded; with both overloaded, both
// take their share again; its flag down, it is back.
TEST(Steering, AnOverloadedWorkerLeavesTheRotationWhileAnotherIsNot) {
  TCPFORK_REQUIRE(::geteuid() == 0, "loading the steering program needs root (CAP_BPF, CAP_NET_ADMIN)");
  RunningMaster master(2);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_active") == 1; }, 5s)) << master.log();
  std::set<pid_t> pids = master.servingPids();
  ASSERT_EQ(pids.size(), 2u);
  pid_t loaded = *pids.begin();
  pid_t other = *pids.rbegin();
  WorkerSlot loadedSlot(master.name(), loaded);
  WorkerSlot otherSlot(master.name(), other);
  const std::string excluded = "tcp_server_steering_excluded_total{reason=\"overloaded\"}";

  loadedSlot.setOverloaded(true);
  ASSERT_TRUE(master.waitForLog("out of rotation: it is overloaded", 10s)) << master.log();
  std::smatch m;
  std::string log = master.log();
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(steering: worker (\d+) out of rotation: it is overloaded)")));
  const std::string eligible = "tcp_server_steering_eligible{worker=\"" + m[1].str() + "\"}";
  EXPECT_EQ(master.metric(eligible), 0);
  EXPECT_EQ(master.metric(excluded), 1);
  // Every new connection goes to the other worker.
  int64_t loadedBefore = acceptedBy(master, loaded);
  int64_t otherBefore = acceptedBy(master, other);
  EXPECT_EQ(unansweredWithin(master.port(), 40, 5s), 0);
  EXPECT_EQ(acceptedBy(master, loaded), loadedBefore);
  EXPECT_EQ(acceptedBy(master, other), otherBefore + 40);

  // Both overloaded: moving connections between them would only move the
  // wait, so both take their hash share (40 all to one: once in 2^39 runs).
  otherSlot.setOverloaded(true);
  ASSERT_TRUE(waitUntil([&] { return master.metric(eligible) == 1; }, 5s)) << master.log();
  EXPECT_EQ(master.metric(excluded), 1);
  loadedBefore = acceptedBy(master, loaded);
  otherBefore = acceptedBy(master, other);
  EXPECT_EQ(unansweredWithin(master.port(), 40, 5s), 0);
  EXPECT_GT(acceptedBy(master, loaded), loadedBefore);
  EXPECT_GT(acceptedBy(master, other), otherBefore);

  // The other recovers: the loaded one is out again, then back once its
  // own flag is down.
  otherSlot.setOverloaded(false);
  ASSERT_TRUE(waitUntil([&] { return master.metric(eligible) == 0; }, 5s)) << master.log();
  EXPECT_EQ(master.metric(excluded), 2);
  loadedSlot.setOverloaded(false);
  ASSERT_TRUE(waitUntil([&] { return master.metric(eligible) == 1; }, 5s)) << master.log();
  EXPECT_TRUE(master.waitForLog("steering: worker " + m[1].str() + " back in rotation", 5s)) << master.log();
  loadedBefore = acceptedBy(master, loaded);
  EXPECT_EQ(unansweredWithin(master.port(), 40, 5s), 0);
  EXPECT_GT(acceptedBy(master, loaded), loadedBefore);
}

size_t occurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The only worker stalling for a few hundred ms at a time (busy; here
// stopped and continued) goes out of rotation and back every few ticks,
// and everyone is out each time. Every change is counted, but each message
// is logged once and then counted once per 10 s (before: three lines per
// stall, two of them warnings, for as long as it went on).
TEST(Steering, AWorkerThatKeepsStallingIsLoggedOnceThenCounted) {
  TCPFORK_REQUIRE(::geteuid() == 0, "loading the steering program needs root (CAP_BPF, CAP_NET_ADMIN)");
  RunningMaster master(1, kLongTimeout);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_active") == 1; }, 5s)) << master.log();
  pid_t worker = *master.servingPids().begin();
  const std::string stale = "tcp_server_steering_excluded_total{reason=\"stale\"}";
  constexpr int kStalls = 6;
  // A stall counts once steering has seen the worker back in between: it
  // looks every 100 ms and a fresh heartbeat stays under stale_after (250
  // ms) for two looks or more, but a stop too soon after the beat is retried.
  int stalls = 0;
  for (int attempt = 0; attempt < 30 && stalls < kStalls; ++attempt) {
    ASSERT_TRUE(waitUntil(
        [&] {
          double age = heartbeatAge(master.scrape(), worker);
          return age >= 0 && age < 0.1;
        },
        5s))
        << master.log();
    ASSERT_EQ(::kill(worker, SIGSTOP), 0);
    bool counted = waitUntil([&] { return master.metric(stale) == stalls + 1; }, 2s);
    ASSERT_EQ(::kill(worker, SIGCONT), 0);
    if (counted) ++stalls;
  }
  ASSERT_EQ(stalls, kStalls) << master.log();
  std::string log = master.log();
  EXPECT_EQ(occurrences(log, "steering: worker 0 out of rotation"), 1u) << log;
  EXPECT_EQ(occurrences(log, "steering: worker 0 back in rotation"), 1u) << log;
  EXPECT_EQ(occurrences(log, "steering: no worker qualifies"), 1u) << log;
  // The rest, counted at the end of each window that dropped some (the
  // first window is 10 s from the first line).
  for (std::string what : {"'out of rotation'", "'back in rotation'", "'no worker qualifies'"}) {
    std::regex summary(R"(\((\d+) steering )" + what + R"( messages suppressed in the last 10 s\))");
    auto counted = [&] {
      std::string now = master.log();
      int sum = 0;
      for (auto it = std::sregex_iterator(now.begin(), now.end(), summary); it != std::sregex_iterator(); ++it) {
        sum += std::stoi((*it)[1]);
      }
      return sum;
    };
    EXPECT_TRUE(waitUntil([&] { return counted() == kStalls - 1; }, 25s)) << what << ": " << master.log();
  }
}

// The same stop without steering: SO_REUSEPORT hashes about half of the new
// connections to the stopped worker, and they wait. (This is what the test
// above would see if the program did not steer.)
TEST(Steering, OffLeavesNewConnectionsWaitingForAStoppedWorker) {
  RunningMaster master(2, kLongTimeout + "steering: off\n");
  ASSERT_TRUE(master.waitForLog("steering: off (steering.enabled is false)", 5s)) << master.log();
  EXPECT_EQ(master.metric("tcp_server_steering_active"), 0);
  pid_t stopped = *master.servingPids().begin();
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  // The heartbeat goes stale all the same; nothing acts on it but the
  // worker_timeout, a minute away.
  ASSERT_TRUE(waitUntil([&] { return heartbeatAge(master.scrape(), stopped) > 0.5; }, 10s)) << master.scrape();
  int unanswered = unansweredWithin(master.port(), 40, 1s);
  ::kill(stopped, SIGCONT);
  // Binomial(40, 1/2): fewer than 5 happens once in ten million runs.
  EXPECT_GE(unanswered, 5);
}

// Scaling down, reloading to fewer workers and back, all under a storm of new
// connections: each socket about to close is first out of selection, its
// worker takes what is queued, and what still lands on it migrates.
TEST(Steering, ScalingAndReloadsUnderAConnectStormFailNoConnect) {
  TCPFORK_REQUIRE(::geteuid() == 0, "loading the steering program needs root (CAP_BPF, CAP_NET_ADMIN)");
  RunningMaster master(2, kLongTimeout);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_active") == 1; }, 5s)) << master.log();
  BackgroundClient storm({"--addr", "127.0.0.1:" + std::to_string(master.port()), "-c", "8", "-d", "100", "--timeout",
                          "20", "-q"},
                         "connects");
  const std::string accepted = "tcp_server_connections_accepted_total";
  // Lets the storm run: at least 500 new connections since the last step.
  auto stormRuns = [&] {
    double before = master.metric(accepted);
    return waitUntil([&] { return master.metric(accepted) >= before + 500; }, 20s);
  };
  ASSERT_TRUE(stormRuns()) << master.log();
  for (int cycle = 1; cycle <= 15; ++cycle) {
    master.process().signal(SIGTTIN);
    ASSERT_TRUE(master.waitServing(3, 15s)) << master.log();
    ASSERT_TRUE(stormRuns()) << master.log();
    master.process().signal(SIGTTOU);
    ASSERT_TRUE(master.waitForLog("TTOU: now 2 workers", 10s, size_t(cycle))) << master.log();
    ASSERT_TRUE(master.waitServing(2, 15s)) << master.log();
    ASSERT_TRUE(stormRuns()) << master.log();
  }
  for (unsigned workers : {3u, 1u, 2u}) {
    master.writeConfig(RunningMaster::baseYaml(master.name(), master.pidFile(), workers, master.profileDir()) +
                       kLongTimeout);
    uint64_t next = master.generation() + 1;
    master.process().signal(SIGHUP);
    ASSERT_TRUE(master.waitForLog("reload: generation " + std::to_string(next) + " serving", 15s)) << master.log();
    ASSERT_TRUE(stormRuns()) << master.log();
  }
  storm.interrupt();
  ToolRun run = storm.finish(30s);
  ASSERT_EQ(run.exitCode, 0) << run.output << master.log();
  EXPECT_EQ(run.report["failed"], 0) << run.output;
  EXPECT_EQ(run.report["wrong_acks"], 0) << run.output;
  EXPECT_GT(run.report["acked"].get<uint64_t>(), 3000u) << run.output;
  // Fifteen TTOUs and the reload from 3 workers to 1 each retired sockets.
  EXPECT_GE(master.metric("tcp_server_steering_excluded_total{reason=\"retiring\"}"), 17) << master.log();
  EXPECT_GT(master.metric("tcp_server_steering_decisions_total{decision=\"steered\"}"), 3000) << master.log();
}

// A binary upgrade: the new master attaches its own program, the old one lets
// go of its maps once the new one serves, and the sockets move to the new
// master's map: after the old master is gone, a stopped worker of the new
// one is avoided.
TEST(Steering, ABinaryUpgradeHandsSteeringToTheNewMaster) {
  TCPFORK_REQUIRE(::geteuid() == 0, "loading the steering program needs root (CAP_BPF, CAP_NET_ADMIN)");
  // The new master is the old one's child; once the old one exits it is
  // re-parented to us, so we can reap (and, on failure, kill) it by pid.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  RunningMaster master(2, kLongTimeout);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_active") == 1; }, 5s)) << master.log();
  ToolRun upgrade = runTool("tcpfork", {"-c", master.configPath(), "-s", "upgrade"}, 30s);
  ASSERT_EQ(upgrade.exitCode, 0) << upgrade.output << master.log();
  pid_t newPid = runningMasterPid(master.pidFile());
  struct KillAtEnd {
    pid_t pid;
    ~KillAtEnd() {
      ::kill(pid, SIGKILL);
      waitUntil([&] { return ::waitpid(pid, nullptr, WNOHANG) == pid; }, 5s);
    }
  } newMaster{newPid};
  ASSERT_TRUE(master.waitForLog("steering: handed over to the new master", 5s)) << master.log();
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(15s).has_value()) << master.log();
  // Metrics now come from the new master only (the old one held the admin
  // socket too until it exited).
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_active") == 1; }, 5s)) << master.log();
  std::set<pid_t> workers = master.servingPids();
  ASSERT_EQ(workers.size(), 2u) << master.log();
  pid_t stopped = *workers.begin();
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_excluded_total{reason=\"stale\"}") == 1; }, 10s))
      << master.log();
  EXPECT_EQ(unansweredWithin(master.port(), 40, 5s), 0);
  EXPECT_GT(master.metric("tcp_server_steering_decisions_total{decision=\"steered\"}"), 0);
  ::kill(stopped, SIGCONT);
  ::kill(newPid, SIGQUIT);
  EXPECT_TRUE(waitUntil([&] { return ::waitpid(newPid, nullptr, WNOHANG) == newPid; }, 15s));
  for (pid_t pid : workers) ::kill(pid, SIGKILL);
}

// Under socket activation (here the test plays systemd: one SO_REUSEPORT
// socket at fd 3, LISTEN_FDS=1) each worker also gets a socket of its own in
// that socket's group, and those are steered: a stopped worker gets no new
// connection.
TEST(Steering, SocketsFromSystemdAreSteeredTheSameWay) {
  TCPFORK_REQUIRE(::geteuid() == 0, "loading the steering program needs root (CAP_BPF, CAP_NET_ADMIN)");
  UniqueFd systemdSocket = listenTcp(parseAddress("127.0.0.1:0"));  // SO_REUSEPORT, as ReusePort=yes
  int port = localAddress(systemdSocket.get()).port();
  std::string name = "tcpfork-test-steered-activation-" + std::to_string(::getpid());
  // A master killed when an assertion fails cannot remove its segment's locator.
  struct RemoveSegment {
    std::string name;
    ~RemoveSegment() { stats::StatsSegment::remove(name); }
  } segment{name};
  std::string log = tempPath("activated.log");
  std::string config = tempPath("activated.yaml");
  std::ofstream(config) << "name: " << name << "\nlisten: 127.0.0.1:0\nworkers: 2\n" << kLongTimeout << "pid_file: "
                        << tempPath("activated.pid") << "\nmetrics:\n  listen: 127.0.0.1:0\nprofile:\n  dir: "
                        << tempPath("activated-profiles") << "\n";
  int fd = systemdSocket.get();
  // The shell keeps its pid through exec, so LISTEN_PID names tcpfork (bash:
  // dash reads only one-digit descriptors in redirections).
  std::string move = fd == 3 ? "" : "exec 3<&" + std::to_string(fd) + " " + std::to_string(fd) + "<&-; ";
  std::string script = move + "export LISTEN_FDS=1 LISTEN_PID=$$; exec " + binary("tcpfork") + " -c " + config;
  ChildProcess master({"/bin/bash", "-c", script}, {fd}, log);
  systemdSocket.reset();
  ASSERT_TRUE(waitUntil([&] { return readFile(log).find("ready: 2 workers serving") != std::string::npos; }, 15s))
      << readFile(log);
  ASSERT_TRUE(waitUntil([&] { return readFile(log).find("steering: on") != std::string::npos; }, 5s)) << readFile(log);
  EXPECT_NE(readFile(log).find("(from systemd, shared by all workers, and 2 sockets of their own in its group)"),
            std::string::npos)
      << readFile(log);
  ASSERT_EQ(unansweredWithin(port, 40, 5s), 0);
  std::set<pid_t> workers = workerPids(name);
  ASSERT_EQ(workers.size(), 2u);
  pid_t stopped = *workers.begin();
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  ASSERT_TRUE(waitUntil([&] { return readFile(log).find("out of rotation: its heartbeat") != std::string::npos; }, 10s))
      << readFile(log);
  EXPECT_EQ(unansweredWithin(port, 40, 5s), 0);
  ::kill(stopped, SIGCONT);
  master.signal(SIGQUIT);
  EXPECT_TRUE(master.waitExit(15s).has_value()) << readFile(log);
  for (pid_t pid : workers) ::kill(pid, SIGKILL);
}

// A master started as `nobody` (by setpriv), with `ambient` capabilities in
// setpriv's form ("+bpf,+net_admin"), or none, in a directory of its own
// that it may write (config, pidfile, profiles).
class MasterAsNobody {
 public:
  explicit MasterAsNobody(const std::string& ambient = "") {
    passwd* nobody = ::getpwnam("nobody");
    if (nobody == nullptr) throw std::runtime_error("no user nobody");
    std::string pattern = "/tmp/tcpfork-unprivileged-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    if (::chown(dir_.c_str(), nobody->pw_uid, nobody->pw_gid) != 0) throw std::runtime_error("chown failed");
    name_ = "tcpfork-unpriv-" + std::to_string(::getpid()) + "-" + std::to_string(++instances_);
    std::string config = dir_ + "/tcpfork.yaml";
    std::ofstream(config) << "name: " << name_ << "\nlisten: 127.0.0.1:0\nworkers: 2\npid_file: " << dir_
                          << "/tcpfork.pid\nmetrics:\n  listen: 127.0.0.1:0\nprofile:\n  dir: " << dir_
                          << "/profiles\n";
    log_ = dir_ + "/master.log";
    std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=" + std::to_string(nobody->pw_uid),
                                      "--regid=" + std::to_string(nobody->pw_gid), "--clear-groups"};
    if (!ambient.empty()) {
      argv.push_back("--inh-caps=" + ambient);
      argv.push_back("--ambient-caps=" + ambient);
    }
    argv.insert(argv.end(), {"--", binary("tcpfork"), "-c", config});
    process_ = std::make_unique<ChildProcess>(argv, std::vector<int>{}, log_);
    if (!waitUntil([&] { return log().find("ready:") != std::string::npos; }, 15s)) {
      throw std::runtime_error("the master did not become ready:\n" + log());
    }
    LoggedPorts ports = portsInLog(log());
    port_ = ports.listen;
    metricsPort_ = ports.metrics;
  }
  ~MasterAsNobody() {
    std::set<pid_t> workers = workerPids(name_);
    process_->signal(SIGQUIT);
    EXPECT_TRUE(process_->waitExit(15s).has_value()) << log();
    for (pid_t pid : workers) ::kill(pid, SIGKILL);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  int port() const { return port_; }
  double metric(const std::string& series) const { return metricValue(httpGet(metricsPort_, "/metrics").body, series); }
  std::string log() const { return readFile(log_); }
  std::set<pid_t> workers() const { return workerPids(name_); }
  pid_t pid() const { return process_->pid(); }

 private:
  static inline int instances_ = 0;
  std::string dir_, name_, log_;
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
  int metricsPort_ = 0;
};


// A master without the privilege to load the program: it says why once,
// reports steering_active 0 and serves as plain reuseport.
TEST(Steering, WithoutThePrivilegeTheSocketsStayPlainReuseport) {
  TCPFORK_REQUIRE(::geteuid() == 0, "needs root to start a master as another user");
  std::string whole;
  {
    MasterAsNobody master;
    EXPECT_NE(master.log().find("steering: off: loading the BPF program was refused"), std::string::npos)
        << master.log();
    EXPECT_EQ(master.metric("tcp_server_steering_active"), 0);
    EXPECT_EQ(unansweredWithin(master.port(), 40, 5s), 0);
    whole = master.log();
  }
  // Said once, not at every tick of the master's life.
  size_t first = whole.find("steering: off");
  EXPECT_EQ(whole.find("steering: off", first + 1), std::string::npos) << whole;
}

// What the systemd unit grants to steer: a user with CAP_BPF and
// CAP_NET_ADMIN as ambient capabilities. The master steers; its workers,
// which run the handler's code, hold no capability at all.
TEST(Steering, AUserWithTheTwoCapabilitiesSteersAndItsWorkersHoldNone) {
  TCPFORK_REQUIRE(::geteuid() == 0, "needs root to start a master as another user");
  MasterAsNobody master("+bpf,+net_admin");
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_steering_active") == 1; }, 5s)) << master.log();
  EXPECT_EQ(statusField(master.pid(), "CapAmb"), "0000008000001000");  // CAP_BPF (39), CAP_NET_ADMIN (12)
  std::set<pid_t> workers = master.workers();
  ASSERT_EQ(workers.size(), 2u);
  for (pid_t pid : workers) {
    for (const char* set : {"CapEff", "CapPrm", "CapAmb"}) {
      EXPECT_EQ(statusField(pid, set), "0000000000000000") << "worker " << pid << " " << set;
    }
  }
  EXPECT_EQ(unansweredWithin(master.port(), 40, 5s), 0);
}

}  // namespace
}  // namespace tcpfork::test
