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
#include "master/cli.h"
#include "master/config.h"
#include "master/daemon.h"
#include "master/handler_check.h"
#include "master/identity.h"
#include "master/master.h"
#include "master/pidfile.h"
#include "master/signal_table.h"

using namespace tcpfork;

namespace {

std::string absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

// After USR2: the new master takes the pidfile once its workers serve; the
// old one takes it back (from <pidfile>.oldbin) if the new one fails.
int awaitUpgrade(const Config& config, pid_t oldPid) {
  const std::string pidFile = config.effectivePidFile();
  auto deadline = std::chrono::steady_clock::now() + config.workerTimeout + std::chrono::seconds(10);
  bool sawOldbin = false;
  while (std::chrono::steady_clock::now() < deadline) {
    sawOldbin = sawOldbin || std::filesystem::exists(pidFile + ".oldbin");
    try {
      pid_t now = runningMasterPid(pidFile);
      if (now != oldPid) {
        fmt::print("tcpfork: new master pid {} serves; old master pid {} serves beside it until you send it QUIT "
                   "(kill -QUIT {}; its pidfile is {}.oldbin)\n",
                   now, oldPid, oldPid, pidFile);
        return 0;
      }
      if (sawOldbin) {
        fmt::print(stderr, "tcpfork: the upgrade failed; master pid {} serves on (its log says why)\n", oldPid);
        return 1;
      }
    } catch (const PidfileError&) {
      // Renamed to .oldbin, and the new master is not ready yet.
    }
    ::usleep(50'000);
  }
  fmt::print(stderr, "tcpfork: no new master took {} within {} s; see the master's log\n", pidFile,
             std::chrono::duration_cast<std::chrono::seconds>(config.workerTimeout).count() + 10);
  return 1;
}

int sendSignal(const CliOptions& cli) {
  try {
    Config config = loadConfig(cli.configPath, cli.overrides);
    pid_t pid = runningMasterPid(config.effectivePidFile());
    if (cli.signal == "upgrade") {
      // The running master would refuse it (see Master::upgrade); say why here.
      std::string oldbin = config.effectivePidFile() + ".oldbin";
      try {
        pid_t old = runningMasterPid(oldbin);
        fmt::print(stderr,
                   "tcpfork: an upgrade is still under way: the old master pid {} ({}) runs beside master pid {}; "
                   "send it QUIT (kill -QUIT {}) before upgrading again\n",
                   old, oldbin, pid, old);
        return 1;
      } catch (const PidfileError&) {
        // No old master: go ahead.
      }
    }
    int signal = signalForAction(cli.signal);
    if (::kill(pid, signal) != 0) {
      fmt::print(stderr, "tcpfork: kill({}, SIG{}): {}\n", pid, sigabbrev_np(signal), std::strerror(errno));
      return 1;
    }
    fmt::print("tcpfork: sent SIG{} ({}) to master pid {}\n", sigabbrev_np(signal), cli.signal, pid);
    return cli.signal == "upgrade" ? awaitUpgrade(config, pid) : 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "tcpfork: {}\n", e.what());
    return 1;
  }
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
  int statsFd = take(BinaryUpgrade::kStatsFdEnv);
  int statsLockFd = take(BinaryUpgrade::kStatsLockFdEnv);
  if (start.upgradeFrom > 0) {
    start.readyFd = readyFd > 2 ? readyFd : -1;
    start.adminFd = adminFd > 2 ? adminFd : -1;
    start.statsFd = statsFd > 2 ? statsFd : -1;
    start.statsLockFd = statsLockFd > 2 ? statsLockFd : -1;
    for (int fd : {start.readyFd, start.adminFd, start.statsFd, start.statsLockFd}) {
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
