#include "master/supervise/supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/log.h"
#include "master/supervise/spawn.h"

namespace tcpfork {
namespace {

// A worker that lived at least this long before dying was not crash-looping.
constexpr auto kStableUptime = std::chrono::seconds(10);
constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(30);
// Workers of one index that retire themselves (kExitRetiredItself) this
// often are a loop (a disk that keeps failing), not a worker's bad luck.
constexpr size_t kRetirementRun = 5;
constexpr auto kRetirementWindow = std::chrono::seconds(10);
// When no stats slot is free, the next try.
constexpr auto kNoSlotRetry = std::chrono::seconds(1);
// Beyond drain_timeout, how long a draining worker may take to exit.
constexpr Millis kExitGrace{2000};

// The one backoff rule: after `crashes` short-lived exits in a row, the next
// start waits 0 (the first), then 100 ms, 200 ms, ... up to 30 s.
Millis backoffAfter(unsigned crashes) {
  if (crashes <= 1) return Millis(0);
  auto delay = kFirstBackoff * (uint64_t{1} << std::min(crashes - 2, 16u));
  return std::chrono::duration_cast<Millis>(std::min<Supervisor::Clock::duration>(kMaxBackoff, delay));
}

}  // namespace

std::string describeSeconds(Millis ms) { return fmt::format("{:.1f}s", ms.count() / 1000.0); }

std::string describeExit(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by SIG{}", sigabbrev_np(WTERMSIG(status)) ?: "?");
  return fmt::format("wait status {:#x}", status);
}

Supervisor::Supervisor(stats::StatsSegment& segment, Listeners& listeners, const Lifecycle& lifecycle)
    : segment_(segment), slots_(segment), listeners_(listeners), lifecycle_(lifecycle) {
  current_.settings = std::make_shared<GenerationSettings>();
}

void Supervisor::start(const GenerationSettings& settings) {
  // A master started by a binary upgrade continues its predecessor's count.
  current_ = {stats::incrementInHeader(segment_.header(), &stats::Header::generation),
              std::make_shared<const GenerationSettings>(settings)};
  for (unsigned i = 0; i < settings.count; ++i) listeners_.ensure(i, settings.listen);
  reconcile();
}

bool Supervisor::wanted(const Row& row) const {
  if (lifecycle_.stopping()) return false;
  const Generation* g = row.generation.number == current_.number ? &current_
                        : previous_ && row.generation.number == previous_->number ? &*previous_
                                                                                   : nullptr;
  if (!g || row.index >= g->settings->count) return false;
  return !row.recycling || !successorServes(row);
}

bool Supervisor::slotSaysServing(const Row& row) const {
  if (!live(row)) return false;
  const stats::Slot& s = segment_.slot(row.slot);
  return stats::load(s.pid) == uint64_t(row.pid) && stats::load(s.state) == uint64_t(stats::WorkerState::kServing);
}

// While its successor starts, a worker being recycled still serves the index.
const Supervisor::Row* Supervisor::servingRow(unsigned index) const {
  if (index >= count()) return nullptr;
  for (const Row* row : {currentRow(index), recyclingRow(index)}) {
    if (row && row->state == State::kServing && slotSaysServing(*row)) return row;
  }
  return nullptr;
}

const Supervisor::Row* Supervisor::currentRow(unsigned index) const {
  for (const Row& row : rows_) {
    bool standsForIndex = row.state == State::kStarting || row.state == State::kServing ||
                          row.state == State::kHung || row.state == State::kBackoff || row.state == State::kFatal;
    if (standsForIndex && !row.recycling && row.generation.number == current_.number && row.index == index) {
      return &row;
    }
  }
  return nullptr;
}

Supervisor::Row* Supervisor::currentRow(unsigned index) {
  return const_cast<Row*>(std::as_const(*this).currentRow(index));
}

void Supervisor::spawn(Row& row) {
  const GenerationSettings& settings = *row.generation.settings;
  try {
    row.slot = slots_.allocate();
  } catch (const std::exception& e) {
    row.lastFailure = fmt::format("cannot start: {}", e.what());
    spdlog::error("cannot start worker {}: {}; retrying in {}", row.index, e.what(),
                  describeSeconds(std::chrono::duration_cast<Millis>(kNoSlotRetry)));
    transition(row, State::kBackoff, Clock::now() + kNoSlotRetry);
    return;
  }
  std::vector<int> fds = listeners_.fdsFor(row.index, settings.listen);
  WorkerArgs args;
  args.settings = settings.worker;
  args.role = fmt::format("worker.{}", row.index);
  args.index = row.index;
  args.generation = row.generation.number;
  if (!settings.cpus.empty()) args.cpu = settings.cpus[row.index % settings.cpus.size()];
  args.statsFd = segment_.fd();
  args.slot = int(row.slot);
  args.parentPid = ::getpid();
  args.listenFds = fds;
  SpawnRequest request;
  request.argv = {settings.binary};
  for (auto& arg : toArgv(args)) request.argv.push_back(std::move(arg));
  request.inheritFds = fds;
  request.inheritFds.push_back(segment_.fd());
  // tcmalloc reads it before the worker's main, so a flag would come too late.
  request.env.push_back(fmt::format("TCMALLOC_SAMPLE_PARAMETER={}", settings.worker.heapSample));
  request.uid = settings.uid;
  request.gid = settings.gid;
  try {
    row.pid = spawnProcess(request);
  } catch (const std::exception& e) {
    (void)slots_.release(row.slot);  // it never ran: no counters
    row.pid = 0;
    // A start that failed is retried no sooner than the first backoff.
    row.crashes = std::max(row.crashes + 1, 2u);
    Millis delay = backoffAfter(row.crashes);
    row.lastFailure = fmt::format("cannot start: {}", e.what());
    spdlog::error("cannot start worker {}: {}; retrying in {}", row.index, e.what(), describeSeconds(delay));
    transition(row, State::kBackoff, Clock::now() + delay);
    return;
  }
  row.startedAt = Clock::now();
  drawLimits(row);
  spdlog::info("started worker {} (pid {}, generation {}, slot {})", row.index, row.pid, row.generation.number,
               row.slot);
  transition(row, State::kStarting);
}

void Supervisor::startMissing() {
  if (lifecycle_.stopping()) return;
  auto now = Clock::now();
  for (unsigned i = 0; i < count(); ++i) {
    Row* row = currentRow(i);
    if (!row) {
      row = &rows_.emplace_back();
      row->generation = current_;
      row->index = i;
    } else if ((row->state != State::kBackoff && row->state != State::kFatal) || now < *row->deadline) {
      continue;
    }
    spawn(*row);
  }
}

unsigned Supervisor::servingCount() const {
  unsigned n = 0;
  for (unsigned i = 0; i < count(); ++i) {
    if (servingRow(i)) ++n;
  }
  return n;
}

unsigned Supervisor::freshCount() const {
  uint64_t staleAfterMs = stats::load(segment_.header().staleAfterMs);
  unsigned n = 0;
  for (unsigned i = 0; i < count(); ++i) {
    const Row* row = servingRow(i);
    if (row && shownState(*row, segment_.slot(row->slot), staleAfterMs) == workerStateName(stats::WorkerState::kServing)) ++n;
  }
  return n;
}

std::optional<Supervisor::WorkerRef> Supervisor::servingWorker(unsigned index) const {
  const Row* row = servingRow(index);
  if (!row) return std::nullopt;
  return WorkerRef{row->pid, row->slot};
}

std::vector<uint32_t> Supervisor::servingSlots(unsigned index) const {
  std::vector<uint32_t> slots;
  for (const Row& row : rows_) {
    if (row.index == index && row.state == State::kServing && slotSaysServing(row)) slots.push_back(row.slot);
  }
  return slots;
}

std::vector<ShownWorker> Supervisor::shownWorkers() const {
  uint64_t staleAfterMs = stats::load(segment_.header().staleAfterMs);
  std::vector<ShownWorker> out;
  for (const Row& row : rows_) {
    if (live(row) || row.generation.number == current_.number) {
      out.push_back({row.pid, shownState(row, segment_.slot(row.slot), staleAfterMs)});
    }
  }
  return out;
}

bool Supervisor::noneRunning() const { return std::none_of(rows_.begin(), rows_.end(), live); }

std::vector<pid_t> Supervisor::pids() const {
  std::vector<pid_t> out;
  for (const Row& row : rows_) {
    if (live(row)) out.push_back(row.pid);
  }
  return out;
}

uint64_t Supervisor::restarts() const { return stats::load(segment_.header().workerRestarts); }

uint64_t Supervisor::reloads() const { return stats::load(segment_.header().reloads); }

void Supervisor::storeGeneration() {
  stats::storeInHeader(segment_.header(), &stats::Header::generation, current_.number);
}

// SIGUSR2 makes a worker take what is queued on its sockets and close them
// before it drains, so nothing queued there is reset when the master drops
// them too. Shared (socket-activated) sockets are never dropped.
int Supervisor::leavingSignal(const Row& row) const {
  if (listeners_.socketActivated()) return SIGQUIT;
  const auto& kept = current_.settings->listen;
  const auto& from = row.generation.settings->listen;
  bool addressDropped = std::any_of(from.begin(), from.end(), [&](const std::string& a) {
    return std::find(kept.begin(), kept.end(), a) == kept.end();
  });
  return row.index >= count() || addressDropped ? SIGUSR2 : SIGQUIT;
}

void Supervisor::retire(Row& row) {
  bool fast = lifecycle_.stoppingFast();
  int signal = fast ? SIGTERM : lifecycle_.stopping() ? SIGQUIT : leavingSignal(row);
  Millis grace = fast ? kExitGrace : row.generation.settings->worker.drainTimeout + kExitGrace;
  ::kill(row.pid, signal);
  transition(row, State::kDraining, Clock::now() + grace);
}

void Supervisor::reconcile() {
  for (Row& row : rows_) {
    if (row.state == State::kStarting && slotSaysServing(row)) transition(row, State::kServing);
  }
  if (previous_ && !lifecycle_.stopping()) {
    // A new worker that exited with the fatal code said that it cannot
    // serve as configured, and its retries would say it again: waiting out
    // worker_timeout would only keep the old generation waiting to drain.
    auto fatal = std::find_if(rows_.begin(), rows_.end(), [&](const Row& r) {
      return r.generation.number == current_.number && r.state == State::kFatal;
    });
    if (allServing()) {
      finishSwitch();
    } else if (fatal != rows_.end()) {
      abandonSwitch(fmt::format("worker {} of generation {} exited with the fatal code", fatal->index, current_.number));
    } else if (Clock::now() >= switchDeadline_) {
      abandonSwitch(fmt::format("generation {} did not serve within worker_timeout ({})", current_.number,
                                describeSeconds(current_.settings->workerTimeout)));
    }
  }
  for (Row& row : rows_) {
    if (wanted(row)) continue;
    if (row.state == State::kStarting || row.state == State::kServing) {
      retire(row);
    } else if (row.state == State::kHung) {
      transition(row, State::kKilled);  // already sent SIGKILL; not to be restarted
    } else if (row.state == State::kBackoff || row.state == State::kFatal) {
      transition(row, State::kGone);
    }
  }
  removeGone();
  startMissing();
}

void Supervisor::removeGone() {
  std::erase_if(rows_, [](const Row& row) { return row.state == State::kGone; });
}

void Supervisor::afterCrash(Row& row, int status, const std::string& reason) {
  pid_t pid = row.pid;
  row.pid = 0;
  stats::addToHeader(segment_.header(), &stats::Header::workerRestarts);
  auto uptime = Clock::now() - row.startedAt;
  row.crashes = uptime < kStableUptime ? row.crashes + 1 : 1;
  bool hung = row.state == State::kHung;
  std::string cause = !hung                    ? describeExit(status)
                      : row.hangCause.empty() ? "killed after its heartbeat stopped"
                                              : row.hangCause;
  row.hangCause.clear();  // the row may be spawned again
  // With a module loaded, a crash is most often the module's: name it.
  const std::string& module = row.generation.settings->worker.handler.module;
  if (!module.empty() && !hung && WIFSIGNALED(status)) cause += fmt::format("; it runs handler module {}", module);
  if (!reason.empty()) cause += ": " + reason;
  row.lastFailure = fmt::format("pid {} exited: {}", pid, cause);
  if (!hung && WIFEXITED(status) && WEXITSTATUS(status) == kExitFatal) {
    // It said the failure will repeat: never at once, however long it lived.
    row.crashes = std::max(row.crashes, 2u);
    Millis delay = backoffAfter(row.crashes);
    spdlog::error("worker {} (pid {}) exited with the fatal code {}: it cannot serve as configured ({}); retrying in {}",
                  row.index, pid, kExitFatal, reason.empty() ? "its log above says why" : reason,
                  describeSeconds(delay));
    transition(row, State::kFatal, Clock::now() + delay);
    return;
  }
  if (row.crashes <= 1) {
    spdlog::warn("worker {} (pid {}) died unexpectedly ({}); restarting it", row.index, pid, cause);
    // Due now: the reconcile that follows the exit starts it.
    transition(row, State::kBackoff, Clock::now());
    return;
  }
  Millis delay = backoffAfter(row.crashes);
  spdlog::error("worker {} (pid {}) died again ({}): {} exits in a row within {}s of starting; restarting in {}",
                row.index, pid, cause, row.crashes, kStableUptime.count(), describeSeconds(delay));
  transition(row, State::kBackoff, Clock::now() + delay);
}

void Supervisor::afterRetiredItself(Row& row, const std::string& reason) {
  pid_t pid = row.pid;
  row.pid = 0;
  auto now = Clock::now();
  auto uptime = now - row.startedAt;
  std::erase_if(row.retirements, [&](Clock::time_point at) { return now - at >= kRetirementWindow; });
  row.retirements.push_back(now);
  std::string why = reason.empty() ? "its log above says why" : reason;
  row.lastFailure = fmt::format("pid {} retired itself: {}", pid, why);
  // Once backing off, a successor that retires before it has served a
  // stable uptime keeps the delay growing, as a crash would.
  bool run = row.retirements.size() >= kRetirementRun || (row.crashes >= 2 && uptime < kStableUptime);
  if (!run) {
    if (uptime >= kStableUptime) row.crashes = 0;
    spdlog::warn("worker {} (pid {}) retired itself (exit status {}): {}; starting its successor now", row.index, pid,
                 kExitRetiredItself, why);
    // Due now: the reconcile that follows the exit starts it.
    transition(row, State::kBackoff, now);
    return;
  }
  row.crashes = std::max(row.crashes + 1, 2u);
  Millis delay = backoffAfter(row.crashes);
  spdlog::error("worker {} (pid {}) retired itself again (exit status {}): {}; {} times in the last {}s: starting its "
                "successor in {}",
                row.index, pid, kExitRetiredItself, why, row.retirements.size(), kRetirementWindow.count(),
                describeSeconds(delay));
  transition(row, State::kBackoff, now + delay);
}

void Supervisor::onChildExit(pid_t pid, int status) {
  auto it = std::find_if(rows_.begin(), rows_.end(), [&](const Row& r) { return live(r) && r.pid == pid; });
  if (it == rows_.end()) {
    spdlog::debug("reaped unknown child pid {} ({})", pid, describeExit(status));
    return;
  }
  Row& row = *it;
  // Read before the slot is folded and emptied. The workers' user can write
  // anything there, and the reason goes into our log lines and lastFailure.
  const char* said = segment_.slot(row.slot).exitReason;
  std::string reason = escapeForLog({said, strnlen(said, sizeof segment_.slot(row.slot).exitReason)});
  for (const std::string& lost : slots_.release(row.slot)) {
    spdlog::error("handler counter {} of worker {} (pid {}) is lost: the segment keeps the totals of at most {} names",
                  lost, row.index, pid, stats::kRetiredHandlerCounters);
  }
  // A recycled worker that dies before its successor serves is not restarted
  // in its own row: the successor's stands for the index.
  bool leaving = row.state == State::kDraining || row.state == State::kKilled || row.recycling;
  if (leaving || !wanted(row)) {
    spdlog::info("worker {} (pid {}, generation {}) exited: {}", row.index, pid, row.generation.number,
                 describeExit(status));
    transition(row, State::kGone);
  } else if (previous_ && row.generation.number == previous_->number) {
    spdlog::warn("worker {} (pid {}, generation {}) exited during reload: {}", row.index, pid, row.generation.number,
                 describeExit(status));
    transition(row, State::kGone);
  } else if (row.state != State::kHung && WIFEXITED(status) && WEXITSTATUS(status) == kExitRetiredItself) {
    afterRetiredItself(row, reason);
  } else {
    afterCrash(row, status, reason);
  }
  // At once, not at the next tick: a crashed worker's sockets have nobody
  // accepting on them until its successor runs.
  reconcile();
}

void Supervisor::tick() {
  auto now = Clock::now();
  for (Row& row : rows_) {
    checkHeartbeat(row, now);
    checkAcceptProgress(row, now);
    checkLimits(row, now);
    if (row.state == State::kDraining && row.deadline && now >= *row.deadline) {
      spdlog::warn("worker {} (pid {}) did not exit within drain_timeout; killing it", row.index, row.pid);
      ::kill(row.pid, SIGKILL);
      transition(row, State::kKilled);
    }
  }
  reconcile();
}

void Supervisor::stopAll() {
  previous_.reset();
  auto fastDeadline = Clock::now() + kExitGrace;
  for (Row& row : rows_) {
    // A fast stop cuts short the workers already draining too.
    if (row.state == State::kDraining && lifecycle_.stoppingFast()) {
      ::kill(row.pid, SIGTERM);
      transition(row, State::kDraining, std::min(*row.deadline, fastDeadline));
    }
  }
  reconcile();
}

void Supervisor::killAll() {
  for (pid_t pid : pids()) ::kill(pid, SIGKILL);
}

unsigned Supervisor::signalReady(int signal) const {
  // A worker installs its handlers before it reports serving; before that the
  // default action of SIGUSR1 or SIGTRAP would kill it.
  unsigned sent = 0;
  for (const Row& row : rows_) {
    if (!live(row)) continue;
    const stats::Slot& slot = segment_.slot(row.slot);
    auto state = stats::WorkerState(stats::load(slot.state));
    if (stats::load(slot.pid) != uint64_t(row.pid)) continue;
    if (state != stats::WorkerState::kServing && state != stats::WorkerState::kDraining) continue;
    if (::kill(row.pid, signal) == 0) ++sent;
  }
  return sent;
}

}  // namespace tcpfork
