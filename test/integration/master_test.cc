// The real `tcpfork` master with real workers: supervision, signals, reload,
// pidfile and the command line.

#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

#include <nlohmann/json.hpp>

#include "stats/process_info.h"
#include "stats/segment.h"
#include "test/integration/http_get.h"
#include "test/integration/loopback_port.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

TEST(Master, StartsWorkersThatAllServe) {
  RunningMaster master(3);
  ASSERT_TRUE(master.waitServing(3, 5s));
  auto pids = master.servingPids();
  ASSERT_EQ(pids.size(), 3u);
  for (pid_t pid : pids) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string comm, state;
    pid_t self, parent;
    stat >> self >> comm >> state >> parent;
    EXPECT_EQ(parent, master.process().pid()) << "worker " << pid << " is not the master's child";
  }
  for (uint64_t i = 0; i < 60; ++i) ASSERT_TRUE(master.roundTrip(i)) << "request " << i;
  // Each worker has its own SO_REUSEPORT socket: over 60 connections each one
  // accepts some (the chance that one gets none is below 1e-10).
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(10s).has_value());
  std::regex line(R"(\[worker\.(\d) \d+\] info: stopped: accepted=(\d+))");
  std::string log = master.log();
  int workersThatAccepted = 0;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it) {
    if (std::stoul((*it)[2]) > 0) ++workersThatAccepted;
  }
  EXPECT_EQ(workersThatAccepted, 3) << log;
}

TEST(Master, ReplacesAKilledWorker) {
  RunningMaster master(2);
  ASSERT_TRUE(master.waitServing(2, 5s));
  pid_t victim = *master.servingPids().begin();
  auto killedAt = std::chrono::steady_clock::now();
  ::kill(victim, SIGKILL);
  ASSERT_TRUE(waitUntil(
      [&] {
        auto pids = master.servingPids();
        return pids.size() == 2 && !pids.contains(victim);
      },
      5s))
      << master.log();
  auto replacedAfter = std::chrono::steady_clock::now() - killedAt;
  std::cout << "kill -9 to replacement serving: "
            << std::chrono::duration_cast<std::chrono::microseconds>(replacedAfter).count() / 1000.0 << " ms\n";
  EXPECT_TRUE(master.roundTrip(1));
  EXPECT_TRUE(master.waitForLog("died unexpectedly (killed by SIGKILL); restarting it", 2s)) << master.log();
}

TEST(Master, BacksOffAWorkerThatKeepsDying) {
  RunningMaster master(1);
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(master.waitServing(1, 10s)) << master.log();
    pid_t victim = *master.servingPids().begin();
    ::kill(victim, SIGKILL);
    // The first restart is immediate: the replacement may serve before a poll
    // sees the slot empty, so wait for the victim to be gone, not for none.
    ASSERT_TRUE(waitUntil([&] { return !master.servingPids().contains(victim); }, 2s));
  }
  EXPECT_TRUE(master.waitForLog("exits in a row within 10s of starting; restarting in 0.2s", 3s)) << master.log();
  EXPECT_TRUE(master.waitServing(1, 10s)) << "the slot must keep being restarted";
}

TEST(Master, ReplacesAHungWorker) {
  RunningMaster master(2, "worker_timeout: 1s\n");
  ASSERT_TRUE(master.waitServing(2, 5s));
  pid_t victim = *master.servingPids().begin();
  ::kill(victim, SIGSTOP);  // alive, but its loop no longer beats
  ASSERT_TRUE(waitUntil(
      [&] {
        auto pids = master.servingPids();
        return pids.size() == 2 && !pids.contains(victim);
      },
      8s))
      << master.log();
  EXPECT_TRUE(master.waitForLog("has not beaten for", 1s)) << master.log();
  EXPECT_TRUE(master.waitForLog("killed after its heartbeat stopped", 1s)) << master.log();
  EXPECT_TRUE(master.roundTrip(2));
}

