#include "master/supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "master/spawn.h"
#include "stats/header_lock.h"
#include "stats/process_info.h"
#include "stats/snapshot.h"

namespace tcpfork {
namespace {

// A worker that lived at least this long before dying was not crash-looping.
constexpr auto kStableUptime = std::chrono::seconds(10);
constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(30);
// Beyond drain_timeout, how long a draining worker may take to exit.
constexpr Millis kExitGrace{2000};

uint64_t monotonicMillis() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1'000'000;
}

std::string seconds(Millis ms) { return fmt::format("{:.1f}s", ms.count() / 1000.0); }

// The one backoff rule: after `crashes` short-lived exits in a row, the next
// start waits 0 (the first), then 100 ms, 200 ms, ... up to 30 s.
Millis backoffAfter(unsigned crashes) {
  if (crashes <= 1) return Millis(0);
  auto delay = kFirstBackoff * (uint64_t{1} << std::min(crashes - 2, 16u));
  return std::chrono::duration_cast<Millis>(std::min<Supervisor::Clock::duration>(kMaxBackoff, delay));
}

}  // namespace

std::string describeExit(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by SIG{}", sigabbrev_np(WTERMSIG(status)) ?: "?");
  return fmt::format("wait status {:#x}", status);
}

Supervisor::Supervisor(stats::StatsSegment& segment, Listeners& listeners, unsigned maxWorkers)
    : segment_(segment), listeners_(listeners), maxWorkers_(maxWorkers) {}

// Slot ownership lives in the segment (Slot::ownerPid), shared with any other
// master during a binary upgrade: 0 is free, our pid is ours.
bool Supervisor::ownsSlot(uint32_t slot) const {
  return stats::load(segment_.slot(slot).ownerPid) == uint64_t(::getpid());
}

void Supervisor::start(const GenerationSettings& settings) {
  settings_ = settings;
  {
    // A master started by a binary upgrade continues its predecessor's count.
    stats::HeaderLock lock(segment_.header());
    generation_ = stats::load(segment_.header().generation) + 1;
    stats::store(segment_.header().generation, generation_);
  }
  for (unsigned i = 0; i < settings_.count; ++i) listeners_.ensure(i, settings_.listen);
  current_.assign(settings_.count, {});
  for (unsigned i = 0; i < settings_.count; ++i) spawn(i);
}

uint32_t Supervisor::allocateSlot() {
  stats::HeaderLock lock(segment_.header());
  for (uint32_t i = 0; i < segment_.slotCount(); ++i) {
    stats::Slot& s = segment_.slot(i);
    if (stats::load(s.ownerPid) == 0) {
      stats::store(s.ownerPid, uint64_t(::getpid()));
      // Folding left the slot empty with zero totals; the worker fills in the rest.
      // The hang timeout counts from the spawn until the worker's first beat.
      stats::store(s.heartbeatMonotonicMs, monotonicMillis());
      return i;
    }
  }
  throw std::runtime_error("no free stats slot (more than two generations of max_workers running?)");
}

// The worker is gone: its counts join the retired totals before the slot can
// be reused, so exported counters never go down.
void Supervisor::releaseSlot(uint32_t slot) {
  stats::HeaderLock lock(segment_.header());
  stats::foldIntoRetired(segment_.header(), segment_.slot(slot));  // frees it
}

