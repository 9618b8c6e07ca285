#pragma once
// WorkerSlot: one running worker's stats slot, mapped read-write as the
// worker maps it (openSegmentAsAWorker), so that a test can write what the
// worker writes there (its overloaded flag, a counter, a histogram) and watch the master,
// /status, the status page and tcpfork-stats act on it. The test is then a
// second writer of that slot: it writes only fields the worker under test
// leaves alone.

#include <sys/types.h>

#include <string>

#include "stats/metrics.h"
#include "stats/segment.h"

namespace tcpfork::test {

class WorkerSlot {
 public:
  // The slot of the worker `pid` of instance `name`; throws when the segment
  // cannot be opened or no slot holds that pid.
  WorkerSlot(const std::string& name, pid_t pid);

  stats::Slot& slot() { return *slot_; }
  void setOverloaded(bool overloaded);
  void addCounter(stats::Counter counter, uint64_t n);
  void recordQueueDelay(uint64_t ns) { slot_->totals.queueDelay.record(ns); }

 private:
  stats::StatsSegment segment_;
  stats::Slot* slot_ = nullptr;
};

}  // namespace tcpfork::test
