// The Master's part in a binary upgrade (USR2), nginx's model: start the new
// binary as a child master on our sockets (BinaryUpgrade), keep serving beside
// it until told QUIT (a QUIT while it starts takes effect once it serves), and
// take the pidfile and the segment back if it fails.
#include "master/master.h"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tcpfork {

std::vector<std::string> Master::upgradeArgv() const {
  std::vector<std::string> argv = {selfExe_};
  if (!configPath_.empty()) argv.insert(argv.end(), {"-c", configPath_});
  for (const auto& l : overrides_.listen) argv.insert(argv.end(), {"--listen", l});
  if (overrides_.workers) argv.insert(argv.end(), {"--workers", std::to_string(*overrides_.workers)});
  if (overrides_.metricsListen) argv.insert(argv.end(), {"--metrics-listen", *overrides_.metricsListen});
  argv.insert(argv.end(), {"--pid-file", config_.effectivePidFile()});
  if (overrides_.name) argv.insert(argv.end(), {"--name", *overrides_.name});
  if (overrides_.logFile) argv.insert(argv.end(), {"--log-file", *overrides_.logFile});
  return argv;
}

// Why a USR2 changed nothing: the Lifecycle refused it.
void Master::sayWhyNoUpgrade() const {
  if (lifecycle_.stopping()) {
    spdlog::warn("SIGUSR2: ignoring: this master is stopping");
  } else {
    spdlog::warn("SIGUSR2: a new master (pid {}) is already {}; ignoring", upgrade_.pid(),
                 lifecycle_.handedOver() ? "serving (send this master QUIT to finish the upgrade)" : "starting");
  }
}

// nginx's model: the new binary starts as our child on our sockets; we keep
// serving beside it until told QUIT, and take everything back if it fails.
bool Master::startUpgrade() {
  if (!pidfile_) {
    spdlog::warn("SIGUSR2: this master is still starting as an upgrade; ignoring");
    return false;
  }
  // nginx's rule: while the master we replaced still runs, its pidfile is
  // our .oldbin; another upgrade would rename ours over it, and QUIT sent to
  // "the old master" would reach the wrong one. The old master is our parent
  // until it exits.
  if (start_.upgradeFrom && ::getppid() == start_.upgradeFrom) {
    spdlog::warn("SIGUSR2: ignoring: the master this one replaced (pid {}, pidfile {}.oldbin) still runs; send it "
                 "QUIT (kill -QUIT {}) and upgrade again once it has exited",
                 start_.upgradeFrom, config_.effectivePidFile(), start_.upgradeFrom);
    return false;
  }
  SpawnRequest request;
  request.argv = upgradeArgv();
  request.env = listeners_.handoverEnvironment(request.inheritFds);
  request.inheritFds.push_back(admin_->listenerFd());
  request.env.push_back(fmt::format("{}={}", BinaryUpgrade::kAdminFdEnv, admin_->listenerFd()));
  if (agent_) {
    request.inheritFds.push_back(agent_->listenerFd());
    request.env.push_back(fmt::format("{}={}", BinaryUpgrade::kAgentFdEnv, agent_->listenerFd()));
  }
  // The new master shares the segment and holds the name's lock with us, so
  // that no third master can take the name while either of us runs.
  request.inheritFds.insert(request.inheritFds.end(), {segment_.fd(), segment_.lockFd()});
  request.env.push_back(fmt::format("{}={}", BinaryUpgrade::kStatsFdEnv, segment_.fd()));
  request.env.push_back(fmt::format("{}={}", BinaryUpgrade::kStatsLockFdEnv, segment_.lockFd()));
  std::string oldbin = config_.effectivePidFile() + ".oldbin";
  try {
    pidfile_->moveTo(oldbin);
  } catch (const std::exception& e) {
    spdlog::error("SIGUSR2: binary upgrade not started: {}", e.what());
    return false;
  }
  try {
    upgrade_.start(request, config_.workerTimeout + std::chrono::seconds(5));
  } catch (const std::exception& e) {
    spdlog::error("SIGUSR2: binary upgrade: cannot start {}: {}; this master keeps serving", selfExe_, e.what());
    try {
      pidfile_->moveTo(config_.effectivePidFile());
    } catch (const std::exception& e2) {
      spdlog::error("binary upgrade: {}", e2.what());
    }
    return false;
  }
  spdlog::info("SIGUSR2: binary upgrade: started {} as master pid {}; this master's pidfile is now {}", selfExe_,
               upgrade_.pid(), oldbin);
  return true;
}

void Master::onUpgradeReady(pid_t pid) {
  steering_.handOver();
  if (lifecycle_.upgrade() == Lifecycle::Upgrade::kQuitWhenServes) {
    spdlog::info("binary upgrade: new master pid {} serves; this master (pid {}) got SIGQUIT while it started and "
                 "stops now",
                 pid, ::getpid());
  } else {
    spdlog::info("binary upgrade: new master pid {} serves; this master (pid {}, pidfile {}) serves beside it until "
                 "it gets SIGQUIT",
                 pid, ::getpid(), pidfile_ ? pidfile_->path() : "");
  }
  handle(Lifecycle::EventKind::kUpgradeServes);
}

void Master::onUpgradeFailed(const std::string& why) {
  if (lifecycle_.stopping()) {
    spdlog::error("binary upgrade failed: {}; master pid {} is stopping as it was told, and no master serves after it",
                  why, ::getpid());
  } else if (lifecycle_.upgrade() == Lifecycle::Upgrade::kQuitWhenServes) {
    spdlog::error("binary upgrade failed: {}; master pid {} serves on and drops the SIGQUIT it got while the new "
                  "master started (stopping would leave nothing serving; send QUIT again to stop it)",
                  why, ::getpid());
  } else {
    spdlog::error("binary upgrade failed: {}; master pid {} serves on", why, ::getpid());
  }
  handle(Lifecycle::EventKind::kUpgradeFailed);
}

void Master::reclaimService() {
  if (pidfile_ && pidfile_->path() != config_.effectivePidFile()) reclaimPidfile();
  segment_.claimName();
  supervisor_.storeGeneration();
  publishStaleAfter();
  steering_.reattach();
}

// A master nobody can find through its pidfile cannot be stopped, reloaded or
// upgraded by `tcpfork -s`: take the file back, or make a new one, or stop.
void Master::reclaimPidfile() {
  try {
    pidfile_->moveTo(config_.effectivePidFile());
    return;
  } catch (const std::exception& e) {
    spdlog::error("binary upgrade: {}; writing a new pidfile", e.what());
  }
  try {
    pidfile_.reset();
    pidfile_.emplace(config_.effectivePidFile());
  } catch (const std::exception& e) {
    spdlog::critical("binary upgrade: {}: this master could no longer be signalled through a pidfile; stopping it "
                     "gracefully",
                     e.what());
    handle(Lifecycle::EventKind::kQuit);
  }
}

}  // namespace tcpfork