void Supervisor::spawn(unsigned index) {
  IndexState& state = current_[index];
  state.respawnAt.reset();
  Process p;
  p.index = index;
  p.generation = generation_;
  try {
    p.slot = allocateSlot();
  } catch (const std::exception& e) {
    state.respawnAt = Clock::now() + kFirstBackoff * 10;
    state.lastFailure = fmt::format("cannot start: {}", e.what());
    spdlog::error("cannot start worker {}: {}; retrying in 1s", index, e.what());
    return;
  }
  std::vector<int> fds = listeners_.fdsFor(index, settings_.listen);
  WorkerArgs args;
  args.settings = settings_.worker;
  args.role = fmt::format("worker.{}", index);
  args.index = index;
  args.generation = generation_;
  args.statsName = segment_.name();
  args.slot = int(p.slot);
  args.parentPid = ::getpid();
  args.listenFds = fds;
  SpawnRequest request;
  request.argv = {settings_.binary};
  for (auto& arg : toArgv(args)) request.argv.push_back(std::move(arg));
  request.inheritFds = fds;
  request.uid = settings_.uid;
  request.gid = settings_.gid;
  try {
    p.pid = spawnProcess(request);
  } catch (const std::exception& e) {
    releaseSlot(p.slot);
    // A start that failed is retried no sooner than the first backoff.
    state.crashes = std::max(state.crashes + 1, 2u);
    Millis delay = backoffAfter(state.crashes);
    state.lastFailure = fmt::format("cannot start: {}", e.what());
    spdlog::error("cannot start worker {}: {}; retrying in {}", index, e.what(), seconds(delay));
    state.respawnAt = Clock::now() + delay;
    return;
  }
  p.startedAt = Clock::now();
  spdlog::info("started worker {} (pid {}, generation {}, slot {})", index, p.pid, generation_, p.slot);
  state.process = p;
}

bool Supervisor::serving(const Process& p) const {
  const stats::Slot& s = segment_.slot(p.slot);
  return stats::load(s.pid) == uint64_t(p.pid) && stats::load(s.state) == uint64_t(stats::WorkerState::kServing);
}

bool Supervisor::allServing() const {
  return !current_.empty() && std::all_of(current_.begin(), current_.end(), [&](const IndexState& s) {
    return s.process && serving(*s.process);
  });
}

std::optional<Supervisor::WorkerRef> Supervisor::servingWorker(unsigned index) const {
  if (index >= current_.size() || !current_[index].process || !serving(*current_[index].process)) return std::nullopt;
  return WorkerRef{current_[index].process->pid, current_[index].process->slot};
}

unsigned Supervisor::servingCount() const {
  return unsigned(std::count_if(current_.begin(), current_.end(),
                                [&](const IndexState& s) { return s.process && serving(*s.process); }));
}

unsigned Supervisor::backingOff() const {
  return unsigned(std::count_if(current_.begin(), current_.end(),
                                [](const IndexState& s) { return !s.process && s.respawnAt && !s.fatal; }));
}

unsigned Supervisor::fatal() const {
  return unsigned(std::count_if(current_.begin(), current_.end(),
                                [](const IndexState& s) { return !s.process && s.respawnAt && s.fatal; }));
}

bool Supervisor::noneRunning() const {
  bool anyCurrent = std::any_of(current_.begin(), current_.end(), [](const IndexState& s) { return s.process; });
  bool anyPrevious = switch_ && std::any_of(switch_->previous.begin(), switch_->previous.end(),
                                            [](const IndexState& s) { return s.process; });
  return !anyCurrent && !anyPrevious && retiring_.empty();
}

std::vector<pid_t> Supervisor::pids() const {
  std::vector<pid_t> out;
  for (const auto& s : current_) {
    if (s.process) out.push_back(s.process->pid);
  }
  if (switch_) {
    for (const auto& s : switch_->previous) {
      if (s.process) out.push_back(s.process->pid);
    }
  }
  for (const auto& p : retiring_) out.push_back(p.pid);
  return out;
}

void Supervisor::storeGeneration() {
  stats::HeaderLock lock(segment_.header());
  stats::store(segment_.header().generation, generation_);
}

void Supervisor::countInHeader(uint64_t stats::Header::*field) {
  stats::HeaderLock lock(segment_.header());
  stats::add(segment_.header().*field, 1);
}

// A master that shared the segment with us (binary upgrade) and died without
// folding its workers leaves slots owned by a dead pid. Its workers die with
// it; once they have, their last counts join the retired totals and the slots
// become free again.
unsigned Supervisor::reclaimOrphanSlots() {
  auto alive = [](uint64_t pid) { return stats::processRunning(pid_t(pid)); };
  unsigned reclaimed = 0;
  stats::HeaderLock lock(segment_.header());
  for (uint32_t i = 0; i < segment_.slotCount(); ++i) {
    stats::Slot& s = segment_.slot(i);
    uint64_t owner = stats::load(s.ownerPid);
    if (owner == 0 || owner == uint64_t(::getpid()) || alive(owner) || alive(stats::load(s.pid))) {
      continue;
    }
    stats::foldIntoRetired(segment_.header(), s);
    ++reclaimed;
  }
  return reclaimed;
}

