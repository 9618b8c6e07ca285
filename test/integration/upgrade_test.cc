// Binary upgrade (SIGUSR2 / `tcpfork -s upgrade`): a new master takes over
// the sockets and the stats segment without a failed connect or a lost ack;
// a new master that fails, before or after it served, leaves the old one in
// charge; QUIT to the old master at any moment of an upgrade hands over first.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <regex>
#include <thread>

#include "master/pidfile.h"
#include "stats/segment.h"
#include "test/integration/http_get.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

std::optional<pid_t> pidIn(const std::string& pidFile) {
  try {
    return runningMasterPid(pidFile);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The master tcpfork-stats is pointed at for the segment of `name`.
std::optional<pid_t> segmentMaster(const std::string& name) {
  try {
    return stats::SegmentLocator::find(name).pid;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The new master is the old one's child; once the old one exits it is
// re-parented to us (we are a subreaper), so we can kill and reap it by pid.
class AdoptedMaster {
 public:
  explicit AdoptedMaster(pid_t pid) : pid_(pid) {}
  ~AdoptedMaster() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    waitUntil([&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_ || ::kill(pid_, 0) != 0; }, 5s);
  }
  AdoptedMaster(const AdoptedMaster&) = delete;
  AdoptedMaster& operator=(const AdoptedMaster&) = delete;
  // Once it has been reaped: its pid may be reused, so it is no longer ours to kill.
  void forget() { pid_ = 0; }

 private:
  pid_t pid_;
};

class Upgrade : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }
};

// The pid the old master logged for the new master it started.
std::optional<pid_t> startedMaster(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"(SIGUSR2: binary upgrade: started \S+ as master pid (\d+))"))) {
    return std::nullopt;
  }
  return pid_t(std::stoi(m[1]));
}

// USR2 to `master`, and the new master it starts stopped before it can serve
// (that takes at least one 100 ms tick after its start); 0 on failure.
pid_t startUpgradeHeldBeforeServing(RunningMaster& master) {
  EXPECT_TRUE(master.waitServing(1, 5s));
  master.process().signal(SIGUSR2);
  EXPECT_TRUE(master.waitForLog("SIGUSR2: binary upgrade: started", 5s)) << master.log();
  auto newPid = startedMaster(master.log());
  if (!newPid) return 0;
  ::kill(*newPid, SIGSTOP);
  return *newPid;
}

bool gone(pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) == pid || ::kill(pid, 0) != 0; }

