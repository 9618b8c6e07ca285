// What the Master tells the outside about itself: readiness (the pidfile of
// an upgrade, sd_notify READY=1 and the daemon's readiness pipe), the
// systemd status line, where the workers' CPU profiles landed, and the
// auto-profiler's timer.
#include "master/master.h"

#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "master/daemon.h"
#include "stats/snapshot.h"

namespace tcpfork {

void Master::becomeReady() {
  if (start_.upgradeFrom) {
    // The old master renamed its pidfile to .oldbin when it started us.
    try {
      pidfile_.emplace(config_.effectivePidFile());
    } catch (const std::exception& e) {
      spdlog::critical("binary upgrade: {}", e.what());
      reportDaemonFailure(start_.readyFd, e.what());
      start_.readyFd = -1;
      handle(Lifecycle::EventKind::kFastStop);
      return;
    }
    segment_.claimName();
  }
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
  notify_.status(fmt::format("{}, generation {}, {} req/s, {} connections", servingText(),
                             supervisor_.generation(), perSecond, snapshot.connected()));
}

std::string Master::servingText() const {
  unsigned fresh = supervisor_.freshCount();
  unsigned stalled = supervisor_.servingCount() - std::min(fresh, supervisor_.servingCount());
  std::string text = fmt::format("{} of {} workers serving", fresh, supervisor_.count());
  if (stalled > 0) text += fmt::format(" ({} stalled: heartbeat older than steering.stale_after)", stalled);
  return text;
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
    auto name = profileDir_.newestProfileOf(w.pid);
    std::string file = name ? profileDir_.path() + "/" + *name : "(file not found)";
    if (fresh == 1) {
      spdlog::info("worker {} (pid {}) wrote CPU profile {}", w.index, w.pid, file);
    } else {
      spdlog::info("worker {} (pid {}) wrote {} CPU profiles, the newest {}", w.index, w.pid, fresh, file);
    }
  }
  profilesReported_ = std::move(now);
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
  if (!master->lifecycle_.stopping()) {
    master->autoProfiler_.sample(master->supervisor_.generation(), [master](unsigned index, pid_t pid) {
      auto worker = master->supervisor_.servingWorker(index);
      return worker && worker->pid == pid;
    });
  }
}

}  // namespace tcpfork
