#include "stats/snapshot.h"

#include "stats/heartbeat.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>

namespace tcpfork::stats {
namespace {

void addTotals(Totals& into, const Totals& from) {
  for (size_t i = 0; i < kCounterCount; ++i) add(into.counters[i], load(from.counters[i]));
  for (size_t i = 0; i < protocol::kDecodeErrorCount; ++i) add(into.protocolErrors[i], load(from.protocolErrors[i]));
  into.requestDuration.addFrom(from.requestDuration);
  into.handlerDuration.addFrom(from.handlerDuration);
  into.queueDelay.addFrom(from.queueDelay);
}

void zeroTotals(Totals& t) {
  for (auto& c : t.counters) store(c, 0);
  for (auto& e : t.protocolErrors) store(e, 0);
  t.requestDuration.clear();
  t.handlerDuration.clear();
  t.queueDelay.clear();
}

std::string fixedString(const char* chars, size_t size) { return std::string(chars, strnlen(chars, size)); }

// Whether counters[i] is one a worker of ours could have declared: a name
// by the rule, not declared before it. A process of the workers' user can
// write anything into the segment, and a name ends up in the exposition's
// sample lines and in JSON keys, so readers and the fold skip the others.
// (Help is any text, escaped where it is shown.)
bool declarable(const HandlerCounter* counters, size_t i) {
  if (handlerCounterNameProblem(fixedString(counters[i].name, kHandlerCounterNameBytes))) return false;
  for (size_t j = 0; j < i; ++j) {
    if (strncmp(counters[j].name, counters[i].name, kHandlerCounterNameBytes) == 0) return false;
  }
  return true;
}

std::vector<HandlerCounterView> readHandlerCounters(const HandlerCounter* counters, const uint64_t& count,
                                                    size_t capacity) {
  std::vector<HandlerCounterView> out;
  size_t n = std::min<size_t>(loadAcquire(count), capacity);
  for (size_t i = 0; i < n; ++i) {
    if (!declarable(counters, i)) continue;
    out.push_back({fixedString(counters[i].name, kHandlerCounterNameBytes),
                   fixedString(counters[i].help, kHandlerCounterHelpBytes), load(counters[i].value)});
  }
  return out;
}

// Adds `slot`'s module counters to the header's, by name; returns the names
// that found no room.
std::vector<std::string> foldHandlerCounters(Header& header, Slot& slot) {
  std::vector<std::string> lost;
  size_t declared = std::min<size_t>(loadAcquire(slot.handlerCounterCount), kHandlerCounters);
  for (size_t i = 0; i < declared; ++i) {
    const HandlerCounter& from = slot.handlerCounters[i];
    if (!declarable(slot.handlerCounters, i)) continue;
    // Bounded: the workers' user can write any count into the header.
    size_t retired = std::min<size_t>(load(header.retiredHandlerCount), kRetiredHandlerCounters);
    size_t at = 0;
    while (at < retired && strncmp(header.retiredHandler[at].name, from.name, kHandlerCounterNameBytes) != 0) ++at;
    if (at == kRetiredHandlerCounters) {
      lost.push_back(fixedString(from.name, kHandlerCounterNameBytes));
      continue;
    }
    HandlerCounter& into = header.retiredHandler[at];
    if (at == retired) {
      memcpy(into.name, from.name, sizeof into.name);
      memcpy(into.help, from.help, sizeof into.help);
      store(into.value, 0);
      storeRelease(header.retiredHandlerCount, retired + 1);
    }
    add(into.value, load(from.value));
  }
  store(slot.handlerCounterCount, 0);
  memset(slot.handlerCounters, 0, sizeof slot.handlerCounters);
  memset(slot.exitReason, 0, sizeof slot.exitReason);
  return lost;
}

Snapshot readOnce(const StatsSegment& segment) {
  const Header& h = segment.header();
  Snapshot s;
  s.masterPid = static_cast<pid_t>(load(h.masterPid));
  s.generation = load(h.generation);
  s.staleAfterMs = load(h.staleAfterMs);
  s.workerRestarts = load(h.workerRestarts);
  s.reloads = load(h.reloads);
  s.autoProfiles = load(h.autoProfiles);
  for (const auto& reason : kRecycleReasons) s.recycles[size_t(reason.id)] = load(h.*reason.field);
  s.retired = readTotals(h.retired);
  s.retiredHandlerCounters = readHandlerCounters(h.retiredHandler, h.retiredHandlerCount, kRetiredHandlerCounters);
  for (uint32_t i = 0; i < segment.slotCount(); ++i) {
    const Slot& slot = segment.slot(i);
    auto state = static_cast<WorkerState>(load(slot.state));
    if (state == WorkerState::kEmpty) continue;
    WorkerView w;
    w.slot = i;
    w.pid = static_cast<pid_t>(load(slot.pid));
    w.state = state;
    w.generation = load(slot.generation);
    w.index = load(slot.workerIndex);
    w.startedAtUnixMs = load(slot.startedAtUnixMs);
    w.heartbeatMonotonicMs = load(slot.heartbeatMonotonicMs);
    w.heartbeatAgeMs = silentForMs(slot);
    w.connectionsCurrent = load(slot.connectionsCurrent);
    w.profiling = load(slot.profiling) != 0;
    w.profilesWritten = load(slot.profilesWritten);
    w.overloaded = load(slot.overloaded) != 0;
    w.totals = readTotals(slot.totals);
    w.loopLag = HistogramView<kLoopLagBoundsNs>::read(slot.loopLag);
    w.handlerCounters = readHandlerCounters(slot.handlerCounters, slot.handlerCounterCount, kHandlerCounters);
    s.workers.push_back(w);
  }
  return s;
}

}  // namespace

TotalsView& TotalsView::operator+=(const TotalsView& other) {
  for (size_t i = 0; i < counters.size(); ++i) counters[i] += other.counters[i];
  for (size_t i = 0; i < protocolErrors.size(); ++i) protocolErrors[i] += other.protocolErrors[i];
  requestDuration += other.requestDuration;
  handlerDuration += other.handlerDuration;
  queueDelay += other.queueDelay;
  return *this;
}

TotalsView TotalsView::since(const TotalsView& before) const {
  TotalsView d = *this;
  for (size_t i = 0; i < d.counters.size(); ++i) d.counters[i] -= std::min(d.counters[i], before.counters[i]);
  for (size_t i = 0; i < d.protocolErrors.size(); ++i) {
    d.protocolErrors[i] -= std::min(d.protocolErrors[i], before.protocolErrors[i]);
  }
  d.requestDuration = requestDuration.since(before.requestDuration);
  d.handlerDuration = handlerDuration.since(before.handlerDuration);
  d.queueDelay = queueDelay.since(before.queueDelay);
  return d;
}

uint64_t TotalsView::protocolErrorTotal() const {
  uint64_t n = 0;
  for (uint64_t e : protocolErrors) n += e;
  return n;
}

TotalsView readTotals(const Totals& t) {
  TotalsView v;
  for (size_t i = 0; i < kCounterCount; ++i) v.counters[i] = load(t.counters[i]);
  for (size_t i = 0; i < protocol::kDecodeErrorCount; ++i) v.protocolErrors[i] = load(t.protocolErrors[i]);
  v.requestDuration = HistogramView<kRequestBoundsNs>::read(t.requestDuration);
  v.handlerDuration = HistogramView<kHandlerBoundsNs>::read(t.handlerDuration);
  v.queueDelay = HistogramView<kQueueDelayBoundsNs>::read(t.queueDelay);
  return v;
}

Snapshot takeSnapshot(const StatsSegment& segment) {
  const uint64_t& sequence = segment.header().foldSequence;
  // A fold is a handful of stores; a reader racing one retries a few times.
  for (int attempt = 0;; ++attempt) {
    uint64_t before = loadAcquire(sequence);
    if (before % 2 == 0 || attempt >= 1000) {
      Snapshot s = readOnce(segment);
      std::atomic_thread_fence(std::memory_order_acquire);
      if ((before % 2 == 0 && loadAcquire(sequence) == before) || attempt >= 1000) return s;
    }
    std::this_thread::yield();
  }
}

std::string_view shownState(WorkerState state, uint64_t heartbeatAgeMs, uint64_t staleAfterMs) {
  if (state == WorkerState::kServing && staleAfterMs > 0 && heartbeatAgeMs > staleAfterMs) return kStalledState;
  return workerStateName(state);
}

TotalsView Snapshot::total() const {
  TotalsView t = retired;
  for (const auto& w : workers) t += w.totals;
  return t;
}

std::map<std::string, HandlerCounterView> sumByName(const std::vector<HandlerCounterView>& counters) {
  std::map<std::string, HandlerCounterView> out;
  for (const auto& c : counters) {
    auto [it, fresh] = out.emplace(c.name, c);
    if (!fresh) it->second.value += c.value;
  }
  return out;
}

std::map<std::string, HandlerCounterView> Snapshot::handlerTotals() const {
  std::vector<HandlerCounterView> all = retiredHandlerCounters;
  for (const auto& w : workers) all.insert(all.end(), w.handlerCounters.begin(), w.handlerCounters.end());
  return sumByName(all);
}

uint64_t Snapshot::connected() const {
  uint64_t n = 0;
  for (const auto& w : workers) n += w.connectionsCurrent;
  return n;
}

std::vector<std::string> foldIntoRetired(Header& header, Slot& slot) {
  std::atomic_ref<uint64_t> sequence(header.foldSequence);
  sequence.fetch_add(1, std::memory_order_acq_rel);
  addTotals(header.retired, slot.totals);
  std::vector<std::string> lost = foldHandlerCounters(header, slot);
  store(slot.state, uint64_t(WorkerState::kEmpty));
  store(slot.pid, 0);
  store(slot.ownerPid, 0);
  store(slot.connectionsCurrent, 0);
  store(slot.profiling, 0);
  store(slot.profilesWritten, 0);
  store(slot.overloaded, 0);
  store(slot.profileRequestMs, 0);
  zeroTotals(slot.totals);
  slot.loopLag.clear();
  sequence.fetch_add(1, std::memory_order_release);
  return lost;
}

}  // namespace tcpfork::stats