TEST_F(Upgrade, UnderPipelinedLoadLosesNoAckAndKeepsCounters) {
  RunningMaster master(2);
  ASSERT_TRUE(master.waitServing(2, 5s));
  pid_t oldPid = master.process().pid();
  BackgroundClient bench({"--addr", addr(master.port()), "-c", "8", "-w", "64", "-d", "4", "--drain", "3", "-q"});
  std::this_thread::sleep_for(1s);  // load builds up on the old workers
  double before = metricValue(master.scrape(), "tcp_server_req_recv_total");
  ASSERT_GT(before, 0);

  ToolRun signal = runTool("tcpfork", {"-c", master.configPath(), "-s", "upgrade"}, 30s);
  ASSERT_EQ(signal.exitCode, 0) << signal.output << master.log();
  auto newPid = pidIn(master.pidFile());
  ASSERT_TRUE(newPid && *newPid != oldPid) << signal.output;
  AdoptedMaster adopted(*newPid);
  EXPECT_NE(signal.output.find("new master pid " + std::to_string(*newPid) + " serves"), std::string::npos)
      << signal.output;
  EXPECT_EQ(pidIn(master.pidFile() + ".oldbin"), oldPid);
  EXPECT_TRUE(master.waitForLog("binary upgrade from master pid " + std::to_string(oldPid), 5s)) << master.log();
  double during = metricValue(master.scrape(), "tcp_server_req_recv_total");
  EXPECT_GE(during, before) << "counters must not reset across an upgrade";

  std::this_thread::sleep_for(500ms);  // both generations serve side by side
  master.process().signal(SIGQUIT);
  // The draining old master leaves the shared admin socket to the new one:
  // no health probe may land on it and see 503.
  ASSERT_TRUE(master.waitForLog("SIGQUIT: graceful stop", 5s)) << master.log();
  for (int probe = 0; probe < 20; ++probe) {
    HttpResponse health = httpGet(master.metricsPort(), "/healthz");
    EXPECT_EQ(health.status, 200) << "probe " << probe << ": " << health.body;
  }
  ASSERT_TRUE(master.process().waitExit(15s).has_value()) << master.log();
  EXPECT_FALSE(fs::exists(master.pidFile() + ".oldbin")) << "the old master removes its .oldbin pidfile";
  EXPECT_EQ(segmentMaster(master.name()), newPid) << "the segment now belongs to the new master";
  ToolRun stats = runTool("tcpfork-stats", {"--name", master.name(), "--once"}, 10s);
  EXPECT_EQ(stats.exitCode, 0) << stats.output;
  EXPECT_NE(stats.output.find("master pid " + std::to_string(*newPid)), std::string::npos) << stats.output;

  ToolRun run = bench.finish();
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_EQ(run.report["connects_failed"], 0);
  EXPECT_EQ(run.report["errors_total"], 0);
  // Every request a worker of either master read was acked; the counters the
  // new master exports include what the old master's workers counted.
  std::string after = master.scrape();
  EXPECT_EQ(uint64_t(metricValue(after, "tcp_server_req_recv_total")), run.report["acked"].get<uint64_t>()) << after;
  EXPECT_GE(metricValue(after, "tcp_server_req_recv_total"), during);
  EXPECT_EQ(metricValue(after, "tcp_server_generation"), 2);
  EXPECT_TRUE(master.roundTrip(1));
  std::cout << "upgrade under load: " << run.report["acked"] << " acks, " << run.report["connects_failed"]
            << " connects failed, " << run.report["closed_by_server"] << " connections closed by the old workers ("
            << run.report["unacked_on_closed"] << " requests in flight on them unread)\n";

  ::kill(*newPid, SIGQUIT);
  EXPECT_TRUE(waitUntil([&] { return ::waitpid(*newPid, nullptr, WNOHANG) == *newPid; }, 15s));
  EXPECT_FALSE(fs::exists(stats::SegmentLocator::path(master.name()))) << "the last master removes the segment";
}

TEST_F(Upgrade, ANewMasterThatCannotStartLeavesTheOldOneInCharge) {
  RunningMaster master(2);
  ASSERT_TRUE(master.waitServing(2, 5s));
  auto workers = master.servingPids();
  // The new master reads the config again: a broken one stops it at start.
  master.writeConfig(RunningMaster::baseYaml(master.name(), master.pidFile(), 2, master.profileDir()) + "workerz: 3\n");
  master.process().signal(SIGUSR2);
  ASSERT_TRUE(master.waitForLog("binary upgrade failed", 10s)) << master.log();
  EXPECT_NE(master.log().find("workerz: unknown key"), std::string::npos) << master.log();
  EXPECT_TRUE(waitUntil([&] { return pidIn(master.pidFile()) == master.process().pid(); }, 5s));
  EXPECT_FALSE(fs::exists(master.pidFile() + ".oldbin"));
  EXPECT_EQ(master.servingPids(), workers);
  EXPECT_TRUE(master.roundTrip(1));
  EXPECT_EQ(segmentMaster(master.name()), master.process().pid());
}

