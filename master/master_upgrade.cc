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
  argv.insert(argv.end(), {"--pid-file", pidfilePath_});
  if (overrides_.name) argv.insert(argv.end(), {"--name", *overrides_.name});
  if (overrides_.logFile) argv.insert(argv.end(), {"--log-file", *overrides_.logFile});
  return argv;
}

// nginx's model: the new binary starts as our child on our sockets; we keep
// serving beside it until told QUIT, and take everything back if it fails.
void Master::upgrade() {
  if (stopping_) {
    spdlog::warn("SIGUSR2: ignoring: this master is stopping");
    return;
  }
  if (upgrade_.active()) {
    spdlog::warn("SIGUSR2: a new master (pid {}) is already {}; ignoring", upgrade_.pid(),
                 upgrade_.ready() ? "serving (send this master QUIT to finish the upgrade)" : "starting");
    return;
  }
  if (!pidfile_) {
    spdlog::warn("SIGUSR2: this master is still starting as an upgrade; ignoring");
    return;
  }
  // nginx's rule: while the master we replaced still runs, its pidfile is
  // our .oldbin; another upgrade would rename ours over it, and QUIT sent to
  // "the old master" would reach the wrong one. The old master is our parent
  // until it exits.
  if (start_.upgradeFrom && ::getppid() == start_.upgradeFrom) {
    spdlog::warn("SIGUSR2: ignoring: the master this one replaced (pid {}, pidfile {}.oldbin) still runs; send it "
                 "QUIT (kill -QUIT {}) and upgrade again once it has exited",
                 start_.upgradeFrom, pidfilePath_, start_.upgradeFrom);
    return;
  }
  SpawnRequest request;
  request.argv = upgradeArgv();
  request.env = listeners_.handoverEnvironment(request.inheritFds);
  request.inheritFds.push_back(admin_->listenerFd());
  request.env.push_back(fmt::format("{}={}", BinaryUpgrade::kAdminFdEnv, admin_->listenerFd()));
  // The new master shares the segment and holds the name's lock with us, so
  // that no third master can take the name while either of us runs.
  request.inheritFds.insert(request.inheritFds.end(), {segment_.fd(), segment_.lockFd()});
  request.env.push_back(fmt::format("{}={}", BinaryUpgrade::kStatsFdEnv, segment_.fd()));
  request.env.push_back(fmt::format("{}={}", BinaryUpgrade::kStatsLockFdEnv, segment_.lockFd()));
  std::string oldbin = pidfilePath_ + ".oldbin";
  try {
    pidfile_->moveTo(oldbin);
  } catch (const std::exception& e) {
    spdlog::error("SIGUSR2: binary upgrade not started: {}", e.what());
    return;
  }
  try {
    upgrade_.start(request, config_.workerTimeout + std::chrono::seconds(5));
  } catch (const std::exception& e) {
    spdlog::error("SIGUSR2: binary upgrade: cannot start {}: {}; this master keeps serving", selfExe_, e.what());
    try {
      pidfile_->moveTo(pidfilePath_);
    } catch (const std::exception& e2) {
      spdlog::error("binary upgrade: {}", e2.what());
    }
    return;
  }
  spdlog::info("SIGUSR2: binary upgrade: started {} as master pid {}; this master's pidfile is now {}", selfExe_,
               upgrade_.pid(), oldbin);
}

void Master::onUpgradeReady(pid_t pid) {
  steering_.handOver();
  if (quitOnHandOver_) {
    quitOnHandOver_ = false;
    spdlog::info("binary upgrade: new master pid {} serves; this master (pid {}) got SIGQUIT while it started and "
                 "stops now",
                 pid, ::getpid());
    beginStop(true);
    return;
  }
  spdlog::info("binary upgrade: new master pid {} serves; this master (pid {}, pidfile {}) serves beside it until "
               "it gets SIGQUIT",
               pid, ::getpid(), pidfile_ ? pidfile_->path() : "");
}

void Master::onUpgradeFailed(const std::string& why) {
  if (stopping_) {
    spdlog::error("binary upgrade failed: {}; master pid {} is stopping as it was told, and no master serves after it",
                  why, ::getpid());
  } else if (quitOnHandOver_) {
    spdlog::error("binary upgrade failed: {}; master pid {} serves on and drops the SIGQUIT it got while the new "
                  "master started (stopping would leave nothing serving; send QUIT again to stop it)",
                  why, ::getpid());
  } else {
    spdlog::error("binary upgrade failed: {}; master pid {} serves on", why, ::getpid());
  }
  quitOnHandOver_ = false;
  if (pidfile_ && pidfile_->path() != pidfilePath_) reclaimPidfile();
  segment_.claimName();
  supervisor_.storeGeneration();
  steering_.reattach();
  if (!stopping_) notify_.ready(::getpid());
}

// A master nobody can find through its pidfile cannot be stopped, reloaded or
// upgraded by `tcpfork -s`: take the file back, or make a new one, or stop.
void Master::reclaimPidfile() {
  try {
    pidfile_->moveTo(pidfilePath_);
    return;
  } catch (const std::exception& e) {
    spdlog::error("binary upgrade: {}; writing a new pidfile", e.what());
  }
  try {
    pidfile_.reset();
    pidfile_.emplace(pidfilePath_);
  } catch (const std::exception& e) {
    spdlog::critical("binary upgrade: {}: this master could no longer be signalled through a pidfile; stopping it "
                     "gracefully",
                     e.what());
    beginStop(true);
  }
}

}  // namespace tcpfork