// A worker that hangs while it drains (here: stopped, then retired by TTOU)
// is killed after worker_timeout like any other, not only at its drain
// deadline: until then its connections get no acks.
TEST(Master, KillsAHungDrainingWorker) {
  RunningMaster master(2, "worker_timeout: 1s\ndrain_timeout: 60s\n");
  ASSERT_TRUE(master.waitServing(2, 5s));
  HttpResponse status = httpGet(master.metricsPort(), "/status");
  ASSERT_EQ(status.status, 200);
  pid_t victim = 0;
  nlohmann::json json = nlohmann::json::parse(status.body);
  for (const auto& w : json["workers"]) {
    if (w["index"] == 1) victim = w["pid"].get<pid_t>();
  }
  ASSERT_GT(victim, 0) << status.body;
  ::kill(victim, SIGSTOP);
  master.process().signal(SIGTTOU);  // retires index 1: it now drains, stopped
  ASSERT_TRUE(master.waitForLog("TTOU: now 1 workers", 5s)) << master.log();
  EXPECT_TRUE(waitUntil([&] { return !alive(victim); }, 10s))
      << "a hung draining worker must not live until drain_timeout (60s)\n" << master.log();
  EXPECT_TRUE(master.waitForLog("has not beaten for", 1s)) << master.log();
  EXPECT_TRUE(master.waitServing(1, 5s));
  EXPECT_TRUE(master.roundTrip(4));
}

TEST(Master, ReloadsUnderPipelinedLoadWithoutLosingAnAck) {
  RunningMaster master(2);
  BackgroundClient bench({"--addr", addr(master.port()), "-c", "8", "-w", "64", "-d", "4", "--drain", "3", "-q"});
  for (uint64_t reload = 1; reload <= 3; ++reload) {
    std::this_thread::sleep_for(500ms);  // let load build between reloads
    master.process().signal(SIGHUP);
    ASSERT_TRUE(master.waitForLog("reload: generation " + std::to_string(reload + 1) + " serving", 10s))
        << master.log();
  }
  ToolRun run = bench.finish();
  stopAndExpectNothingLost(master, run);
  EXPECT_GT(run.report["closed_by_server"].get<uint64_t>(), 0u) << "old generations must close their connections";
}

TEST(Master, ReloadWithABrokenConfigKeepsServing) {
  RunningMaster master(2);
  ASSERT_TRUE(master.waitServing(2, 5s));
  auto before = master.servingPids();
  master.writeConfig(RunningMaster::baseYaml(master.name(), master.pidFile(), 2, master.profileDir()) + "workerz: 3\n");
  master.process().signal(SIGHUP);
  ASSERT_TRUE(master.waitForLog("keeps serving", 5s)) << master.log();
  EXPECT_NE(master.log().find(master.configPath() + ":9: workerz: unknown key"), std::string::npos) << master.log();
  EXPECT_EQ(master.servingPids(), before);
  EXPECT_EQ(master.generation(), 1u);
  EXPECT_TRUE(master.roundTrip(3));
}