TEST_F(Upgrade, TheOldMasterTakesBackWhenTheNewOneDies) {
  RunningMaster master(2);
  ASSERT_TRUE(master.waitServing(2, 5s));
  master.process().signal(SIGUSR2);
  ASSERT_TRUE(master.waitForLog("serves beside it until it gets SIGQUIT", 10s)) << master.log();
  auto newPid = pidIn(master.pidFile());
  ASSERT_TRUE(newPid && *newPid != master.process().pid());
  std::vector<pid_t> newWorkers = childPids(*newPid);
  ASSERT_EQ(newWorkers.size(), 2u);
  ::kill(*newPid, SIGKILL);
  ASSERT_TRUE(master.waitForLog("exited after it served", 5s)) << master.log();
  EXPECT_TRUE(waitUntil([&] { return pidIn(master.pidFile()) == master.process().pid(); }, 5s));
  // Its workers die with it (re-parented to us, the subreaper, we reap them).
  // Until they have, one may accept a connection on the shared socket and
  // then stop at once, closing it unanswered: the fast stop of a worker whose
  // master is gone. So the old generation is asked only once they are gone.
  for (pid_t worker : newWorkers) {
    EXPECT_TRUE(waitUntil([&] { return ::waitpid(worker, nullptr, WNOHANG) == worker || ::kill(worker, 0) != 0; }, 10s))
        << "worker " << worker << " of the killed master still runs";
  }
  EXPECT_TRUE(master.roundTrip(2));
  EXPECT_TRUE(master.waitServing(2, 5s));
  EXPECT_EQ(segmentMaster(master.name()), master.process().pid());
  // The old master owns the segment again and removes it on exit.
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(15s).has_value());
  EXPECT_TRUE(waitUntil([&] { return !fs::exists(stats::SegmentLocator::path(master.name())); }, 5s));
}

// nginx's rule: the new master refuses another upgrade while the master it
// replaced still runs. Otherwise its pidfile is renamed over the old one's
// .oldbin, QUIT to ".oldbin" stops the wrong master, and the first one serves
// on with no pidfile at all.
TEST_F(Upgrade, ASecondUpgradeWaitsUntilTheOldMasterHasExited) {
  RunningMaster master(1);
  ASSERT_TRUE(master.waitServing(1, 5s));
  pid_t first = master.process().pid();
  ToolRun upgrade = runTool("tcpfork", {"-c", master.configPath(), "-s", "upgrade"}, 30s);
  ASSERT_EQ(upgrade.exitCode, 0) << upgrade.output << master.log();
  auto second = pidIn(master.pidFile());
  ASSERT_TRUE(second && *second != first);
  AdoptedMaster adoptedSecond(*second);

  ::kill(*second, SIGUSR2);
  ASSERT_TRUE(master.waitForLog("SIGUSR2: ignoring: the master this one replaced (pid " + std::to_string(first), 5s))
      << master.log();
  EXPECT_EQ(pidIn(master.pidFile()), second);
  EXPECT_EQ(pidIn(master.pidFile() + ".oldbin"), first);
  ToolRun refused = runTool("tcpfork", {"-c", master.configPath(), "-s", "upgrade"}, 30s);
  EXPECT_EQ(refused.exitCode, 1) << refused.output;
  EXPECT_NE(refused.output.find("an upgrade is still under way: the old master pid " + std::to_string(first)),
            std::string::npos)
      << refused.output;

  // Finishing the first upgrade makes the second one possible.
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(15s).has_value()) << master.log();
  EXPECT_FALSE(fs::exists(master.pidFile() + ".oldbin"));
  ToolRun again = runTool("tcpfork", {"-c", master.configPath(), "-s", "upgrade"}, 30s);
  ASSERT_EQ(again.exitCode, 0) << again.output << master.log();
  auto third = pidIn(master.pidFile());
  ASSERT_TRUE(third && *third != *second) << again.output;
  AdoptedMaster adoptedThird(*third);
  EXPECT_EQ(pidIn(master.pidFile() + ".oldbin"), second);
  EXPECT_TRUE(master.roundTrip(1));

  ::kill(*second, SIGQUIT);
  EXPECT_TRUE(waitUntil([&] { return ::waitpid(*second, nullptr, WNOHANG) == *second; }, 15s));
  EXPECT_EQ(pidIn(master.pidFile()), third) << "the master left serving is the one the pidfile names";
  ::kill(*third, SIGQUIT);
  EXPECT_TRUE(waitUntil([&] { return ::waitpid(*third, nullptr, WNOHANG) == *third; }, 15s));
  EXPECT_FALSE(fs::exists(stats::SegmentLocator::path(master.name()))) << "the last master removes the segment";
  EXPECT_FALSE(fs::exists(master.pidFile()));
}

