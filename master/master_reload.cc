// How the Master changes what runs without a restart: SIGHUP (read the
// config again, plan what may change, start the next generation) and SIGUSR1
// (reopen the log). What a reload may change is decided in reload_plan.cc;
// the generation switch itself is the Supervisor's.
#include "master/master.h"

#include <signal.h>

#include <spdlog/spdlog.h>

#include "base/log.h"
#include "master/daemon.h"
#include "master/config/reload_plan.h"
#include "stats/slot_allocator.h"

namespace tcpfork {

GenerationSettings Master::settingsFrom(const Config& c) const {
  GenerationSettings s;
  s.binary = workerBinaryBeside(selfExe_);
  s.listen = c.listen;
  s.count = c.effectiveWorkers();
  s.workerTimeout = c.workerTimeout;
  s.hangDumpGrace = c.hangDumpGrace;
  s.recycle = c.recycle;
  s.cpus = workerCpus(c.cpuAffinity);
  s.uid = identity_.uid;
  s.gid = identity_.gid;
  s.worker = c.worker;
  s.worker.name = c.name;
  s.worker.logLevel = c.logLevel;
  s.worker.logFile = c.logFile;
  s.worker.profileDir = profileDir_.path();
  return s;
}

// What the file says now, planned against what runs (reload_plan.h); the
// Lifecycle decided that a reload runs, and hears how it went.
bool Master::readConfigAndSwitch() {
  spdlog::info("SIGHUP: reloading {}", configPath_.empty() ? "(built-in defaults)" : configPath_);
  ReloadPlan plan;
  GenerationSettings settings;
  try {
    plan = planReload(config_, loadConfig(configPath_, overrides_));
    for (const auto& key : plan.kept) spdlog::warn("reload: {} changes only on restart; keeping the current value", key);
    if (!plan.refusal.empty()) throw ConfigError(plan.refusal);
    // From the plan, not the file: what is kept must reach the new workers unchanged.
    settings = settingsFrom(plan.next);
  } catch (const std::exception& e) {
    spdlog::error("reload: {}; generation {} keeps serving", e.what(), supervisor_.generation());
    supervisor_.countFailedReload();
    return false;
  }
  Config& next = plan.next;
  if (next.logFile != config_.logFile && !next.logFile.empty()) {
    try {
      redirectOutputTo(next.logFile);
    } catch (const std::exception& e) {
      spdlog::error("reload: log.file: {}; generation {} keeps serving", e.what(), supervisor_.generation());
      supervisor_.countFailedReload();
      return false;
    }
  }
  spdlog::set_level(spdlog::level::from_str(next.logLevel));
  std::string why;
  if (!supervisor_.reload(settings, why)) {
    spdlog::error("reload: {}; generation {} keeps serving", why, supervisor_.generation());
    supervisor_.countFailedReload();
    return false;
  }
  collector_.setNamespace(next.metricsNamespace);
  autoProfiler_.setConfig(next.profile.autoProfile);
  steering_.configure(next.steering);
  config_ = next;
  publishStaleAfter();
  armAutoProfiler();
  return true;
}

void Master::publishStaleAfter() {
  stats::storeInHeader(segment_.header(), &stats::Header::staleAfterMs, uint64_t(config_.steering.staleAfter.count()));
}

void Master::reopenLogs() {
  if (!config_.logFile.empty()) {
    try {
      redirectOutputTo(config_.logFile);
    } catch (const std::exception& e) {
      spdlog::error("SIGUSR1: {}", e.what());
    }
  }
  spdlog::info("SIGUSR1: log reopened; told {} workers", supervisor_.signalReady(SIGUSR1));
}

}  // namespace tcpfork
