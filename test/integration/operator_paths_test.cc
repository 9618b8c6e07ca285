// The paths an operator follows from the handbook (docs/) and docs/OPERATIONS.md:
// `tcpfork -c FILE -s ACTION` reaches the master however it was started
// (another --pid-file, as the systemd unit starts it), still stops one whose
// config was broken since, and never signals a process that is not the
// instance's master; `tcpfork -d` logs to journald without log.file, and
// refuses to start when it would have nowhere to log.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "base/unique_fd.h"
#include "stats/segment_locator.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool alive(pid_t pid) { return ::kill(pid, 0) == 0; }

TEST(SignalCommand, ReachesAMasterStartedWithAnotherPidFile) {
  // As the systemd unit starts it: the config names one pidfile (or none),
  // the command line another.
  std::string unitPidFile = tempPath("unit.pid");
  RunningMaster master(1, "", {"--pid-file", unitPidFile});
  ASSERT_TRUE(master.waitServing(1, 10s));
  ASSERT_FALSE(fs::exists(master.pidFile())) << "the config's pidfile must not be the one in use";
  uint64_t before = master.generation();

  ToolRun reload = runTool("tcpfork", {"-c", master.configPath(), "-s", "reload"});
  EXPECT_EQ(reload.exitCode, 0) << reload.output;
  std::string pid = std::to_string(master.process().pid());
  EXPECT_TRUE(contains(reload.output, "master pid " + pid + " found through " +
                                          stats::SegmentLocator::path(master.name()) + " (its pidfile is " +
                                          unitPidFile + ")"))
      << reload.output;
  EXPECT_TRUE(contains(reload.output, "sent SIGHUP (reload) to master pid " + pid)) << reload.output;
  EXPECT_TRUE(waitUntil([&] { return master.generation() > before && master.waitServing(1, 0ms); }, 20s))
      << master.log();

  ToolRun quit = runTool("tcpfork", {"-c", master.configPath(), "-s", "quit"});
  EXPECT_EQ(quit.exitCode, 0) << quit.output;
  EXPECT_TRUE(master.process().waitExit(20s).has_value()) << master.log();
}

TEST(SignalCommand, StillStopsAMasterWhoseConfigNoLongerLoads) {
  RunningMaster master(1);
  ASSERT_TRUE(master.waitServing(1, 10s));
  uint64_t generation = master.generation();
  std::ofstream(master.configPath(), std::ios::app) << "workers: [\n";  // the operator's typo

  // A reload would be refused by the master: not sent, and said so.
  ToolRun reload = runTool("tcpfork", {"-c", master.configPath(), "-s", "reload"});
  EXPECT_EQ(reload.exitCode, 1) << reload.output;
  EXPECT_TRUE(contains(reload.output, master.configPath() + ":")) << reload.output;
  EXPECT_TRUE(contains(reload.output, "YAML syntax error")) << reload.output;
  EXPECT_TRUE(contains(reload.output, "not sent: master pid " + std::to_string(master.process().pid())))
      << reload.output;
  EXPECT_EQ(master.generation(), generation);
  EXPECT_TRUE(master.roundTrip(1));

  ToolRun quit = runTool("tcpfork", {"-c", master.configPath(), "-s", "quit"});
  EXPECT_EQ(quit.exitCode, 0) << quit.output;
  EXPECT_TRUE(contains(quit.output, "the configuration does not load")) << quit.output;
  EXPECT_TRUE(contains(quit.output, "sent SIGQUIT (quit) to master pid " + std::to_string(master.process().pid())))
      << quit.output;
  EXPECT_TRUE(master.process().waitExit(20s).has_value()) << master.log();
}

// A process that is not a tcpfork master, standing where one is looked for.
class Bystander : public ::testing::Test {
 protected:
  void SetUp() override {
    name_ = "tcpfork-test-bystander-" + uniqueTag();
    pidFile_ = tempPath("bystander.pid");
    config_ = tempPath("bystander.yaml");
    std::ofstream(config_) << RunningMaster::baseYaml(name_, pidFile_, 1, tempPath("profiles"));
  }
  void TearDown() override { ::unlink(stats::SegmentLocator::path(name_).c_str()); }

  std::string name_;
  std::string pidFile_;
  std::string config_;
  ChildProcess sleeper_{{"/bin/sleep", "300"}};
};