// As the systemd unit runs it: the pidfile is the command line's, not the
// config's. `-s upgrade` finds the master through its instance, follows the
// pidfile it holds, and `-s quit` reaches the new master the same way.
TEST_F(Upgrade, FollowsAMasterStartedWithAnotherPidFile) {
  std::string unitPidFile = tempPath("unit.pid");
  RunningMaster master(1, "", {"--pid-file", unitPidFile});
  ASSERT_TRUE(master.waitServing(1, 10s));
  pid_t oldPid = master.process().pid();
  ToolRun upgrade = runTool("tcpfork", {"-c", master.configPath(), "-s", "upgrade"}, 30s);
  ASSERT_EQ(upgrade.exitCode, 0) << upgrade.output << master.log();
  auto newPid = pidIn(unitPidFile);
  ASSERT_TRUE(newPid && *newPid != oldPid) << upgrade.output;
  AdoptedMaster adopted(*newPid);
  EXPECT_NE(upgrade.output.find("new master pid " + std::to_string(*newPid) + " serves"), std::string::npos)
      << upgrade.output;
  EXPECT_EQ(pidIn(unitPidFile + ".oldbin"), oldPid);
  EXPECT_FALSE(fs::exists(master.pidFile()));

  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(15s).has_value()) << master.log();
  EXPECT_TRUE(master.roundTrip(1));
  ToolRun quit = runTool("tcpfork", {"-c", master.configPath(), "-s", "quit"});
  EXPECT_EQ(quit.exitCode, 0) << quit.output;
  EXPECT_NE(quit.output.find("sent SIGQUIT (quit) to master pid " + std::to_string(*newPid)), std::string::npos)
      << quit.output;
  EXPECT_TRUE(waitUntil([&] { return ::waitpid(*newPid, nullptr, WNOHANG) == *newPid; }, 15s));
  adopted.forget();
}

// QUIT to the old master at any moment of an upgrade, from before the new
// master is started (QUIT in the same wake-up as USR2) to after it serves,
// means "hand over, then go": the old master serves until the new one does,
// then drains. A storm of new connections throughout sees no failure, and the
// one master left is the new one, named by the pidfile. The parameter is the
// delay from USR2 to QUIT in ms; -1 sends QUIT once the new master serves.
class QuitDuringUpgrade : public Upgrade, public ::testing::WithParamInterface<int> {};

TEST_P(QuitDuringUpgrade, TheOldMasterHandsOverThenGoes) {
  RunningMaster master(1);
  ASSERT_TRUE(master.waitServing(1, 5s));
  pid_t oldPid = master.process().pid();
  const std::string accepted = "tcp_server_connections_accepted_total";
  // Lets the storm run: at least 200 new connections since `since`.
  auto stormRuns = [&](double since) { return waitUntil([&] { return master.metric(accepted) >= since + 200; }, 15s); };
  BackgroundClient storm({"--addr", addr(master.port()), "-c", "4", "-d", "60", "--timeout", "10", "-q"}, "connects");
  ASSERT_TRUE(stormRuns(0)) << master.log();

  master.process().signal(SIGUSR2);
  if (GetParam() >= 0) {
    // Not a wait for an event: the delay is the moment under test.
    std::this_thread::sleep_for(std::chrono::milliseconds(GetParam()));
  } else {
    ASSERT_TRUE(master.waitForLog("serves beside it until it gets SIGQUIT", 15s)) << master.log();
  }
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();
  auto newPid = pidIn(master.pidFile());
  ASSERT_TRUE(newPid && *newPid != oldPid) << "the old master exited and left no master serving:\n" << master.log();
  AdoptedMaster adopted(*newPid);
  EXPECT_FALSE(fs::exists(master.pidFile() + ".oldbin"));
  // One master alive: the old one has exited (reaped above), and the new one
  // has only its worker for a child.
  EXPECT_EQ(::kill(*newPid, 0), 0);
  EXPECT_EQ(childPids(*newPid).size(), 1u);
  EXPECT_TRUE(master.roundTrip(1));
  ASSERT_TRUE(stormRuns(master.metric(accepted))) << "the storm goes on against the new master\n" << master.log();

  storm.interrupt();
  ToolRun run = storm.finish(30s);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_EQ(run.report["failed"], 0) << run.output << master.log();
  EXPECT_EQ(run.report["wrong_acks"], 0) << run.output;
  // The old master's log says what happened: no failed upgrade, a graceful stop.
  std::string log = master.log();
  EXPECT_EQ(log.find("binary upgrade failed"), std::string::npos) << log;
  EXPECT_NE(log.find("[master " + std::to_string(oldPid) + "] info: SIGQUIT: graceful stop"), std::string::npos) << log;
  std::cout << "QUIT " << (GetParam() < 0 ? "once the new master served" : std::to_string(GetParam()) + " ms after USR2")
            << ": " << run.report["acked"] << " connects acked, " << run.report["failed"] << " failed\n";

  ::kill(*newPid, SIGQUIT);
  EXPECT_TRUE(waitUntil([&] { return ::waitpid(*newPid, nullptr, WNOHANG) == *newPid; }, 15s));
  EXPECT_FALSE(fs::exists("/dev/shm/" + master.name() + ".stats")) << "the last master removes the segment's name";
  EXPECT_FALSE(fs::exists(master.pidFile()));
}

