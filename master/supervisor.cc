#include "master/supervisor.h"

#include <signal.h>
#include <sys/wait.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "master/spawn.h"
#include "stats/heartbeat.h"

namespace tcpfork {
namespace {

// A worker that lived at least this long before dying was not crash-looping.
constexpr auto kStableUptime = std::chrono::seconds(10);
constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(30);
// When no stats slot is free, the next try.
constexpr auto kNoSlotRetry = std::chrono::seconds(1);
// Beyond drain_timeout, how long a draining worker may take to exit.
constexpr Millis kExitGrace{2000};

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

std::string_view Supervisor::stateName(State state) {
  switch (state) {
    case State::kNew: return "new";
    case State::kStarting: return "starting";
    case State::kServing: return "serving";
    case State::kDraining: return "draining";
    case State::kKilled: return "killed";
    case State::kHung: return "hung";
    case State::kBackoff: return "backoff";
    case State::kFatal: return "fatal";
    case State::kGone: return "gone";
  }
  return "?";
}

// The edges of the diagram in supervisor.h.
bool Supervisor::edgeExists(State from, State to) {
  auto bit = [](State s) { return 1u << unsigned(s); };
  using enum State;
  unsigned next = 0;
  switch (from) {
    case kNew: next = bit(kStarting) | bit(kBackoff); break;
    case kBackoff:
    case kFatal: next = bit(kStarting) | bit(kBackoff) | bit(kGone); break;
    case kStarting:
      next = bit(kStarting) | bit(kServing) | bit(kDraining) | bit(kKilled) | bit(kHung) | bit(kBackoff) |
             bit(kFatal) | bit(kGone);
      break;
    case kServing:
      next = bit(kStarting) | bit(kDraining) | bit(kHung) | bit(kBackoff) | bit(kFatal) | bit(kGone);
      break;
    case kHung: next = bit(kStarting) | bit(kBackoff) | bit(kFatal) | bit(kKilled) | bit(kGone); break;
    case kDraining: next = bit(kDraining) | bit(kKilled) | bit(kGone); break;
    case kKilled: next = bit(kGone); break;
    case kGone: break;
  }
  return next & bit(to);
}

void Supervisor::transition(Row& row, State to, std::optional<Clock::time_point> deadline) {
  if (!edgeExists(row.state, to)) {
    // A bug, not a worker's fault: say so, and follow the process anyway so
    // the table keeps matching what runs.
    spdlog::error("supervisor: worker {} (pid {}, generation {}) moved {} -> {}, an edge the state diagram lacks",
                  row.index, row.pid, row.generation.number, stateName(row.state), stateName(to));
  }
  spdlog::debug("worker {} (pid {}, generation {}): {} -> {}", row.index, row.pid, row.generation.number,
                stateName(row.state), stateName(to));
  row.state = to;
  row.deadline = deadline;
}

Supervisor::Supervisor(stats::StatsSegment& segment, Listeners& listeners, unsigned maxWorkers)
    : segment_(segment), slots_(segment), listeners_(listeners), maxWorkers_(maxWorkers) {
  current_.settings = std::make_shared<GenerationSettings>();
}

void Supervisor::start(const GenerationSettings& settings) {
  // A master started by a binary upgrade continues its predecessor's count.
  current_ = {stats::incrementInHeader(segment_.header(), &stats::Header::generation),
              std::make_shared<const GenerationSettings>(settings)};
  for (unsigned i = 0; i < settings.count; ++i) listeners_.ensure(i, settings.listen);
  startMissing();
}

bool Supervisor::wanted(const Row& row) const {
  if (stopping_) return false;
  const Generation* g = row.generation.number == current_.number ? &current_
                        : previous_ && row.generation.number == previous_->number ? &*previous_
                                                                                   : nullptr;
  return g && row.index < g->settings->count;
}

bool Supervisor::serving(const Row& row) const {
  if (!live(row)) return false;
  const stats::Slot& s = segment_.slot(row.slot);
  return stats::load(s.pid) == uint64_t(row.pid) && stats::load(s.state) == uint64_t(stats::WorkerState::kServing);
}

const Supervisor::Row* Supervisor::currentRow(unsigned index) const {
  for (const Row& row : rows_) {
    bool standsForIndex = row.state == State::kStarting || row.state == State::kServing ||
                          row.state == State::kHung || row.state == State::kBackoff || row.state == State::kFatal;
    if (standsForIndex && row.generation.number == current_.number && row.index == index) return &row;
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
                  seconds(std::chrono::duration_cast<Millis>(kNoSlotRetry)));
    transition(row, State::kBackoff, Clock::now() + kNoSlotRetry);
    return;
  }
  std::vector<int> fds = listeners_.fdsFor(row.index, settings.listen);
  WorkerArgs args;
  args.settings = settings.worker;
  args.role = fmt::format("worker.{}", row.index);
  args.index = row.index;
  args.generation = row.generation.number;
  args.statsName = segment_.name();
  args.slot = int(row.slot);
  args.parentPid = ::getpid();
  args.listenFds = fds;
  SpawnRequest request;
  request.argv = {settings.binary};
  for (auto& arg : toArgv(args)) request.argv.push_back(std::move(arg));
  request.inheritFds = fds;
  request.uid = settings.uid;
  request.gid = settings.gid;
  try {
    row.pid = spawnProcess(request);
  } catch (const std::exception& e) {
    slots_.release(row.slot);
    row.pid = 0;
    // A start that failed is retried no sooner than the first backoff.
    row.crashes = std::max(row.crashes + 1, 2u);
    Millis delay = backoffAfter(row.crashes);
    row.lastFailure = fmt::format("cannot start: {}", e.what());
    spdlog::error("cannot start worker {}: {}; retrying in {}", row.index, e.what(), seconds(delay));
    transition(row, State::kBackoff, Clock::now() + delay);
    return;
  }
  row.startedAt = Clock::now();
  spdlog::info("started worker {} (pid {}, generation {}, slot {})", row.index, row.pid, row.generation.number,
               row.slot);
  transition(row, State::kStarting);
}

void Supervisor::startMissing() {
  if (stopping_) return;
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
    const Row* row = currentRow(i);
    if (row && row->state == State::kServing && serving(*row)) ++n;
  }
  return n;
}

