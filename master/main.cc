// tcpfork: the master. Reads the config, takes the pidfile, creates the stats
// segment and the listeners, starts the workers and supervises them; or, with
// -t, checks a config; or, with -s, signals the running master.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <csignal>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "base/log.h"
#include "master/cli/cli.h"
#include "master/config/config.h"
#include "master/daemon.h"
#include "master/cli/handler_check.h"
#include "master/identity.h"
#include "master/master.h"
#include "master/cli/signal_command.h"

using namespace tcpfork;

namespace {

std::string absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

// A master started by a binary upgrade learns it from its environment (see
// BinaryUpgrade), and unsets it so that its own workers and upgrades start clean.
StartContext upgradeContext() {
  StartContext start;
  auto take = [](const char* name) {
    const char* value = std::getenv(name);
    int number = value ? std::atoi(value) : 0;
    ::unsetenv(name);
    return number;
  };
  start.upgradeFrom = take(BinaryUpgrade::kFromEnv);
  int readyFd = take(BinaryUpgrade::kReadyFdEnv);
  int adminFd = take(BinaryUpgrade::kAdminFdEnv);
  int agentFd = take(BinaryUpgrade::kAgentFdEnv);
  int statsFd = take(BinaryUpgrade::kStatsFdEnv);
  int statsLockFd = take(BinaryUpgrade::kStatsLockFdEnv);
  if (start.upgradeFrom > 0) {
    start.readyFd = readyFd > 2 ? readyFd : -1;
    start.adminFd = adminFd > 2 ? adminFd : -1;
    start.agentFd = agentFd > 2 ? agentFd : -1;
    start.statsFd = statsFd > 2 ? statsFd : -1;
    start.statsLockFd = statsLockFd > 2 ? statsLockFd : -1;
    for (int fd : {start.readyFd, start.adminFd, start.agentFd, start.statsFd, start.statsLockFd}) {
      if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  return start;
}

// A module's init that takes longer is a bug worth reporting as one.
constexpr std::chrono::milliseconds kHandlerCheckTimeout{30'000};

}  // namespace

int main(int argc, char** argv) {
  CliOptions cli = parseCli(argc, argv);
  if (!cli.signal.empty()) return sendSignal(cli);

  Config config;
  try {
    config = loadConfig(cli.configPath, cli.overrides);
  } catch (const std::exception& e) {
    fmt::print(stderr, "tcpfork: {}\n", e.what());
    return 1;
  }
  if (cli.testConfig) {
    std::string handler = "the built-in ack handler";
    if (!config.worker.handler.module.empty()) {
      HandlerCheck check;
      try {
        check = checkHandlerModule(workerBinaryBeside(selfPath()), config.worker.handler, kHandlerCheckTimeout);
      } catch (const std::exception& e) {
        check.output = e.what();
      }
      if (!check.passed) {
        fmt::print(stderr, "tcpfork: {}: handler.module: {}\n", cli.configPath, check.output);
        return 1;
      }
      handler = "handler module " + config.worker.handler.module + " passed its init";
    }
    fmt::print("tcpfork: configuration {} is valid ({} workers on {}; metrics on {}; {})\n",
               cli.configPath.empty() ? "(built-in defaults)" : cli.configPath, config.effectiveWorkers(),
               fmt::join(config.listen, ", "), config.metricsListen, handler);
    return 0;
  }

  // Paths must survive the daemon's chdir("/") and later reloads.
  std::string configPath = absolute(cli.configPath);
  config.pidFile = absolute(config.effectivePidFile());
  config.logFile = absolute(config.logFile);
  cli.overrides.pidFile = config.pidFile;
  if (cli.overrides.logFile) cli.overrides.logFile = config.logFile;

  initLogging("master", config.logLevel);
  std::signal(SIGPIPE, SIG_IGN);
  StartContext start = upgradeContext();
  try {
    if (cli.daemonize && !start.upgradeFrom) {
      start.readyFd = daemonize(config.logFile);
    } else if (!config.logFile.empty()) {
      redirectOutputTo(config.logFile);
    }
    Master master(config, configPath, cli.overrides, start);
    return master.run();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    reportDaemonFailure(start.readyFd, e.what());
    return 1;
  }
}