TEST(Master, ScalesWithTtinAndTtou) {
  RunningMaster master(2);
  ASSERT_TRUE(master.waitServing(2, 5s));
  master.process().signal(SIGTTIN);
  ASSERT_TRUE(master.waitServing(3, 5s)) << master.log();
  // Signals of one kind coalesce until handled: one at a time.
  master.process().signal(SIGTTOU);
  ASSERT_TRUE(master.waitServing(2, 5s)) << master.log();
  master.process().signal(SIGTTOU);
  ASSERT_TRUE(master.waitServing(1, 5s)) << master.log();
  for (uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(master.roundTrip(i)) << master.log();
  master.process().signal(SIGTTOU);
  ASSERT_TRUE(master.waitForLog("TTOU: keeping the last worker", 3s));
}

TEST(Master, QuitDrainsAndCleansUp) {
  RunningMaster master(2, "drain_timeout: 5s\n");
  TestConnection c(master.port());
  for (uint64_t i = 0; i < 50; ++i) c.send(submitFrame(i));
  for (uint64_t i = 0; i < 50; ++i) ASSERT_EQ(c.read(kAckBytes), submitAckFrame(i));
  auto workers = master.servingPids();
  master.process().signal(SIGQUIT);
  EXPECT_TRUE(c.closedWithin(5s));
  c.close();
  auto status = master.process().waitExit(10s);
  ASSERT_TRUE(status.has_value()) << master.log();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  for (pid_t pid : workers) EXPECT_FALSE(alive(pid));
  EXPECT_NE(::access(master.pidFile().c_str(), F_OK), 0) << "pidfile left behind";
  EXPECT_NE(::access(stats::SegmentLocator::path(master.name()).c_str(), F_OK), 0) << "stats segment locator left behind";
}

TEST(Master, TermStopsEverythingAtOnce) {
  RunningMaster master(2);
  auto workers = master.servingPids();
  master.process().signal(SIGTERM);
  auto status = master.process().waitExit(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  for (pid_t pid : workers) EXPECT_TRUE(waitUntil([&] { return !alive(pid); }, 2s));
}

// After kill -9 of the master its workers get SIGTERM (PR_SET_PDEATHSIG) and
// exit within milliseconds. They then wait as zombies until their new parent
// reaps them, which an init that reaps only now and then (as on some VMs and
// containers) does a second or two later: kill(pid, 0) still succeeds on a
// zombie, so it is the wrong probe; the process state is the right one.
TEST(Master, WorkersDieWithTheMaster) {
  RunningMaster master(2);
  auto workers = master.servingPids();
  ASSERT_EQ(workers.size(), 2u);
  auto killedAt = std::chrono::steady_clock::now();
  master.process().signal(SIGKILL);
  for (pid_t pid : workers) {
    EXPECT_TRUE(waitUntil([&] { return !stats::processRunning(pid); }, 1s)) << "worker " << pid;
  }
  std::cout << "kill -9 of the master to its workers exited: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killedAt).count()
            << " ms\n";
  master.process().waitExit(2s);
}

TEST(Master, ASecondMasterOnThePidfileRefuses) {
  RunningMaster master(1);
  std::string config = tempPath("second.yaml");
  std::ofstream(config) << RunningMaster::baseYaml(master.name() + "-2", master.pidFile(), 1, tempPath("second-profiles"));
  ToolRun second = runTool("tcpfork", {"-c", config}, 10s);
  EXPECT_EQ(second.exitCode, 1);
  EXPECT_NE(second.output.find("another tcpfork master (pid " + std::to_string(master.process().pid()) + ") holds"),
            std::string::npos)
      << second.output;
  EXPECT_TRUE(master.roundTrip(1));
}

// A pidfile path that an attacker pre-planted as a symlink (say, to a file
// root owns) is refused rather than followed and truncated.
TEST(Master, RefusesAPidfileThatIsASymlink) {
  std::string victim = tempPath("victim");
  std::ofstream(victim) << "precious\n";
  std::string planted = tempPath("planted.pid");
  ASSERT_EQ(::symlink(victim.c_str(), planted.c_str()), 0);
  std::string config = tempPath("symlink-pid.yaml");
  std::ofstream(config) << RunningMaster::baseYaml("tcpfork-test-pidlink-" + uniqueTag(), planted, 1);
  ToolRun run = runTool("tcpfork", {"-c", config}, 10s);
  EXPECT_EQ(run.exitCode, 1) << run.output;
  EXPECT_NE(run.output.find("open(pidfile " + planted + "): Too many levels of symbolic links"), std::string::npos)
      << run.output;
  EXPECT_EQ(readFile(victim), "precious\n");
  ::unlink(planted.c_str());
}

TEST(Master, TakesOverAStalePidfile) {
  std::string pidFile = tempPath("stale.pid");
  std::ofstream(pidFile) << "999999\n";
  RunningMaster master(1, "", {"--pid-file", pidFile});
  EXPECT_EQ(readFile(pidFile), std::to_string(master.process().pid()) + "\n");
}

TEST(Master, SignalsTheRunningMasterWithDashS) {
  RunningMaster master(1);
  ToolRun reload = runTool("tcpfork", {"-c", master.configPath(), "-s", "reload"});
  EXPECT_EQ(reload.exitCode, 0) << reload.output;
  EXPECT_NE(reload.output.find("sent SIGHUP (reload) to master pid " + std::to_string(master.process().pid())),
            std::string::npos);
  ASSERT_TRUE(master.waitForLog("reload: generation 2 serving", 10s)) << master.log();

  ToolRun stop = runTool("tcpfork", {"-c", master.configPath(), "-s", "stop"});
  EXPECT_EQ(stop.exitCode, 0) << stop.output;
  EXPECT_TRUE(master.process().waitExit(5s).has_value());

  ToolRun none = runTool("tcpfork", {"-c", master.configPath(), "-s", "reload"});
  EXPECT_EQ(none.exitCode, 1);
  EXPECT_NE(none.output.find("no tcpfork master is running"), std::string::npos) << none.output;
}

TEST(Master, DaemonizesAndReportsReadiness) {
  std::string name = "tcpfork-test-daemon-" + uniqueTag();
  std::string pidFile = tempPath("daemon.pid");
  std::string log = tempPath("daemon.log");
  std::string config = tempPath("daemon.yaml");
  std::ofstream(config) << RunningMaster::baseYaml(name, pidFile, 1, tempPath("daemon-profiles")) << "log:\n  file: "
                        << log << "\n";
  ToolRun start = runTool("tcpfork", {"-c", config, "-d"}, 15s);
  ASSERT_EQ(start.exitCode, 0) << start.output << readFile(log);
  pid_t daemon = std::stoi(readFile(pidFile));
  EXPECT_TRUE(alive(daemon));
  EXPECT_NE(readFile(log).find("ready: 1 workers serving"), std::string::npos) << readFile(log);
  ToolRun stop = runTool("tcpfork", {"-c", config, "-s", "stop"});
  EXPECT_EQ(stop.exitCode, 0);
  EXPECT_TRUE(waitUntil([&] { return !alive(daemon); }, 5s));
}

TEST(Master, DaemonSaysWhyItCouldNotStart) {
  std::string config = tempPath("busy.yaml");
  UniqueFd taken = listenTcp(parseAddress("127.0.0.1:0"), {.backlog = 16, .reusePort = false});
  std::string busy = localAddress(taken.get()).toString();
  std::ofstream(config) << "name: tcpfork-test-busy-" << uniqueTag() << "\nlisten: " << busy << "\npid_file: "
                        << tempPath("busy.pid") << "\nprofile:\n  dir: " << tempPath("busy-profiles")
                        << "\nmetrics:\n  listen: 127.0.0.1:0\n"  // not the default 8889 another server may hold
                        << "log:\n  file: " << tempPath("busy.log") << "\n";
  ToolRun start = runTool("tcpfork", {"-c", config, "-d"}, 15s);
  EXPECT_EQ(start.exitCode, 1);
  EXPECT_NE(start.output.find("bind(" + busy + "): Address already in use"), std::string::npos) << start.output;
}

TEST(MasterCli, TestsAGoodConfig) {
  std::string config = tempPath("good.yaml");
  std::ofstream(config) << "workers: 3\nlisten: [\"127.0.0.1:9001\", \"[::1]:9001\"]\nidle_timeout: 30s\n";
  ToolRun run = runTool("tcpfork", {"-t", "-c", config});
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_NE(run.output.find("is valid (3 workers on 127.0.0.1:9001, [::1]:9001"), std::string::npos) << run.output;
}

TEST(MasterCli, NamesTheKeyAndLineOfABadConfig) {
  struct Case {
    std::string yaml;
    std::string message;
  };
  for (const auto& c : {Case{"workers: 2\nworkerz: 3\n", ":2: workerz: unknown key"},
                        Case{"workers: many\n", ":1: workers: expected a whole number, got 'many'"},
                        Case{"idle_timeout: soon\n", ":1: idle_timeout: expected a duration"},
                        Case{"log:\n  level: loud\n", ":2: log.level: expected one of"},
                        Case{"listen: 127.0.0.1\n", ":1: listen: address '127.0.0.1' has no ':PORT'"},
                        Case{"workers: [1\n", ":2: YAML syntax error"}}) {
    std::string config = tempPath("bad.yaml");
    std::ofstream(config) << c.yaml;
    ToolRun run = runTool("tcpfork", {"-t", "-c", config});
    EXPECT_EQ(run.exitCode, 1) << c.yaml;
    EXPECT_NE(run.output.find(config + c.message), std::string::npos) << run.output;
  }
}

// Checks that compare keys run once the whole file is read; they still name
// the line to edit, and a value a flag set.
TEST(MasterCli, NamesTheLineOfAKeyThatContradictsAnother) {
  struct Case {
    std::string yaml;
    std::vector<std::string> flags;
    std::string message;
  };
  for (const auto& c :
       {Case{"max_frame_bytes: 4096\nmax_buffered_bytes: 5000\n", {},
             ":2: max_buffered_bytes: 5000 is less than one connection may hold: max_frame_bytes (4096, line 1) + "
             "output_high_water (262144, the default) = 266240\n"},
        Case{"name: edge\nmax_frame_bytes: 2147483647\n", {},
             ":2: max_buffered_bytes: 67108864 (the default: the file does not set it) is less than one connection "
             "may hold: max_frame_bytes (2147483647, line 2) + "},
        Case{"max_workers: 4\n", {"--workers", "9"},
             ":1: workers: 9 (set by --workers) is more than max_workers (4, line 1)\n"}}) {
    std::string config = tempPath("contradicts.yaml");
    std::ofstream(config) << c.yaml;
    std::vector<std::string> args = {"-t", "-c", config};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    ToolRun run = runTool("tcpfork", args);
    EXPECT_EQ(run.exitCode, 1) << c.yaml;
    EXPECT_NE(run.output.find("tcpfork: " + config + c.message), std::string::npos) << run.output;
  }
}

}  // namespace
}  // namespace tcpfork::test