std::optional<Supervisor::WorkerRef> Supervisor::servingWorker(unsigned index) const {
  const Row* row = index < count() ? currentRow(index) : nullptr;
  if (!row || row->state != State::kServing || !serving(*row)) return std::nullopt;
  return WorkerRef{row->pid, row->slot};
}

unsigned Supervisor::backingOff() const {
  return unsigned(std::count_if(rows_.begin(), rows_.end(), [&](const Row& r) {
    return r.state == State::kBackoff && r.generation.number == current_.number;
  }));
}

unsigned Supervisor::fatal() const {
  return unsigned(std::count_if(rows_.begin(), rows_.end(), [&](const Row& r) {
    return r.state == State::kFatal && r.generation.number == current_.number;
  }));
}

bool Supervisor::noneRunning() const { return std::none_of(rows_.begin(), rows_.end(), live); }

std::vector<pid_t> Supervisor::pids() const {
  std::vector<pid_t> out;
  for (const Row& row : rows_) {
    if (live(row)) out.push_back(row.pid);
  }
  return out;
}

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
  int signal = fastStop_ ? SIGTERM : stopping_ ? SIGQUIT : leavingSignal(row);
  Millis grace = fastStop_ ? kExitGrace : row.generation.settings->worker.drainTimeout + kExitGrace;
  ::kill(row.pid, signal);
  transition(row, State::kDraining, Clock::now() + grace);
}

bool Supervisor::reload(const GenerationSettings& settings, std::string& why) {
  if (stopping_) {
    why = "shutting down";
    return false;
  }
  if (previous_) {
    why = fmt::format("generation {} is still starting", current_.number);
    return false;
  }
  if (slots_.freeCount() < settings.count) {
    why = fmt::format("the stats segment has {} free slots and the new generation needs {}: wait until the "
                      "draining workers exit (at most drain_timeout) or raise max_workers",
                      slots_.freeCount(), settings.count);
    return false;
  }
  try {
    for (unsigned i = 0; i < settings.count; ++i) listeners_.ensure(i, settings.listen);
  } catch (const std::exception& e) {
    listeners_.keepOnly(count(), current_.settings->listen);
    why = e.what();
    return false;
  }
  previous_ = current_;
  switchDeadline_ = Clock::now() + settings.workerTimeout;
  current_ = {current_.number + 1, std::make_shared<const GenerationSettings>(settings)};
  storeGeneration();
  startMissing();
  spdlog::info("reload: generation {} starting ({} workers); generation {} serves until it is ready", current_.number,
               count(), previous_->number);
  return true;
}

