#pragma once
// SlotPublisher: the worker's single-writer view of its slot in the stats
// segment. Owned by the Worker, used on its loop only. Stores are relaxed
// atomics; the master reads them for hang detection and supervision.

#include <string>

#include "stats/segment.h"

namespace tcpfork {

class SlotPublisher {
 public:
  // Opens the segment read-write; throws stats::SegmentError.
  SlotPublisher(const std::string& segmentName, uint32_t slot, uint64_t generation, uint64_t workerIndex);

  void setState(stats::WorkerState state);
  // Proves the loop is alive; called from a loop timer.
  void heartbeat();

 private:
  stats::StatsSegment segment_;
  stats::Slot& slot_;
};

uint64_t monotonicMillis();

}  // namespace tcpfork