namespace tcpfork::test {
namespace {

std::string minimalConfig(const std::string& name, const std::string& extra) {
  std::string path = tempPath(name + ".yaml");
  std::ofstream(path) << RunningMaster::baseYaml(name, tempPath(name + ".pid"), 1, tempPath(name + "-profiles")) << extra;
  return path;
}

TEST(Master, ReopensLogFilesOnUsr1) {
  std::string name = "tcpfork-test-usr1-" + uniqueTag();
  std::string log = tempPath("rotating.log");
  ChildProcess master({binary("tcpfork"), "-c", minimalConfig(name, "log:\n  file: " + log + "\n")});
  ASSERT_TRUE(waitUntil([&] { return readFile(log).find("ready:") != std::string::npos; }, 10s)) << readFile(log);
  ASSERT_EQ(::rename(log.c_str(), (log + ".1").c_str()), 0);
  master.signal(SIGUSR1);
  EXPECT_TRUE(waitUntil(
      [&] {
        std::string fresh = readFile(log);
        return fresh.find("[master") != std::string::npos && fresh.find("[worker.0") != std::string::npos;
      },
      5s))
      << "after rotation: " << readFile(log);
  EXPECT_EQ(readFile(log + ".1").find("reopened log file"), std::string::npos) << "workers kept the old file";
  master.signal(SIGTERM);
  EXPECT_TRUE(master.waitExit(5s).has_value());
}

TEST(Master, WorkersDropToTheConfiguredUser) {
  TCPFORK_REQUIRE(::geteuid() == 0, "needs root to switch users");
  TCPFORK_SKIP_UNLESS_NOBODY_REACHES_THE_BUILD();
  RunningMaster master(1, "user: nobody\n");
  ASSERT_TRUE(master.waitServing(1, 5s)) << master.log();
  pid_t worker = *master.servingPids().begin();
  // Real, effective, saved and filesystem uid.
  std::string uid = statusField(worker, "Uid");
  passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  EXPECT_NE(("\t" + uid).find("\t" + std::to_string(nobody->pw_uid) + "\t"), std::string::npos) << uid;
  EXPECT_TRUE(master.roundTrip(1));
  // The instance's name stays the master's: the workers get the segment as a descriptor.
  struct stat st {};
  ASSERT_EQ(::stat(stats::SegmentLocator::path(master.name()).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ::geteuid());
}

}  // namespace
}  // namespace tcpfork::test

namespace tcpfork::test {
namespace {

// Not root, with `user` set: the master says once that workers keep its uid
// (it resolved the identity four times, and said it four times).
TEST(Master, WarnsOnceWhenItCannotSwitchUsers) {
  // Under /tmp itself: the test's own temp dir is 0700, closed to `nobody`.
  char pattern[] = "/tmp/tcpfork-unprivileged-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  std::string dir = pattern;
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } removeDir{dir};
  fs::permissions(dir, fs::perms::all);
  std::string config = dir + "/tcpfork.yaml";
  std::ofstream(config) << RunningMaster::baseYaml("tcpfork-test-unprivileged-" + uniqueTag(), dir + "/tcpfork.pid", 1,
                                                   dir + "/profiles")
                        << "user: nobody\n";
  std::string log = tempPath("unprivileged.log");
  ChildProcess master({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", binary("tcpfork"), "-c",
                       config},
                      {}, log);
  ASSERT_TRUE(waitUntil([&] { return readFile(log).find("ready:") != std::string::npos; }, 15s)) << readFile(log);
  std::string text = readFile(log);
  EXPECT_EQ(count(text, "user/group set but not running as root"), 1u) << text;
  master.signal(SIGTERM);
  EXPECT_TRUE(master.waitExit(5s).has_value());
}

// A worker that exits with the fatal code (2: it cannot serve as configured)
// is not restarted at once, however it got there; the index shows as
// workers{state="fatal"} while the master backs off.
TEST(Master, AWorkerThatExitsWithTheFatalCodeIsNotRestartedAtOnce) {
  std::string bin = tempPath("fatal-bin");
  fs::create_directories(bin);
  fs::copy_file(binary("tcpfork"), bin + "/tcpfork");
  fs::copy_file(binary("tcpfork-worker"), bin + "/tcpfork-worker");
  std::string name = "tcpfork-test-fatal-" + uniqueTag();
  std::string config = tempPath("fatal.yaml");
  std::ofstream(config) << RunningMaster::baseYaml(name, tempPath("fatal.pid"), 1, tempPath("fatal-profiles"));
  std::string log = tempPath("fatal.log");
  ChildProcess master({bin + "/tcpfork", "-c", config}, {}, log);
  ASSERT_TRUE(waitUntil([&] { return readFile(log).find("ready:") != std::string::npos; }, 10s)) << readFile(log);
  std::smatch m;
  std::string text = readFile(log);
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)")));
  int adminPort = std::stoi(m[1]);