TEST_F(Bystander, ALockedPidfileNamingAnotherProcessIsNotSignalled) {
  // A live lock on the pidfile, as a running master holds: only the pid in
  // it is not a master of this instance (a recycled pid, a wrong pid_file).
  UniqueFd held(::open(pidFile_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(held);
  ASSERT_EQ(::flock(held.get(), LOCK_EX | LOCK_NB), 0);
  std::string pid = std::to_string(sleeper_.pid()) + "\n";
  ASSERT_EQ(::write(held.get(), pid.data(), pid.size()), ssize_t(pid.size()));

  ToolRun stop = runTool("tcpfork", {"-c", config_, "-s", "stop"});
  EXPECT_EQ(stop.exitCode, 1) << stop.output;
  EXPECT_TRUE(contains(stop.output, "pidfile " + pidFile_ + " names pid " + std::to_string(sleeper_.pid()) +
                                        ", which is not the master of instance '" + name_ + "'"))
      << stop.output;
  EXPECT_TRUE(sleeper_.running()) << "the bystander was signalled";
}

TEST_F(Bystander, ALocatorNamingAnotherProcessIsNotSignalled) {
  // What a master killed outright leaves, with its pid reused since; or a
  // file a local user wrote.
  std::ofstream(stats::SegmentLocator::path(name_))
      << fmt::format("{:>10} {:>10}\npidfile {}\nconfig {}\n", sleeper_.pid(), 3, pidFile_, config_);

  ToolRun stop = runTool("tcpfork", {"-c", config_, "-s", "stop"});
  EXPECT_EQ(stop.exitCode, 1) << stop.output;
  EXPECT_TRUE(contains(stop.output, "no tcpfork master is running for instance '" + name_ + "'")) << stop.output;
  EXPECT_TRUE(contains(stop.output, "names pid " + std::to_string(sleeper_.pid()) + ", which does not run as its master"))
      << stop.output;
  EXPECT_TRUE(sleeper_.running()) << "the bystander was signalled";
}

// `tcpfork -d` in a mount namespace whose /run holds a stand-in for
// journald's stream socket (or nothing, with `--none`): see
// journal_stream_sink.cc. Needs root.
class DaemonLog : public ::testing::Test {
 protected:
  void SetUp() override {
    TCPFORK_REQUIRE(::geteuid() == 0, "needs root: a mount namespace stands in for journald");
    name_ = "tcpfork-test-journal-" + uniqueTag();
    pidFile_ = tempPath("daemon.pid");
    config_ = tempPath("daemon.yaml");
    journal_ = tempPath("journal.stream");
    sinkLog_ = tempPath("sink.log");
    std::ofstream(config_) << RunningMaster::baseYaml(name_, pidFile_, 1, tempPath("profiles"));
  }
  void TearDown() override {
    // The daemon is no child of ours: stop it by the pid it wrote.
    if (fs::exists(pidFile_)) {
      pid_t daemon = std::stoi(readFile(pidFile_));
      ::kill(daemon, SIGKILL);
      waitUntil([&] { return !alive(daemon); }, 10s);
    }
  }

  std::unique_ptr<ChildProcess> startSink(bool journald) {
    std::vector<std::string> argv = {binary("journal_stream_sink")};
    if (!journald) argv.push_back("--none");
    argv.insert(argv.end(), {journal_, binary("tcpfork"), "-c", config_, "-d"});
    return std::make_unique<ChildProcess>(argv, std::vector<int>{}, sinkLog_);
  }
  // The launcher's exit status, as the sink reports it.
  std::optional<int> launcherExit() {
    std::string log = readFile(sinkLog_);
    size_t at = log.find("exit ");
    if (at == std::string::npos) return std::nullopt;
    return std::stoi(log.substr(at + 5));
  }

  std::string name_;
  std::string pidFile_;
  std::string config_;
  std::string journal_;
  std::string sinkLog_;
};

TEST_F(DaemonLog, WithoutALogFileTheMasterAndItsWorkersLogToJournald) {
  auto sink = startSink(true);
  ASSERT_TRUE(waitUntil([&] { return launcherExit().has_value(); }, 30s)) << readFile(sinkLog_);
  ASSERT_EQ(launcherExit(), 0) << readFile(sinkLog_) << readFile(journal_);
  pid_t daemon = std::stoi(readFile(pidFile_));

  // sd_journal_stream_fd's header names the identifier, then the lines follow.
  ASSERT_TRUE(waitUntil([&] { return contains(readFile(journal_), "ready: 1 workers serving"); }, 10s))
      << readFile(journal_);
  std::string stream = readFile(journal_);
  EXPECT_EQ(stream.rfind("tcpfork\n", 0), 0u) << stream;
  EXPECT_TRUE(contains(stream, "[master " + std::to_string(daemon) + "] info: ready: 1 workers serving")) << stream;
  EXPECT_TRUE(contains(stream, "[worker.0 ")) << "the workers inherit the stream:\n" << stream;

  ::kill(daemon, SIGQUIT);
  ASSERT_TRUE(waitUntil([&] { return !alive(daemon); }, 20s));
  EXPECT_TRUE(contains(readFile(journal_), "master exiting")) << readFile(journal_);
  sink->signal(SIGTERM);
  EXPECT_TRUE(sink->waitExit(10s).has_value());
}

TEST_F(DaemonLog, WithNowhereToLogTheDaemonDoesNotStart) {
  auto sink = startSink(false);
  ASSERT_TRUE(waitUntil([&] { return launcherExit().has_value(); }, 30s)) << readFile(sinkLog_);
  EXPECT_EQ(launcherExit(), 1) << readFile(sinkLog_);
  std::string said = readFile(sinkLog_);
  EXPECT_TRUE(contains(said, "journald does not answer")) << said;
  EXPECT_TRUE(contains(said, "set log.file in the config, or --log-file")) << said;
  EXPECT_FALSE(fs::exists(pidFile_)) << "no master may run";
  EXPECT_FALSE(fs::exists(stats::SegmentLocator::path(name_)));
  sink->signal(SIGTERM);
  EXPECT_TRUE(sink->waitExit(10s).has_value());
}

TEST(DaemonLogFile, TheCommandLineCanNameTheLogFile) {
  std::string name = "tcpfork-test-logfile-" + uniqueTag();
  std::string pidFile = tempPath("daemon.pid");
  std::string config = tempPath("daemon.yaml");
  std::string log = tempPath("daemon.log");
  std::ofstream(config) << RunningMaster::baseYaml(name, pidFile, 1, tempPath("profiles"));
  ToolRun start = runTool("tcpfork", {"-c", config, "-d", "--log-file", log}, 30s);
  ASSERT_EQ(start.exitCode, 0) << start.output << readFile(log);
  pid_t daemon = std::stoi(readFile(pidFile));
  EXPECT_TRUE(contains(readFile(log), "ready: 1 workers serving")) << readFile(log);
  ToolRun stop = runTool("tcpfork", {"-c", config, "-s", "quit"});
  EXPECT_EQ(stop.exitCode, 0) << stop.output;
  EXPECT_TRUE(waitUntil([&] { return !alive(daemon); }, 20s));
}

}  // namespace
}  // namespace tcpfork::test
