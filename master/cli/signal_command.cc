#include "master/cli/signal_command.h"

#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "master/cli/master_finder.h"
#include "master/pidfile.h"
#include "master/signal_table.h"

namespace tcpfork {
namespace {

// After USR2: the new master takes the pidfile once its workers serve; the
// old one takes it back (from <pidfile>.oldbin) if the new one fails.
int awaitUpgrade(const std::string& pidFile, pid_t oldPid, std::chrono::milliseconds workerTimeout) {
  auto patience = workerTimeout + std::chrono::seconds(10);
  auto deadline = std::chrono::steady_clock::now() + patience;
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
             std::chrono::duration_cast<std::chrono::seconds>(patience).count());
  return 1;
}

std::string absolute(const std::string& path) {
  return path.empty() ? path : std::filesystem::absolute(path).lexically_normal().string();
}

}  // namespace

int sendSignal(const CliOptions& cli) {
  int signal = signalForAction(cli.signal);
  MasterQuery query{cli.overrides.name, cli.overrides.pidFile, absolute(cli.configPath)};
  std::optional<Config> config;
  try {
    config = loadConfig(cli.configPath, cli.overrides);
    query.name = config->name;
    query.pidFile = config->effectivePidFile();
  } catch (const std::exception& e) {
    fmt::print(stderr, "tcpfork: {}\n", e.what());
    fmt::print(stderr, "tcpfork: the configuration does not load; looking for the master that runs with it\n");
  }

  FoundMaster master;
  try {
    master = findMaster(query);
  } catch (const MasterNotFound& e) {
    fmt::print(stderr, "tcpfork: {}\n", e.what());
    return 1;
  }
  if (!master.foundThrough.empty()) fmt::print("tcpfork: master pid {} {}\n", master.pid, master.foundThrough);

  if (!config && (cli.signal == "reload" || cli.signal == "upgrade")) {
    fmt::print(stderr,
               "tcpfork: not sent: master pid {} would refuse this configuration and serve on with the one it "
               "has; fix it first (tcpfork -t -c {})\n",
               master.pid, cli.configPath);
    return 1;
  }
  if (cli.signal == "upgrade") {
    if (master.pidFile.empty()) {
      fmt::print(stderr, "tcpfork: not sent: master pid {} does not say where its pidfile is, which -s upgrade "
                         "follows; send SIGUSR2 by hand\n",
                 master.pid);
      return 1;
    }
    // The running master would refuse it (see Master::upgrade); say why here.
    std::string oldbin = master.pidFile + ".oldbin";
    try {
      pid_t old = runningMasterPid(oldbin);
      fmt::print(stderr,
                 "tcpfork: an upgrade is still under way: the old master pid {} ({}) runs beside master pid {}; "
                 "send it QUIT (kill -QUIT {}) before upgrading again\n",
                 old, oldbin, master.pid, old);
      return 1;
    } catch (const PidfileError&) {
      // No old master: go ahead.
    }
  }
  if (::kill(master.pid, signal) != 0) {
    fmt::print(stderr, "tcpfork: kill({}, SIG{}): {}\n", master.pid, sigabbrev_np(signal), std::strerror(errno));
    return 1;
  }
  fmt::print("tcpfork: sent SIG{} ({}) to master pid {}\n", sigabbrev_np(signal), cli.signal, master.pid);
  return cli.signal == "upgrade" ? awaitUpgrade(master.pidFile, master.pid, config->workerTimeout) : 0;
}

}  // namespace tcpfork
