#include "stats/snapshot.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

namespace tcpfork::stats {
namespace {

void addTotals(Totals& into, const Totals& from) {
  for (size_t i = 0; i < kCounterCount; ++i) add(into.counters[i], load(from.counters[i]));
  for (size_t i = 0; i < protocol::kDecodeErrorCount; ++i) add(into.protocolErrors[i], load(from.protocolErrors[i]));
  for (size_t i = 0; i < kLatencyBuckets; ++i) add(into.latencyBuckets[i], load(from.latencyBuckets[i]));
  add(into.latencySumNs, load(from.latencySumNs));
}

void zeroTotals(Totals& t) {
  for (auto& c : t.counters) store(c, 0);
  for (auto& e : t.protocolErrors) store(e, 0);
  for (auto& b : t.latencyBuckets) store(b, 0);
  store(t.latencySumNs, 0);
}

uint64_t loadAcquire(const uint64_t& field) {
  return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(field)).load(std::memory_order_acquire);
}

Snapshot readOnce(const StatsSegment& segment) {
  const Header& h = segment.header();
  Snapshot s;
  s.masterPid = static_cast<pid_t>(load(h.masterPid));
  s.generation = load(h.generation);
  s.workerRestarts = load(h.workerRestarts);
  s.reloads = load(h.reloads);
  s.autoProfiles = load(h.autoProfiles);
  s.retired = readTotals(h.retired);
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
    w.connectionsCurrent = load(slot.connectionsCurrent);
    w.profiling = load(slot.profiling) != 0;
    w.profilesWritten = load(slot.profilesWritten);
    w.totals = readTotals(slot.totals);
    s.workers.push_back(w);
  }
  return s;
}

}  // namespace

TotalsView& TotalsView::operator+=(const TotalsView& other) {
  for (size_t i = 0; i < counters.size(); ++i) counters[i] += other.counters[i];
  for (size_t i = 0; i < protocolErrors.size(); ++i) protocolErrors[i] += other.protocolErrors[i];
  for (size_t i = 0; i < latencyBuckets.size(); ++i) latencyBuckets[i] += other.latencyBuckets[i];
  latencySumNs += other.latencySumNs;
  return *this;
}

uint64_t TotalsView::protocolErrorTotal() const {
  uint64_t n = 0;
  for (uint64_t e : protocolErrors) n += e;
  return n;
}

uint64_t TotalsView::latencyCount() const {
  uint64_t n = 0;
  for (uint64_t b : latencyBuckets) n += b;
  return n;
}

uint64_t TotalsView::latencyQuantileNs(double q) const {
  uint64_t count = latencyCount();
  if (count == 0) return 0;
  auto rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * double(count))));
  uint64_t seen = 0;
  for (size_t i = 0; i < kLatencyBoundsNs.size(); ++i) {
    seen += latencyBuckets[i];
    if (seen >= rank) return kLatencyBoundsNs[i];
  }
  return kLatencyBoundsNs.back();
}

TotalsView readTotals(const Totals& t) {
  TotalsView v;
  for (size_t i = 0; i < kCounterCount; ++i) v.counters[i] = load(t.counters[i]);
  for (size_t i = 0; i < protocol::kDecodeErrorCount; ++i) v.protocolErrors[i] = load(t.protocolErrors[i]);
  for (size_t i = 0; i < kLatencyBuckets; ++i) v.latencyBuckets[i] = load(t.latencyBuckets[i]);
  v.latencySumNs = load(t.latencySumNs);
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

TotalsView Snapshot::total() const {
  TotalsView t = retired;
  for (const auto& w : workers) t += w.totals;
  return t;
}

uint64_t Snapshot::connected() const {
  uint64_t n = 0;
  for (const auto& w : workers) n += w.connectionsCurrent;
  return n;
}

void foldIntoRetired(Header& header, Slot& slot) {
  std::atomic_ref<uint64_t> sequence(header.foldSequence);
  sequence.fetch_add(1, std::memory_order_acq_rel);
  addTotals(header.retired, slot.totals);
  store(slot.state, uint64_t(WorkerState::kEmpty));
  store(slot.pid, 0);
  store(slot.ownerPid, 0);
  store(slot.connectionsCurrent, 0);
  store(slot.profiling, 0);
  store(slot.profilesWritten, 0);
  store(slot.profileRequestMs, 0);
  zeroTotals(slot.totals);
  sequence.fetch_add(1, std::memory_order_release);
}

}  // namespace tcpfork::stats