unsigned Supervisor::freeSlots() const {
  unsigned free = 0;
  for (uint32_t i = 0; i < segment_.slotCount(); ++i) {
    if (stats::load(segment_.slot(i).ownerPid) == 0) ++free;
  }
  return free;
}

// A worker leaving service drains with SIGQUIT (stop accepting) when its
// sockets stay open elsewhere; when the master is dropping them, SIGUSR2 makes
// it take what is queued on them and close them first, so nothing queued there
// is reset. Shared (socket-activated) sockets are never dropped.
int Supervisor::leavingSignal(const Process& p, unsigned keptCount, const std::vector<std::string>& from,
                              const std::vector<std::string>& kept) const {
  if (listeners_.socketActivated()) return SIGQUIT;
  bool addressDropped = std::any_of(from.begin(), from.end(), [&](const std::string& a) {
    return std::find(kept.begin(), kept.end(), a) == kept.end();
  });
  return p.index >= keptCount || addressDropped ? SIGUSR2 : SIGQUIT;
}

void Supervisor::retire(Process p, int signal, Millis grace) {
  ::kill(p.pid, signal);
  p.killAt = Clock::now() + grace;
  retiring_.push_back(p);
}

bool Supervisor::reload(const GenerationSettings& settings, std::string& why) {
  if (stopping_) {
    why = "shutting down";
    return false;
  }
  if (switch_) {
    why = fmt::format("generation {} is still starting", generation_);
    return false;
  }
  if (freeSlots() < settings.count) {
    why = fmt::format("the stats segment has {} free slots and the new generation needs {}: wait until the "
                      "draining workers exit (at most drain_timeout) or raise max_workers",
                      freeSlots(), settings.count);
    return false;
  }
  try {
    for (unsigned i = 0; i < settings.count; ++i) listeners_.ensure(i, settings.listen);
  } catch (const std::exception& e) {
    listeners_.keepOnly(settings_.count, settings_.listen);
    why = e.what();
    return false;
  }
  switch_ = PendingSwitch{Clock::now() + settings.workerTimeout, settings_, std::move(current_)};
  settings_ = settings;
  ++generation_;
  storeGeneration();
  current_.assign(settings_.count, {});
  for (unsigned i = 0; i < settings_.count; ++i) spawn(i);
  spdlog::info("reload: generation {} starting ({} workers); generation {} serves until it is ready", generation_,
               settings_.count, generation_ - 1);
  return true;
}

void Supervisor::finishSwitch() {
  listeners_.keepOnly(settings_.count, settings_.listen);
  for (auto& s : switch_->previous) {
    if (!s.process) continue;
    int signal = leavingSignal(*s.process, settings_.count, switch_->previousSettings.listen, settings_.listen);
    retire(*s.process, signal, switch_->previousSettings.worker.drainTimeout + kExitGrace);
  }
  switch_.reset();
  ++reloads_;
  countInHeader(&stats::Header::reloads);
  spdlog::info("reload: generation {} serving; generation {} draining", generation_, generation_ - 1);
}

std::string Supervisor::notServingReasons() const {
  std::string out;
  for (size_t i = 0; i < current_.size(); ++i) {
    const IndexState& s = current_[i];
    if (s.process && serving(*s.process)) continue;
    std::string why = s.process ? fmt::format("pid {} started, not serving yet", s.process->pid)
                                : s.lastFailure.empty() ? "not started" : s.lastFailure;
    if (s.process && !s.lastFailure.empty()) why += fmt::format(" (before: {})", s.lastFailure);
    out += fmt::format("{}worker {}: {}", out.empty() ? "" : "; ", i, why);
  }
  return out;
}

