// The master-to-worker contract: what toArgv writes, parseWorkerArgs reads
// back exactly, for every field; and bad command lines are refused.

#include <gtest/gtest.h>

#include "contract/worker_settings.h"

namespace tcpfork {
namespace {

WorkerArgs roundTrip(const WorkerArgs& args) {
  std::vector<std::string> argv = {"tcpfork-worker"};
  for (auto& a : toArgv(args)) argv.push_back(a);
  return parseWorkerArgs(argv);
}

TEST(Contract, EveryFieldSurvivesTheCommandLine) {
  WorkerArgs a;
  a.settings.maxConnections = 123;
  a.settings.limits.maxFrameBytes = 4096;
  a.settings.limits.idleTimeout = std::chrono::milliseconds(1500);
  a.settings.limits.outputHighWater = 65536;
  a.settings.maxBufferedBytes = 8 << 20;
  a.settings.rlimitNofile = 65536;
  a.cpu = 1;
  a.settings.drainTimeout = std::chrono::milliseconds(2500);
  a.settings.logLevel = "debug";
  a.settings.logFile = "/var/log/tcpfork/worker log.txt";
  a.settings.name = "edge";
  a.settings.profileDir = "/tmp/p";
  a.settings.profileDuration = std::chrono::milliseconds(30'000);
  a.settings.handler.module = "/usr/lib/tcpfork/handlers/journal.so";
  a.settings.handler.configJson = R"({"dir":"/var/lib/tcpfork journal","fsync":"always","n":[1,2.5,true,null]})";
  a.settings.handler.maxPending = 77;
  a.role = "worker.3";
  a.index = 3;
  a.generation = 7;
  a.statsFd = 7;
  a.slot = 12;
  a.parentPid = 4242;
  a.listenFds = {5, 6};
  EXPECT_EQ(roundTrip(a), a);
}

TEST(Contract, DefaultsAreTheWorkersOwn) {
  WorkerArgs a;
  a.listen = "127.0.0.1:0";
  EXPECT_EQ(roundTrip(a), a);
  a.noStats = true;
  EXPECT_EQ(roundTrip(a), a);
  EXPECT_EQ(parseWorkerArgs({"tcpfork-worker", "--listen", "127.0.0.1:0"}).settings, WorkerSettings{});
  EXPECT_EQ(WorkerSettings{}.limits.outputLowWater(), WorkerSettings{}.limits.outputHighWater / 2);
}

TEST(Contract, RefusesABadCommandLine) {
  auto codeOf = [](std::vector<std::string> argv) {
    try {
      parseWorkerArgs(argv);
    } catch (const WorkerArgsError& e) {
      return e.exitCode();
    }
    return -1;
  };
  EXPECT_GT(codeOf({"tcpfork-worker"}), 0) << "needs --listen or --listen-fd";
  EXPECT_GT(codeOf({"tcpfork-worker", "--listen", "127.0.0.1:1", "--listen-fd", "3"}), 0);
  EXPECT_GT(codeOf({"tcpfork-worker", "--listen-fd", "3", "--stats-fd", "4"}), 0) << "--stats-fd needs --slot";
  EXPECT_GT(codeOf({"tcpfork-worker", "--listen-fd", "3", "--max-frame-bytes", "2"}), 0);
  EXPECT_EQ(codeOf({"tcpfork-worker", "--help"}), 0);
}

}  // namespace
}  // namespace tcpfork