INSTANTIATE_TEST_SUITE_P(Delays, QuitDuringUpgrade, ::testing::Values(0, 5, 20, 50, 200, -1),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param < 0 ? std::string("OnceTheNewMasterServes")
                                                 : "After" + std::to_string(info.param) + "ms";
                         });

// A QUIT that waits for the new master is dropped when the new master fails
// instead: the old one serves on rather than leave nothing serving, and says so.
TEST_F(Upgrade, AQuitWaitingForANewMasterThatFailsIsDropped) {
  RunningMaster master(1);
  std::optional<pid_t> newPid = startUpgradeHeldBeforeServing(master);
  ASSERT_TRUE(*newPid > 0) << master.log();
  AdoptedMaster adopted(*newPid);
  std::vector<pid_t> newWorkers = childPids(*newPid);
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.waitForLog("SIGQUIT: the new master (pid " + std::to_string(*newPid) + ") is still starting", 5s))
      << master.log();
  EXPECT_TRUE(master.roundTrip(1)) << "the old master serves while it waits";
  ::kill(*newPid, SIGKILL);
  ASSERT_TRUE(master.waitForLog("drops the SIGQUIT it got while the new master started", 5s)) << master.log();
  adopted.forget();  // the old master reaped it before it said so
  // Its workers die with it; until they have, one may take a connection and
  // close it unanswered (see TheOldMasterTakesBackWhenTheNewOneDies).
  for (pid_t worker : newWorkers) {
    EXPECT_TRUE(waitUntil([&] { return gone(worker); }, 10s)) << "worker " << worker << " of the killed master still runs";
  }
  EXPECT_TRUE(waitUntil([&] { return pidIn(master.pidFile()) == master.process().pid(); }, 5s));
  EXPECT_FALSE(fs::exists(master.pidFile() + ".oldbin"));
  EXPECT_TRUE(master.process().running());
  EXPECT_TRUE(master.roundTrip(2));
  EXPECT_TRUE(master.waitServing(1, 5s));
}

// TERM, by contrast, stops the service fast: a new master that does not serve
// yet is killed with the old one, and the log says so instead of "serves on".
TEST_F(Upgrade, AFastStopWhileTheNewMasterStartsStopsBoth) {
  RunningMaster master(1);
  std::optional<pid_t> newPid = startUpgradeHeldBeforeServing(master);  // it cannot serve before the TERM
  ASSERT_TRUE(*newPid > 0) << master.log();
  AdoptedMaster adopted(*newPid);
  master.process().signal(SIGTERM);
  ASSERT_TRUE(master.process().waitExit(15s).has_value()) << master.log();
  ASSERT_TRUE(waitUntil([&] { return gone(*newPid); }, 5s));
  adopted.forget();
  std::string log = master.log();
  EXPECT_NE(log.find("this master is stopping, so it killed the new master (pid " + std::to_string(*newPid) +
                     ") before it served; master pid " + std::to_string(master.process().pid()) +
                     " is stopping as it was told, and no master serves after it"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("serves on"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(master.pidFile()));
  EXPECT_FALSE(fs::exists(master.pidFile() + ".oldbin"));
}

}  // namespace
}  // namespace tcpfork::test