void Supervisor::abandonSwitch() {
  spdlog::error("reload failed: generation {} did not serve within worker_timeout ({}): {}; generation {} keeps serving",
                generation_, seconds(settings_.workerTimeout), notServingReasons(), generation_ - 1);
  const GenerationSettings& previous = switch_->previousSettings;
  listeners_.keepOnly(previous.count, previous.listen);
  for (auto& s : current_) {
    if (!s.process) continue;
    // New workers that already serve may owe acks: let them drain.
    if (serving(*s.process)) {
      retire(*s.process, leavingSignal(*s.process, previous.count, settings_.listen, previous.listen),
             settings_.worker.drainTimeout + kExitGrace);
    } else {
      retire(*s.process, SIGKILL, kExitGrace);
    }
  }
  settings_ = previous;
  current_ = std::move(switch_->previous);
  switch_.reset();
  // An old worker that died during the switch was not restarted then.
  for (auto& s : current_) {
    if (!s.process && !s.respawnAt) s.respawnAt = Clock::now();
  }
  --generation_;
  storeGeneration();
}

void Supervisor::scale(int delta) {
  if (stopping_ || switch_) {
    spdlog::warn("not scaling while {}", stopping_ ? "shutting down" : "a reload is in progress");
    return;
  }
  if (delta > 0) {
    if (settings_.count >= maxWorkers_) {
      spdlog::warn("TTIN: already at max_workers ({})", maxWorkers_);
      return;
    }
    unsigned index = settings_.count;
    try {
      listeners_.ensure(index, settings_.listen);
    } catch (const std::exception& e) {
      spdlog::error("TTIN: cannot add a listener: {}", e.what());
      return;
    }
    ++settings_.count;
    current_.emplace_back();
    spawn(index);
    spdlog::info("TTIN: now {} workers", settings_.count);
    return;
  }
  if (settings_.count <= 1) {
    spdlog::warn("TTOU: keeping the last worker");
    return;
  }
  --settings_.count;
  // Drop our copy of its listeners first: the worker takes what is queued on
  // them, and its close is then the last one.
  listeners_.keepOnly(settings_.count, settings_.listen);
  IndexState last = std::move(current_.back());
  current_.pop_back();
  if (last.process) {
    retire(*last.process, leavingSignal(*last.process, settings_.count, settings_.listen, settings_.listen),
           settings_.worker.drainTimeout + kExitGrace);
  }
  spdlog::info("TTOU: now {} workers", settings_.count);
}

void Supervisor::onChildExit(pid_t pid, int status) {
  for (auto it = retiring_.begin(); it != retiring_.end(); ++it) {
    if (it->pid == pid) {
      spdlog::info("worker {} (pid {}, generation {}) exited: {}", it->index, pid, it->generation, describeExit(status));
      releaseSlot(it->slot);
      retiring_.erase(it);
      return;
    }
  }
  if (switch_) {
    for (auto& s : switch_->previous) {
      if (s.process && s.process->pid == pid) {
        spdlog::warn("worker {} (pid {}, generation {}) exited during reload: {}", s.process->index, pid,
                     s.process->generation, describeExit(status));
        releaseSlot(s.process->slot);
        s.process.reset();
        return;
      }
    }
  }
  for (auto& state : current_) {
    if (!state.process || state.process->pid != pid) continue;
    Process p = *state.process;
    state.process.reset();
    releaseSlot(p.slot);
    if (stopping_) {
      spdlog::info("worker {} (pid {}) exited: {}", p.index, pid, describeExit(status));
      return;
    }
    ++restarts_;
    countInHeader(&stats::Header::workerRestarts);
    auto uptime = Clock::now() - p.startedAt;
    state.crashes = uptime < kStableUptime ? state.crashes + 1 : 1;
    std::string cause = p.hung ? "killed after its heartbeat stopped" : describeExit(status);
    state.lastFailure = fmt::format("pid {} exited: {}", pid, cause);
    state.fatal = !p.hung && WIFEXITED(status) && WEXITSTATUS(status) == kExitFatal;
    if (state.fatal) {
      // It said the failure will repeat: never at once, however long it lived.
      state.crashes = std::max(state.crashes, 2u);
      Millis delay = backoffAfter(state.crashes);
      state.respawnAt = Clock::now() + delay;
      spdlog::error("worker {} (pid {}) exited with the fatal code {}: it cannot serve as configured (its log above "
                    "says why); retrying in {}",
                    p.index, pid, kExitFatal, seconds(delay));
      return;
    }
    if (state.crashes <= 1) {
      spdlog::warn("worker {} (pid {}) died unexpectedly ({}); restarting it", p.index, pid, cause);
      spawn(p.index);
      return;
    }
    Millis delay = backoffAfter(state.crashes);
    state.respawnAt = Clock::now() + delay;
    spdlog::error("worker {} (pid {}) died again ({}): {} exits in a row within {}s of starting; "
                  "restarting in {}",
                  p.index, pid, cause, state.crashes, kStableUptime.count(), seconds(delay));
    return;
  }
  spdlog::debug("reaped unknown child pid {} ({})", pid, describeExit(status));
}

