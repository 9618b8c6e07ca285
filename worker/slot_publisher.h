#pragma once
// SlotPublisher: the worker's stats slot. Owned by the Worker; the worker is
// the slot's one writer while it runs (layout.h says which fields the master
// writes and when), and each field has one writer thread: stackDumps is the
// StackDump thread's, every other field the loop thread's (the Worker, its
// Connections, Acceptors and CpuProfiler, and a handler module's counters).
// That is what lets a count be a relaxed load and store (plain moves on x86)
// rather than a locked add: connections count straight into the slot once
// per read batch, and the master reads it for /metrics and hang detection.
// Standalone (no master) the slot lives in ordinary memory, so the worker
// still counts.

#include <memory>
#include <string>

#include "base/unique_fd.h"
#include "stats/heartbeat.h"
#include "stats/metrics.h"
#include "stats/segment.h"

namespace tcpfork {

class SlotPublisher {
 public:
  // Maps the master's segment from its inherited descriptor, which it
  // closes (throws stats::SegmentError). `name` is the instance's, for errors.
  SlotPublisher(const std::string& name, UniqueFd segment, uint32_t slot, uint64_t generation, uint64_t workerIndex);
  // A private slot, for a standalone worker.
  SlotPublisher();

  stats::Slot& slot() { return *slot_; }
  void setState(stats::WorkerState state);
  // Proves the loop is alive; called from a loop timer.
  void heartbeat();
  // The loop timer ran `lagNs` late: counted, and a heartbeat.
  void loopRan(uint64_t lagNs);
  // Before a fatal exit: why, for the master (cut to fit the slot).
  void setExitReason(const std::string& reason);

 private:
  void begin(uint64_t generation, uint64_t workerIndex);

  std::unique_ptr<stats::StatsSegment> segment_;
  std::unique_ptr<stats::Slot> local_;
  stats::Slot* slot_;
};

// The worker's hot-path counting, a no-op when stats are off (`slot` null).
inline void count(stats::Slot* slot, stats::Counter counter, uint64_t by) {
  if (slot) stats::add(slot->totals.counters[stats::index(counter)], by);
}

using stats::monotonicMillis;
using stats::monotonicNanos;

}  // namespace tcpfork
