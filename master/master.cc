#include "master/master.h"

#include <grp.h>
#include <pwd.h>
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
#include "stats/snapshot.h"

namespace tcpfork {
namespace {

constexpr timeval kTickInterval{0, 100'000};
constexpr auto kFastStopGrace = std::chrono::seconds(3);


struct Identity {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

// Resolves user/group when we are root and can switch to them.
Identity resolveIdentity(const Config& c) {
  Identity id;
  if (c.user.empty() && c.group.empty()) return id;
  if (::geteuid() != 0) {
    spdlog::warn("user/group set but not running as root; workers keep uid {}", ::geteuid());
    return id;
  }
  if (!c.user.empty()) {
    passwd* pw = ::getpwnam(c.user.c_str());
    if (!pw) throw ConfigError(fmt::format("user: no such user '{}'", c.user));
    id.uid = pw->pw_uid;
    id.gid = pw->pw_gid;
  }
  if (!c.group.empty()) {
    group* gr = ::getgrnam(c.group.c_str());
    if (!gr) throw ConfigError(fmt::format("group: no such group '{}'", c.group));
    id.gid = gr->gr_gid;
  }
  return id;
}

// Two generations of max_workers may run at once during a reload. Workers
// that drop privileges must still open the segment, so it is theirs.
stats::StatsSegment createSegment(const Config& c) {
  Identity id = resolveIdentity(c);
  return stats::StatsSegment::create(c.name, 2 * c.maxWorkers, id.uid.value_or(uid_t(-1)), id.gid.value_or(gid_t(-1)));
}

}  // namespace

std::string workerBinaryPath() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::system_error(ec, "readlink(/proc/self/exe)");
  auto worker = self.parent_path() / "tcpfork-worker";
  if (::access(worker.c_str(), X_OK) != 0) {
    throw std::system_error(errno, std::generic_category(), "access(" + worker.string() + ")");
  }
  return worker.string();
}

Master::Master(Config config, std::string configPath, ConfigOverrides overrides, int readyFd)
    : config_(std::move(config)),
      configPath_(std::move(configPath)),
      overrides_(std::move(overrides)),
      base_(newEventBase()),
      pidfile_(config_.effectivePidFile()),
      segment_(createSegment(config_)),
      supervisor_(segment_, listeners_, config_.maxWorkers),
      collector_(segment_, config_.metricsNamespace,
                 [this] { return MasterStatus{supervisor_.count(), supervisor_.backingOff()}; }),
      profileDir_(config_.effectiveProfileDir(), resolveIdentity(config_).uid, resolveIdentity(config_).gid),
      autoProfiler_(segment_, config_.profile.autoProfile),
      autoProfileTimer_(event_new(base_.get(), -1, EV_PERSIST, &Master::onAutoProfile, this)),
      tick_(event_new(base_.get(), -1, EV_PERSIST, &Master::onTick, this)),
      readyFd_(readyFd) {
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

WorkerSettings Master::settingsFrom(const Config& c) const {
  WorkerSettings s;
  s.binary = workerBinaryPath();
  s.listen = c.listen;
  s.count = c.effectiveWorkers();
  s.maxConnections = c.maxConnections;
  s.maxFrameBytes = c.maxFrameBytes;
  s.outputHighWater = c.outputHighWater;
  s.idleTimeout = c.idleTimeout;
  s.drainTimeout = c.drainTimeout;
  s.workerTimeout = c.workerTimeout;
  s.logLevel = c.logLevel;
  s.logFile = c.logFile;
  Identity id = resolveIdentity(c);
  s.uid = id.uid;
  s.gid = id.gid;
  s.name = c.name;
  s.profileDir = profileDir_.path();
  s.profileDuration = c.profile.duration;
  return s;
}

int Master::run() {
  admin_ = std::make_unique<AdminHttp>(base_.get(), config_.metricsListen, collector_, segment_, [this] {
    unsigned serving = supervisor_.servingCount();
    bool ok = !stopping_ && serving == supervisor_.count();
    return AdminHttp::Health{ok, fmt::format("{}: {} of {} workers serving", ok ? "ok" : "unhealthy", serving,
                                             supervisor_.count())};
  });
  if (config_.profile.http) {
    pprof_ = std::make_unique<PprofEndpoint>(base_.get(), segment_, profileDir_, config_.profile.httpRemote,
                                             [this](unsigned index) -> std::optional<PprofEndpoint::Target> {
                                               auto w = supervisor_.servingWorker(index);
                                               if (!w) return std::nullopt;
                                               return PprofEndpoint::Target{w->pid, w->slot};
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
  spdlog::info("master pid {}: {} workers on {}; metrics on http://{}/metrics; pidfile {}; stats segment '{}'",
               ::getpid(), supervisor_.count(), listeners_.describe(), admin_->boundAddress(), pidfile_.path(),
               segment_.name());
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
      spdlog::warn("SIGUSR2 (binary upgrade) is not supported by this build; ignoring");
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

// The workers write the files; the master says where each one landed.
void Master::logFinishedProfiles() {
  stats::Snapshot snapshot = stats::takeSnapshot(segment_);
  std::map<pid_t, bool> now;
  for (const auto& w : snapshot.workers) {
    now[w.pid] = w.profiling;
    auto before = profiling_.find(w.pid);
    if (before != profiling_.end() && before->second && !w.profiling) {
      auto file = profileDir_.newestProfileOf(w.pid);
      spdlog::info("worker {} (pid {}) wrote CPU profile {}", w.index, w.pid, file.value_or("(file not found)"));
    }
  }
  profiling_ = std::move(now);
}

void Master::onTick(evutil_socket_t, short, void* self) {
  auto* master = static_cast<Master*>(self);
  master->supervisor_.tick();
  master->logFinishedProfiles();
  if (!master->announcedReady_ && master->supervisor_.allServing()) {
    master->announcedReady_ = true;
    spdlog::info("ready: {} workers serving", master->supervisor_.count());
    if (master->readyFd_ >= 0) {
      ssize_t ignored = ::write(master->readyFd_, "READY\n", 6);
      (void)ignored;
      ::close(master->readyFd_);
      master->readyFd_ = -1;
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

void Master::reap() {
  int status;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    supervisor_.onChildExit(pid, status);
    if (int removed = profileDir_.removePartialProfilesOf(pid)) {
      spdlog::warn("removed {} unfinished CPU profile(s) of worker pid {}", removed, pid);
    }
  }
}

void Master::reload() {
  if (stopping_) return;
  spdlog::info("SIGHUP: reloading {}", configPath_.empty() ? "(built-in defaults)" : configPath_);
  Config next;
  WorkerSettings settings;
  try {
    next = loadConfig(configPath_, overrides_);
    settings = settingsFrom(next);
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
  keep("name", next.name, config_.name);
  keep("pid_file", next.pidFile, config_.pidFile);
  keep("max_workers", next.maxWorkers, config_.maxWorkers);
  keep("metrics.listen", next.metricsListen, config_.metricsListen);
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
  keep("profile.dir", next.profile.dir, config_.profile.dir);
  keep("profile.http", next.profile.http, config_.profile.http);
  collector_.setNamespace(next.metricsNamespace);
  autoProfiler_.setConfig(next.profile.autoProfile);
  config_ = next;
  armAutoProfiler();
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
  spdlog::info("{}: stopping {} workers", graceful ? "SIGQUIT: graceful stop" : "fast stop",
               supervisor_.pids().size());
  supervisor_.stopAll(graceful);
  stopDeadline_ = std::chrono::steady_clock::now() + (graceful ? config_.drainTimeout : Millis(0)) + kFastStopGrace;
}

}  // namespace tcpfork
