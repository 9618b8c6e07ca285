#include "master/master.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>
#include <system_error>

#include "base/log.h"
#include "base/socket.h"
#include "master/daemon.h"
#include "master/fd_budget.h"
#include "stats/snapshot.h"

namespace tcpfork {
namespace {

constexpr timeval kTickInterval{0, 100'000};
constexpr auto kFastStopGrace = std::chrono::seconds(3);


// Two generations of max_workers may run at once during a reload. Workers
// that drop privileges must still open the segment, so it is theirs. A master
// started by a binary upgrade shares its predecessor's segment, whose size
// then fixes max_workers until a full restart.
stats::StatsSegment openSegment(Config& c, const Identity& id, bool upgrade) {
  if (!upgrade) {
    return stats::StatsSegment::create(c.name, 2 * c.maxWorkers, id.uid.value_or(uid_t(-1)),
                                       id.gid.value_or(gid_t(-1)));
  }
  stats::StatsSegment segment = stats::StatsSegment::adopt(c.name);
  if (segment.slotCount() / 2 != c.maxWorkers) {
    spdlog::warn("binary upgrade: max_workers stays {} (the running stats segment's size) until a full restart",
                 segment.slotCount() / 2);
    c.maxWorkers = segment.slotCount() / 2;
  }
  return segment;
}

}  // namespace

Master::Master(Config config, std::string configPath, ConfigOverrides overrides, StartContext start)
    : config_(std::move(config)),
      configPath_(std::move(configPath)),
      overrides_(std::move(overrides)),
      base_(newEventBase()),
      start_(start),
      identity_(resolveIdentity(config_)),
      selfExe_(selfPath()),
      pidfile_(start.upgradeFrom ? std::nullopt : std::make_optional<Pidfile>(config_.effectivePidFile())),
      pidfilePath_(config_.effectivePidFile()),
      segment_(openSegment(config_, identity_, start.upgradeFrom != 0)),
      supervisor_(segment_, listeners_, config_.maxWorkers),
      collector_(segment_, config_.metricsNamespace,
                 [this] { return MasterStatus{supervisor_.count(), supervisor_.backingOff()}; }),
      profileDir_(config_.effectiveProfileDir(), identity_.uid, identity_.gid),
      autoProfiler_(segment_, config_.profile.autoProfile),
      autoProfileTimer_(event_new(base_.get(), -1, EV_PERSIST, &Master::onAutoProfile, this)),
      tick_(event_new(base_.get(), -1, EV_PERSIST, &Master::onTick, this)),
      upgrade_(base_.get(), {[this](pid_t pid) { onUpgradeReady(pid); },
                             [this](const std::string& why) { onUpgradeFailed(why); }}) {
  if (!tick_) throw std::system_error(ENOMEM, std::generic_category(), "event_new(tick)");
  for (int signal : {SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU, SIGTRAP, SIGCHLD}) {
    EventPtr ev(evsignal_new(base_.get(), signal, &Master::onSignal, this));
    if (!ev || event_add(ev.get(), nullptr) != 0) {
      throw std::system_error(EINVAL, std::generic_category(), std::string("evsignal_new(SIG") + sigabbrev_np(signal) + ")");
    }
    signalEvents_.push_back(std::move(ev));
  }
}

Master::~Master() { supervisor_.killAll(); }

GenerationSettings Master::settingsFrom(const Config& c) const {
  GenerationSettings s;
  s.binary = workerBinaryBeside(selfExe_);
  s.listen = c.listen;
  s.count = c.effectiveWorkers();
  s.workerTimeout = c.workerTimeout;
  s.uid = identity_.uid;
  s.gid = identity_.gid;
  s.worker = c.worker;
  s.worker.name = c.name;
  s.worker.logLevel = c.logLevel;
  s.worker.logFile = c.logFile;
  s.worker.profileDir = profileDir_.path();
  return s;
}

int Master::run() {
  admin_ = std::make_unique<AdminHttp>(
      base_.get(), config_.metricsListen, collector_, segment_,
      [this] {
        unsigned serving = supervisor_.servingCount();
        bool ok = !stopping_ && serving == supervisor_.count();
        return AdminHttp::Health{ok, fmt::format("{}: {} of {} workers serving", ok ? "ok" : "unhealthy", serving,
                                                 supervisor_.count())};
      },
      adminConnectionLimit(config_.maxWorkers, unsigned(config_.listen.size())), UniqueFd(start_.adminFd));
  if (config_.profile.http) {
    pprof_ = std::make_unique<PprofEndpoint>(base_.get(), segment_, profileDir_, config_.profile.httpRemote,
                                             [this](unsigned index) -> std::optional<PprofEndpoint::Target> {
                                               auto w = supervisor_.servingWorker(index);
                                               if (!w) return std::nullopt;
                                               return PprofEndpoint::Target{w->pid, w->slot};
                                             },
                                             [this](evhttp_request* request, std::function<void()> onClose) {
                                               admin_->watchClose(request, std::move(onClose));
                                             });
    admin_->setPprofHandler(
        [this](evhttp_request* request, std::optional<unsigned> worker) { pprof_->handle(request, worker); });
  }
  armAutoProfiler();
  if (!isLoopback(parseAddress(config_.metricsListen))) {
    spdlog::warn("metrics.listen {} is not loopback (metrics.allow_remote): /metrics and /status are reachable from "
                 "the network{}",
                 admin_->boundAddress(), config_.profile.http && config_.profile.httpRemote ? ", and so is profiling" : "");
  }
  supervisor_.start(settingsFrom(config_));
  spdlog::info("master pid {}: {} workers on {}; metrics on http://{}/metrics; pidfile {}; stats segment '{}'{}",
               ::getpid(), supervisor_.count(), listeners_.describe(), admin_->boundAddress(), pidfilePath_,
               segment_.name(),
               start_.upgradeFrom ? fmt::format(" (binary upgrade from master pid {})", start_.upgradeFrom) : "");
  event_add(tick_.get(), &kTickInterval);
  if (event_base_dispatch(base_.get()) < 0) {
    spdlog::error("event_base_dispatch() failed");
    return 1;
  }
  spdlog::info("master exiting: {} restarts, {} reloads", supervisor_.restarts(), supervisor_.reloads());
  return 0;
}

void Master::onSignal(evutil_socket_t signal, short, void* self) {
  auto* master = static_cast<Master*>(self);
  switch (signal) {
    case SIGCHLD:
      master->reap();
      return;
    case SIGHUP:
      master->reload();
      return;
    case SIGTERM:
    case SIGINT:
      master->beginStop(false);
      return;
    case SIGQUIT:
      master->beginStop(true);
      return;
    case SIGUSR1:
      master->reopenLogs();
      return;
    case SIGTTIN:
      master->supervisor_.scale(+1);
      return;
    case SIGTTOU:
      master->supervisor_.scale(-1);
      return;
    case SIGTRAP:
      spdlog::info("SIGTRAP: forwarded the profiling toggle to {} workers", master->supervisor_.signalReady(SIGTRAP));
      return;
    case SIGUSR2:
      master->upgrade();
      return;
  }
}

void Master::armAutoProfiler() {
  event_del(autoProfileTimer_.get());
  const auto& a = config_.profile.autoProfile;
  if (!a.enabled) return;
  timeval tv = toTimeval(a.interval);
  event_add(autoProfileTimer_.get(), &tv);
  spdlog::info("auto-profiling on: every {} ms, threshold {}%, {} samples, cooldown {} s", a.interval.count(),
               a.threshold, a.consecutive, a.cooldown.count() / 1000);
}

void Master::onAutoProfile(evutil_socket_t, short, void* self) {
  auto* master = static_cast<Master*>(self);
  if (!master->stopping_) master->autoProfiler_.sample(master->supervisor_.generation());
}

// The workers write the files and count them; the master says where they landed.
void Master::logFinishedProfiles() {
  stats::Snapshot snapshot = stats::takeSnapshot(segment_);
  std::map<pid_t, uint64_t> now;
  for (const auto& w : snapshot.workers) {
    now[w.pid] = w.profilesWritten;
    auto before = profilesReported_.find(w.pid);
    uint64_t fresh = w.profilesWritten - (before == profilesReported_.end() ? 0 : before->second);
    if (fresh == 0) continue;
    auto file = profileDir_.newestProfileOf(w.pid).value_or("(file not found)");
    if (fresh == 1) {
      spdlog::info("worker {} (pid {}) wrote CPU profile {}", w.index, w.pid, file);
    } else {
      spdlog::info("worker {} (pid {}) wrote {} CPU profiles, the newest {}", w.index, w.pid, fresh, file);
    }
  }
  profilesReported_ = std::move(now);
}

void Master::onTick(evutil_socket_t, short, void* self) {
  auto* master = static_cast<Master*>(self);
  master->supervisor_.tick();
  master->logFinishedProfiles();
  master->notify_.watchdogTick();
  if (!master->announcedReady_ && !master->stopping_ && master->supervisor_.allServing()) master->becomeReady();
  if (master->reloadQueued_ && !master->supervisor_.switching()) master->reload();
  if (master->reloadNotified_ && !master->supervisor_.switching()) {
    master->reloadNotified_ = false;
    master->notify_.ready();
  }
  if (++master->ticks_ % 10 == 0) {
    master->publishStatus();
    if (unsigned n = master->supervisor_.reclaimOrphanSlots()) {
      spdlog::warn("folded {} stats slot(s) left by a master that died", n);
    }
  }
  if (master->stopping_) {
    if (master->supervisor_.noneRunning()) {
      event_base_loopexit(master->base_.get(), nullptr);
    } else if (std::chrono::steady_clock::now() >= master->stopDeadline_) {
      spdlog::warn("workers still running at the stop deadline; killing them");
      master->supervisor_.killAll();
      master->stopDeadline_ = std::chrono::steady_clock::now() + kFastStopGrace;
    }
  }
}

void Master::becomeReady() {
  if (start_.upgradeFrom) {
    // The old master renamed its pidfile to .oldbin when it started us.
    try {
      pidfile_.emplace(pidfilePath_);
    } catch (const std::exception& e) {
      spdlog::critical("binary upgrade: {}", e.what());
      reportDaemonFailure(start_.readyFd, e.what());
      start_.readyFd = -1;
      beginStop(false);
      return;
    }
    segment_.claimName();
  }
  announcedReady_ = true;
  spdlog::info("ready: {} workers serving", supervisor_.count());
  notify_.ready(start_.upgradeFrom ? ::getpid() : 0);
  if (start_.readyFd >= 0) {
    ssize_t ignored = ::write(start_.readyFd, "READY\n", 6);
    (void)ignored;
    ::close(start_.readyFd);
    start_.readyFd = -1;
  }
}

void Master::publishStatus() {
  if (!notify_.enabled()) return;
  stats::Snapshot snapshot = stats::takeSnapshot(segment_);
  uint64_t requests = snapshot.total().counters[size_t(stats::Counter::kRequestsReceived)];
  uint64_t perSecond = requests >= lastRequests_ ? requests - lastRequests_ : 0;
  lastRequests_ = requests;
  notify_.status(fmt::format("{} of {} workers serving, generation {}, {} req/s, {} connections",
                             supervisor_.servingCount(), supervisor_.count(), supervisor_.generation(), perSecond,
                             snapshot.connected()));
}

void Master::reap() {
  logFinishedProfiles();  // before a worker's slot, and its count, is folded
  int status;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (upgrade_.onChildExit(pid, status)) continue;
    supervisor_.onChildExit(pid, status);
    if (int removed = profileDir_.removePartialProfilesOf(pid)) {
      spdlog::warn("removed {} unfinished CPU profile(s) of worker pid {}", removed, pid);
    }
  }
}

void Master::reload() {
  if (stopping_) return;
  if (supervisor_.switching()) {
    // The file is read when the reload runs, so the newest edit wins.
    reloadQueued_ = true;
    spdlog::warn("SIGHUP: generation {} is still starting (generation {} serves); this reload runs as soon as it "
                 "serves or fails",
                 supervisor_.generation(), supervisor_.generation() - 1);
    return;
  }
  reloadQueued_ = false;
  spdlog::info("SIGHUP: reloading {}", configPath_.empty() ? "(built-in defaults)" : configPath_);
  notify_.reloading();
  // READY=1 follows once the new generation serves, or at once if refused.
  reloadNotified_ = true;
  Config next;
  try {
    next = loadConfig(configPath_, overrides_);
  } catch (const std::exception& e) {
    spdlog::error("reload: {}; generation {} keeps serving", e.what(), supervisor_.generation());
    return;
  }
  auto keep = [&](const char* key, auto& nextValue, const auto& current) {
    if (nextValue != current) {
      spdlog::warn("reload: {} changes only on restart; keeping the current value", key);
      nextValue = current;
    }
  };
  // Before the workers' settings are derived: what is kept must reach them unchanged.
  keep("name", next.name, config_.name);
  keep("pid_file", next.pidFile, config_.pidFile);
  keep("max_workers", next.maxWorkers, config_.maxWorkers);
  keep("metrics.listen", next.metricsListen, config_.metricsListen);
  keep("profile.dir", next.profile.dir, config_.profile.dir);
  keep("profile.http", next.profile.http, config_.profile.http);
  keep("user", next.user, config_.user);
  keep("group", next.group, config_.group);
  GenerationSettings settings;
  try {
    settings = settingsFrom(next);
  } catch (const std::exception& e) {
    spdlog::error("reload: {}; generation {} keeps serving", e.what(), supervisor_.generation());
    return;
  }
  if (next.effectiveWorkers() > config_.maxWorkers) {
    spdlog::error("reload: workers {} exceeds max_workers {}; generation {} keeps serving", next.effectiveWorkers(),
                  config_.maxWorkers, supervisor_.generation());
    return;
  }
  if (next.logFile != config_.logFile && !next.logFile.empty()) {
    try {
      redirectOutputTo(next.logFile);
    } catch (const std::exception& e) {
      spdlog::error("reload: log.file: {}; generation {} keeps serving", e.what(), supervisor_.generation());
      return;
    }
  }
  spdlog::set_level(spdlog::level::from_str(next.logLevel));
  std::string why;
  if (!supervisor_.reload(settings, why)) {
    spdlog::error("reload: {}; generation {} keeps serving", why, supervisor_.generation());
    return;
  }
  collector_.setNamespace(next.metricsNamespace);
  autoProfiler_.setConfig(next.profile.autoProfile);
  config_ = next;
  armAutoProfiler();
}

std::vector<std::string> Master::upgradeArgv() const {
  std::vector<std::string> argv = {selfExe_};
  if (!configPath_.empty()) argv.insert(argv.end(), {"-c", configPath_});
  for (const auto& l : overrides_.listen) argv.insert(argv.end(), {"--listen", l});
  if (overrides_.workers) argv.insert(argv.end(), {"--workers", std::to_string(*overrides_.workers)});
  if (overrides_.metricsListen) argv.insert(argv.end(), {"--metrics-listen", *overrides_.metricsListen});
  argv.insert(argv.end(), {"--pid-file", pidfilePath_});
  if (overrides_.name) argv.insert(argv.end(), {"--name", *overrides_.name});
  return argv;
}

// nginx's model: the new binary starts as our child on our sockets; we keep
// serving beside it until told QUIT, and take everything back if it fails.
void Master::upgrade() {
  if (stopping_) return;
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
  spdlog::info("binary upgrade: new master pid {} serves; this master (pid {}, pidfile {}) serves beside it until "
               "it gets SIGQUIT",
               pid, ::getpid(), pidfile_ ? pidfile_->path() : "");
}

void Master::onUpgradeFailed(const std::string& why) {
  spdlog::error("binary upgrade failed: {}; master pid {} serves on", why, ::getpid());
  if (pidfile_ && pidfile_->path() != pidfilePath_) reclaimPidfile();
  segment_.claimName();
  supervisor_.storeGeneration();
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

void Master::beginStop(bool graceful) {
  if (stopping_ && graceful) return;
  stopping_ = true;
  // A stop wins over an upgrade still starting: the new master would come up
  // with nobody to hand over to.
  upgrade_.abort("this master was told to stop");
  // After a binary upgrade the service goes on in the new master.
  if (upgrade_.ready()) {
    if (admin_) admin_->stopAccepting();
  } else {
    notify_.stopping();
  }
  spdlog::info("{}: stopping {} workers", graceful ? "SIGQUIT: graceful stop" : "fast stop",
               supervisor_.pids().size());
  supervisor_.stopAll(graceful);
  stopDeadline_ = std::chrono::steady_clock::now() + (graceful ? config_.worker.drainTimeout : Millis(0)) + kFastStopGrace;
}

}  // namespace tcpfork