  fs::remove(bin + "/tcpfork-worker");
  std::ofstream(bin + "/tcpfork-worker") << "#!/bin/sh\necho 'cannot serve: this test says so' >&2\nexit 2\n";
  fs::permissions(bin + "/tcpfork-worker", fs::perms::owner_all);
  master.signal(SIGTTIN);  // worker 1 starts from the broken binary: its first exit is the fatal one
  ASSERT_TRUE(waitUntil([&] { return readFile(log).find("worker 1 (pid") != std::string::npos &&
                                     readFile(log).find("exited with the fatal code 2") != std::string::npos; },
                        5s))
      << readFile(log);
  EXPECT_EQ(count(readFile(log), "died unexpectedly (exit status 2); restarting it"), 0u) << readFile(log);
  EXPECT_TRUE(waitUntil([&] { return metricValue(httpGet(adminPort, "/metrics").body, "tcp_server_workers{state=\"fatal\"}") == 1; },
                        5s))
      << httpGet(adminPort, "/metrics").body;
  master.signal(SIGTERM);
  EXPECT_TRUE(master.waitExit(5s).has_value());
}

TEST(Master, ServesSocketsHandedOverBySystemd) {
  constexpr const char* kActivate = "/usr/bin/systemd-socket-activate";
  TCPFORK_REQUIRE(::access(kActivate, X_OK) == 0, "systemd-socket-activate (Debian package systemd) not installed");
  // systemd-socket-activate binds the port it is given (not 0): held for it
  // until the end, so that nothing else takes it first.
  BoundPort reserved = reservedLoopbackPort();
  int port = reserved.port;
  std::string name = "tcpfork-test-activated-" + uniqueTag();
  std::string log = tempPath("activated.log");
  std::string config = tempPath("activated.yaml");
  std::ofstream(config) << "name: " << name << "\nworkers: 2\npid_file: " << tempPath("activated.pid")
                        << "\nmetrics:\n  listen: 127.0.0.1:0\nprofile:\n  dir: " << tempPath("activated-profiles") << "\n";
  // systemd-socket-activate binds, then execs tcpfork (same pid) on the first connection.
  ChildProcess activator({kActivate, "-l", "127.0.0.1:" + std::to_string(port), binary("tcpfork"), "-c", config}, {},
                         log);
  ASSERT_TRUE(waitUntil(
      [&] {
        try {
          TestConnection probe(port, 100ms);
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      5s));
  TestConnection c(port, 5s);
  c.send(submitFrame(5));
  EXPECT_EQ(c.read(kAckBytes), submitAckFrame(5)) << readFile(log);
  EXPECT_TRUE(waitUntil([&] { return readFile(log).find("ready: 2 workers serving") != std::string::npos; }, 5s));
  EXPECT_NE(readFile(log).find("127.0.0.1:" + std::to_string(port) + " (from systemd, shared by all workers)"),
            std::string::npos)
      << readFile(log);
  activator.signal(SIGTERM);
  EXPECT_TRUE(activator.waitExit(5s).has_value());
}

}  // namespace
}  // namespace tcpfork::test