void Supervisor::checkHeartbeat(Process& p) {
  uint64_t nowMs = monotonicMillis();
  uint64_t beat = stats::load(segment_.slot(p.slot).heartbeatMonotonicMs);
  auto timeoutMs = uint64_t(settings_.workerTimeout.count());
  if (p.hung || stopping_ || nowMs <= beat + timeoutMs) return;
  spdlog::error("worker {} (pid {}) has not beaten for {} ms (worker_timeout {}); killing it", p.index, p.pid,
                nowMs - beat, timeoutMs);
  p.hung = true;
  ::kill(p.pid, SIGKILL);
}

void Supervisor::tick() {
  auto now = Clock::now();
  for (auto& state : current_) {
    if (state.process) {
      checkHeartbeat(*state.process);
    } else if (state.respawnAt && now >= *state.respawnAt && !stopping_) {
      spawn(unsigned(&state - current_.data()));
    }
  }
  if (switch_) {
    for (auto& state : switch_->previous) {
      if (state.process) checkHeartbeat(*state.process);
    }
  }

  for (auto& p : retiring_) {
    // A draining worker still beats. One that hangs would otherwise live until
    // its drain deadline with its connections unanswered and, after TTOU, its
    // listening socket still taking a share of new connections.
    checkHeartbeat(p);
    if (p.killAt && now >= *p.killAt) {
      spdlog::warn("worker {} (pid {}) did not exit within drain_timeout; killing it", p.index, p.pid);
      ::kill(p.pid, SIGKILL);
      p.killAt.reset();
    }
  }

  if (switch_) {
    if (allServing()) {
      finishSwitch();
    } else if (now >= switch_->deadline) {
      abandonSwitch();
    }
  }
}

void Supervisor::stopAll(bool graceful) {
  stopping_ = true;
  int signal = graceful ? SIGQUIT : SIGTERM;
  Millis grace = graceful ? settings_.worker.drainTimeout + kExitGrace : kExitGrace;
  // A fast stop cuts short the workers already draining; those retired below
  // get their one signal from retire().
  if (!graceful) {
    for (auto& p : retiring_) ::kill(p.pid, SIGTERM);
  }
  if (switch_) {
    for (auto& s : switch_->previous) {
      if (s.process) retire(*s.process, signal, grace);
    }
    switch_.reset();
  }
  for (auto& s : current_) {
    if (s.process) retire(*s.process, signal, grace);
    s.process.reset();
    s.respawnAt.reset();
  }
}

void Supervisor::killAll() {
  for (pid_t pid : pids()) ::kill(pid, SIGKILL);
}

unsigned Supervisor::signalReady(int signal) const {
  // A worker installs its handlers before it reports serving; before that the
  // default action of SIGUSR1 or SIGTRAP would kill it.
  unsigned sent = 0;
  for (uint32_t i = 0; i < segment_.slotCount(); ++i) {
    if (!ownsSlot(i)) continue;
    const stats::Slot& slot = segment_.slot(i);
    auto state = stats::WorkerState(stats::load(slot.state));
    if (state != stats::WorkerState::kServing && state != stats::WorkerState::kDraining) continue;
    if (::kill(pid_t(stats::load(slot.pid)), signal) == 0) ++sent;
  }
  return sent;
}

}  // namespace tcpfork