void Supervisor::finishSwitch() {
  listeners_.keepOnly(count(), current_.settings->listen);
  previous_.reset();
  ++reloads_;
  stats::addToHeader(segment_.header(), &stats::Header::reloads);
  spdlog::info("reload: generation {} serving; generation {} draining", current_.number, current_.number - 1);
}

std::string Supervisor::notServingReasons() const {
  std::string out;
  for (unsigned i = 0; i < count(); ++i) {
    const Row* row = currentRow(i);
    if (row && row->state == State::kServing && serving(*row)) continue;
    std::string why;
    if (row && live(*row)) {
      why = fmt::format("pid {} started, not serving yet", row->pid);
      if (!row->lastFailure.empty()) why += fmt::format(" (before: {})", row->lastFailure);
    } else {
      why = !row || row->lastFailure.empty() ? "not started" : row->lastFailure;
    }
    out += fmt::format("{}worker {}: {}", out.empty() ? "" : "; ", i, why);
  }
  return out;
}

// The new generation goes; the previous one is current again. Its workers
// that died meanwhile were not restarted during the switch: reconcile starts
// them at once.
void Supervisor::abandonSwitch() {
  spdlog::error("reload failed: generation {} did not serve within worker_timeout ({}): {}; generation {} keeps serving",
                current_.number, seconds(current_.settings->workerTimeout), notServingReasons(), previous_->number);
  listeners_.keepOnly(previous_->settings->count, previous_->settings->listen);
  for (Row& row : rows_) {
    if (row.generation.number != current_.number) continue;
    // New workers that already serve may owe acks: reconcile lets them drain.
    if (row.state == State::kStarting || row.state == State::kHung) {
      ::kill(row.pid, SIGKILL);
      transition(row, State::kKilled);
    } else if (row.state == State::kBackoff || row.state == State::kFatal) {
      transition(row, State::kGone);
    }
  }
  current_ = *previous_;
  previous_.reset();
  storeGeneration();
}

