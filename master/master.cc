#include "master/master.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <system_error>

#include "base/socket.h"
#include "master/supervise/fd_budget.h"
#include "master/signal_table.h"

namespace tcpfork {
namespace {

constexpr timeval kTickInterval{0, 100'000};

// Two generations of max_workers may run at once during a reload, so the
// segment has kSlotsPerWorker slots per worker, and its size is where the
// Supervisor finds max_workers. Workers inherit the segment's descriptor,
// whatever user they run as. A master started by a binary upgrade inherits
// its predecessor's segment, whose size then fixes max_workers until a full
// restart.
// The instance's locator also names this master's pidfile and config file,
// for `tcpfork -s` (master/cli/master_finder.h).
stats::StatsSegment openSegment(Config& c, const std::string& configPath, const StartContext& start) {
  stats::SegmentLocator::Owner owner{c.effectivePidFile(), configPath};
  if (!start.upgradeFrom) {
    return stats::StatsSegment::create(c.name, Supervisor::kSlotsPerWorker * c.maxWorkers, std::move(owner));
  }
  stats::StatsSegment segment = stats::StatsSegment::adopt(c.name, UniqueFd(start.statsFd),
                                                           UniqueFd(start.statsLockFd), std::move(owner));
  unsigned fits = segment.slotCount() / Supervisor::kSlotsPerWorker;
  if (fits != c.maxWorkers) {
    spdlog::warn("binary upgrade: max_workers stays {} (the running stats segment's size) until a full restart", fits);
    // The reload planner checks workers against it (restart-only).
    c.maxWorkers = fits;
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
      segment_(openSegment(config_, configPath_, start)),
      supervisor_(segment_, listeners_, lifecycle_),
      steering_(config_.steering, supervisor_.maxWorkers(), listeners_),
      collector_(segment_, config_.metricsNamespace,
                 [this] {
                   return MasterStatus{supervisor_.count(), supervisor_.shownWorkers(), listeners_.queues(),
                                       steering_.status(), supervisor_.reloadsFailed(),
                                       agent_ ? agent_->counts() : AgentCounts{},
                                       agent_ ? agent_->boundAddress() : std::string(),
                                       agent_ ? agentAnswer(agentView()).line : std::string()};
                 }),
      profileDir_(config_.effectiveProfileDir(), identity_.uid, identity_.gid),
      autoProfiler_(segment_, config_.profile.autoProfile),
      autoProfileTimer_(event_new(base_.get(), -1, EV_PERSIST, &Master::onAutoProfile, this)),
      tick_(event_new(base_.get(), -1, EV_PERSIST, &Master::onTick, this)),
      quit_(event_new(base_.get(), -1, 0, &Master::onQuit, this)),
      quitDelay_(evtimer_new(base_.get(), [](evutil_socket_t, short, void* self) {
        static_cast<Master*>(self)->handle(Lifecycle::EventKind::kQuit);
      }, this)),
      upgrade_(base_.get(), {[this](pid_t pid) { onUpgradeReady(pid); },
                             [this](const std::string& why) { onUpgradeFailed(why); }}) {
  if (!tick_) throw std::system_error(ENOMEM, std::generic_category(), "event_new(tick)");
  if (!quit_ || !quitDelay_) throw std::system_error(ENOMEM, std::generic_category(), "event_new(quit)");
  for (const SignalRow& row : kSignalTable) {
    int signal = row.signal;
    EventPtr ev(evsignal_new(base_.get(), signal, &Master::onSignal, this));
    if (!ev || event_add(ev.get(), nullptr) != 0) {
      throw std::system_error(EINVAL, std::generic_category(), std::string("evsignal_new(SIG") + sigabbrev_np(signal) + ")");
    }
    signalEvents_.push_back(std::move(ev));
  }
  addPeriodicJobs();
}

Master::~Master() { supervisor_.killAll(); }

int Master::run() {
  admin_ = std::make_unique<AdminHttp>(
      base_.get(), config_.metricsListen, collector_, segment_,
      [this] {
        unsigned fresh = supervisor_.freshCount();
        bool ok = !lifecycle_.stopping() && fresh == supervisor_.count();
        return AdminHttp::Health{ok, fmt::format("{}: {}", ok ? "ok" : "unhealthy", servingText())};
      },
      adminConnectionLimit(supervisor_.maxWorkers(), unsigned(config_.listen.size())), config_.metricsAllowRemote,
      UniqueFd(start_.adminFd));
  if (config_.profile.http) {
    pprof_ = std::make_unique<PprofEndpoint>(base_.get(), segment_, profileDir_, config_.profile.httpRemote,
                                             admin_->connectionLimit(),
                                             [this](unsigned index) -> std::optional<PprofEndpoint::Target> {
                                               auto w = supervisor_.servingWorker(index);
                                               if (!w) return std::nullopt;
                                               return PprofEndpoint::Target{w->pid, w->slot};
                                             },
                                             [this](evhttp_request* request, std::function<void()> onClose) {
                                               admin_->watchClose(request, std::move(onClose));
                                             });
    static_assert(AdminHttp::kMaxBodyBytes >= PprofEndpoint::kMaxSymbolRequestBytes);
    admin_->setPprofHandler([this](evhttp_request* request, AdminHttp::PprofPage page, std::optional<unsigned> worker) {
      switch (page) {
        case AdminHttp::PprofPage::kProfile: return pprof_->handle(request, worker);
        case AdminHttp::PprofPage::kHeap: return pprof_->heap(request, worker);
        case AdminHttp::PprofPage::kSymbol: return pprof_->symbol(request, worker);
        case AdminHttp::PprofPage::kCmdline: return pprof_->cmdline(request);
      }
    });
  }
  if (!config_.agentListen.empty()) {
    agent_ = std::make_unique<AgentPort>(base_.get(), config_.agentListen, UniqueFd(start_.agentFd),
                                         [this] { return agentAnswer(agentView()); });
    spdlog::info("agent check on {}", agent_->boundAddress());
  } else if (start_.agentFd >= 0) {
    ::close(start_.agentFd);  // the old master had one; this config has none
  }
  armAutoProfiler();
  if (!isLoopback(parseAddress(config_.metricsListen))) {
    spdlog::warn("metrics.listen {} is not loopback (metrics.allow_remote): /metrics and /status are reachable from "
                 "the network{}",
                 admin_->boundAddress(), config_.profile.http && config_.profile.httpRemote ? ", and so is profiling" : "");
  }
  warnIfWorkersInheritTooFewDescriptors(config_.worker.maxConnections, config_.worker.rlimitNofile);
  if (listeners_.socketActivated() && steering_.possible()) listeners_.joinInherited();
  publishStaleAfter();
  supervisor_.start(settingsFrom(config_));
  spdlog::info("master pid {}: {} workers on {}; metrics on http://{}/metrics; pidfile {}; stats segment '{}'{}",
               ::getpid(), supervisor_.count(), listeners_.describe(), admin_->boundAddress(),
               config_.effectivePidFile(), segment_.name(),
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
  auto row = signalRow(int(signal));
  if (!row) return;
  using enum Lifecycle::EventKind;
  switch (row->action) {
    case MasterAction::kReap: master->reap(); return;
    case MasterAction::kReload: master->handle(kReloadAsked); return;
    case MasterAction::kFastStop: master->handle(kFastStop); return;
    case MasterAction::kGracefulStop:
      // libevent runs the signals that one wake-up collected in signal-number
      // order, so `kill -USR2; kill -QUIT` in quick succession reaches us as
      // QUIT (3) before USR2 (12). QUIT waits for the rest of its batch: an
      // upgrade asked for with it has started by then, and QUIT hands over.
      event_active(master->quit_.get(), EV_TIMEOUT, 1);
      return;
    case MasterAction::kReopenLogs: master->reopenLogs(); return;
    case MasterAction::kScaleUp: master->supervisor_.scale(+1); return;
    case MasterAction::kScaleDown: master->supervisor_.scale(-1); return;
    case MasterAction::kUpgrade:
      if (master->handle(kUpgradeAsked).none()) master->sayWhyNoUpgrade();
      return;
    case MasterAction::kProfile:
      spdlog::info("SIGTRAP: forwarded the profiling toggle to {} workers", master->supervisor_.signalReady(SIGTRAP));
      return;
    case MasterAction::kHeapProfile:
      spdlog::info("SIGURG: asked {} workers for their heap profiles (each logs the file it writes)",
                   master->supervisor_.signalReady(SIGURG));
      return;
  }
}

void Master::onTick(evutil_socket_t, short, void* self) {
  static_cast<Master*>(self)->periodic_.runDue(Periodic::Clock::now());
}

void Master::onQuit(evutil_socket_t, short, void* self) {
  auto* master = static_cast<Master*>(self);
  // A balancer asking the agent learns of the stop within its agent-inter;
  // until then it keeps sending new connections, which the workers must
  // still accept. A binary upgrade already drains, and a stop has begun.
  bool announce = master->agent_ && master->config_.agentDrainDelay.count() > 0 && !master->lifecycle_.stopping() &&
                  master->lifecycle_.upgrade() == Lifecycle::Upgrade::kNone;
  if (!announce) {
    master->handle(Lifecycle::EventKind::kQuit);
    return;
  }
  if (evtimer_pending(master->quitDelay_.get(), nullptr)) return;  // a QUIT already waits
  spdlog::info("SIGQUIT: the agent check answers drain; the graceful stop begins in {} ms (agent.drain_delay)",
               master->config_.agentDrainDelay.count());
  timeval delay = toTimeval(master->config_.agentDrainDelay);
  evtimer_add(master->quitDelay_.get(), &delay);
}

// In the order they run at each tick.
void Master::addPeriodicJobs() {
  using std::chrono::milliseconds;
  periodic_.add("supervise: heartbeats, restarts, reload progress, drain deadlines", milliseconds(100),
                [this] { supervisor_.tick(); });
  periodic_.add("steer new connections away from stalled or swamped workers", milliseconds(100),
                [this] { steering_.tick(supervisor_, segment_, config_.worker.maxConnections); });
  periodic_.add("report finished CPU profiles", milliseconds(100), [this] { logFinishedProfiles(); });
  periodic_.add("systemd watchdog", milliseconds(100), [this] { notify_.watchdogTick(); });
  periodic_.add("lifecycle: readiness, reloads settling, the stop and its deadline", milliseconds(100), [this] {
    using enum Lifecycle::EventKind;
    if (supervisor_.allServing()) handle(kWorkersServe);
    if (!supervisor_.switching()) handle(kReloadSettled);
    if (supervisor_.noneRunning()) handle(kWorkersGone);
    handle(kTick);
  });
  periodic_.add("systemd status line", milliseconds(1000), [this] { publishStatus(); });
  periodic_.add("fold slots of a dead master", milliseconds(1000), [this] {
    if (unsigned n = supervisor_.reclaimOrphanSlots()) spdlog::warn("folded {} stats slot(s) left by a master that died", n);
  });
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

Lifecycle::Actions Master::handle(Lifecycle::EventKind kind) {
  Lifecycle::Actions actions = lifecycle_.on({kind, Lifecycle::Clock::now(), config_.worker.drainTimeout});
  act(actions);
  return actions;
}

// Some of these tell the Lifecycle of their outcome in turn (handle): it has
// moved on before it answered, so each answer stands on its own.
void Master::act(Lifecycle::Actions a) {
  using L = Lifecycle;
  if (a.has(L::kAbortUpgrade)) {
    upgrade_.abort(fmt::format("this master is stopping, so it killed the new master (pid {}) before it served",
                               upgrade_.pid()));
  }
  if (a.has(L::kStopWorkers)) stopWorkers();
  if (a.has(L::kAnnounceReady)) becomeReady();
  if (a.has(L::kNotifyMainPid)) notify_.ready(::getpid());
  if (a.has(L::kReclaimService)) reclaimService();
  if (a.has(L::kNotifyReloading)) notify_.reloading();
  if (a.has(L::kReadConfig)) {
    handle(readConfigAndSwitch() ? L::EventKind::kReloadStarted : L::EventKind::kReloadRefused);
  }
  if (a.has(L::kNotifyReady)) notify_.ready();
  if (a.has(L::kSayReloadWaits)) {
    spdlog::warn("SIGHUP: generation {} is still starting (generation {} serves); this reload runs as soon as it "
                 "serves or fails",
                 supervisor_.generation(), supervisor_.generation() - 1);
  }
  if (a.has(L::kStartUpgrade) && startUpgrade()) handle(L::EventKind::kUpgradeStarted);
  if (a.has(L::kSayQuitWaits)) {
    spdlog::info("SIGQUIT: the new master (pid {}) is still starting; this master serves until it does, then stops "
                 "gracefully (if it fails, this master serves on)",
                 upgrade_.pid());
  }
  if (a.has(L::kKillWorkers)) {
    spdlog::warn("workers still running at the stop deadline; killing them");
    supervisor_.killAll();
  }
  if (a.has(L::kExitLoop)) event_base_loopexit(base_.get(), nullptr);
}

void Master::stopWorkers() {
  // After a binary upgrade the service goes on in the new master.
  if (lifecycle_.handedOver()) {
    if (admin_) admin_->stopAccepting();
  } else {
    notify_.stopping();
  }
  spdlog::info("{}: stopping {} workers", lifecycle_.stoppingFast() ? "fast stop" : "SIGQUIT: graceful stop",
               supervisor_.pids().size());
  supervisor_.stopAll();
}

}  // namespace tcpfork