void Supervisor::reconcile() {
  for (Row& row : rows_) {
    if (row.state == State::kStarting && serving(row)) transition(row, State::kServing);
  }
  if (previous_ && !stopping_) {
    if (allServing()) {
      finishSwitch();
    } else if (Clock::now() >= switchDeadline_) {
      abandonSwitch();
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

void Supervisor::scale(int delta) {
  if (stopping_ || previous_) {
    spdlog::warn("not scaling while {}", stopping_ ? "shutting down" : "a reload is in progress");
    return;
  }
  auto settings = std::make_shared<GenerationSettings>(*current_.settings);
  if (delta > 0) {
    if (count() >= maxWorkers_) {
      spdlog::warn("TTIN: already at max_workers ({})", maxWorkers_);
      return;
    }
    try {
      listeners_.ensure(count(), settings->listen);
    } catch (const std::exception& e) {
      spdlog::error("TTIN: cannot add a listener: {}", e.what());
      return;
    }
    ++settings->count;
  } else {
    if (count() <= 1) {
      spdlog::warn("TTOU: keeping the last worker");
      return;
    }
    --settings->count;
    // Drop our copy of its listeners first: the worker takes what is queued
    // on them, and its close is then the last one.
    listeners_.keepOnly(settings->count, settings->listen);
  }
  current_.settings = std::move(settings);
  reconcile();
  spdlog::info("{}: now {} workers", delta > 0 ? "TTIN" : "TTOU", count());
}

void Supervisor::afterCrash(Row& row, int status) {
  pid_t pid = row.pid;
  row.pid = 0;
  ++restarts_;
  stats::addToHeader(segment_.header(), &stats::Header::workerRestarts);
  auto uptime = Clock::now() - row.startedAt;
  row.crashes = uptime < kStableUptime ? row.crashes + 1 : 1;
  bool hung = row.state == State::kHung;
  std::string cause = hung ? "killed after its heartbeat stopped" : describeExit(status);
  row.lastFailure = fmt::format("pid {} exited: {}", pid, cause);
  if (!hung && WIFEXITED(status) && WEXITSTATUS(status) == kExitFatal) {
    // It said the failure will repeat: never at once, however long it lived.
    row.crashes = std::max(row.crashes, 2u);
    Millis delay = backoffAfter(row.crashes);
    spdlog::error("worker {} (pid {}) exited with the fatal code {}: it cannot serve as configured (its log above "
                  "says why); retrying in {}",
                  row.index, pid, kExitFatal, seconds(delay));
    transition(row, State::kFatal, Clock::now() + delay);
    return;
  }
  if (row.crashes <= 1) {
    spdlog::warn("worker {} (pid {}) died unexpectedly ({}); restarting it", row.index, pid, cause);
    spawn(row);
    return;
  }
  Millis delay = backoffAfter(row.crashes);
  spdlog::error("worker {} (pid {}) died again ({}): {} exits in a row within {}s of starting; restarting in {}",
                row.index, pid, cause, row.crashes, kStableUptime.count(), seconds(delay));
  transition(row, State::kBackoff, Clock::now() + delay);
}

void Supervisor::onChildExit(pid_t pid, int status) {
  auto it = std::find_if(rows_.begin(), rows_.end(), [&](const Row& r) { return live(r) && r.pid == pid; });
  if (it == rows_.end()) {
    spdlog::debug("reaped unknown child pid {} ({})", pid, describeExit(status));
    return;
  }
  Row& row = *it;
  slots_.release(row.slot);
  bool leaving = row.state == State::kDraining || row.state == State::kKilled;
  if (leaving || !wanted(row)) {
    spdlog::info("worker {} (pid {}, generation {}) exited: {}", row.index, pid, row.generation.number,
                 describeExit(status));
    transition(row, State::kGone);
  } else if (previous_ && row.generation.number == previous_->number) {
    spdlog::warn("worker {} (pid {}, generation {}) exited during reload: {}", row.index, pid, row.generation.number,
                 describeExit(status));
    transition(row, State::kGone);
  } else {
    afterCrash(row, status);
  }
  removeGone();
}

void Supervisor::checkHeartbeat(Row& row) {
  bool watched = row.state == State::kStarting || row.state == State::kServing || row.state == State::kDraining;
  if (!watched || stopping_) return;
  uint64_t silentMs = stats::silentForMs(segment_.slot(row.slot));
  auto timeoutMs = uint64_t(current_.settings->workerTimeout.count());
  if (silentMs <= timeoutMs) return;
  spdlog::error("worker {} (pid {}) has not beaten for {} ms (worker_timeout {}); killing it", row.index, row.pid,
                silentMs, timeoutMs);
  ::kill(row.pid, SIGKILL);
  // A draining worker that hangs would otherwise live until its drain
  // deadline with its connections unanswered and, after TTOU, its listening
  // socket still taking a share of new connections.
  transition(row, row.state == State::kDraining ? State::kKilled : State::kHung);
}

void Supervisor::tick() {
  auto now = Clock::now();
  for (Row& row : rows_) {
    checkHeartbeat(row);
    if (row.state == State::kDraining && row.deadline && now >= *row.deadline) {
      spdlog::warn("worker {} (pid {}) did not exit within drain_timeout; killing it", row.index, row.pid);
      ::kill(row.pid, SIGKILL);
      transition(row, State::kKilled);
    }
  }
  reconcile();
}

void Supervisor::stopAll(bool graceful) {
  stopping_ = true;
  fastStop_ = !graceful;
  previous_.reset();
  auto fastDeadline = Clock::now() + kExitGrace;
  for (Row& row : rows_) {
    // A fast stop cuts short the workers already draining too.
    if (row.state == State::kDraining && fastStop_) {
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
