#pragma once
// SlotAllocator: a master's side of the slot table. Which master owns a slot
// lives in the segment (Slot::ownerPid: 0 free, else the owner's pid), because
// two masters share one segment during a binary upgrade and each must take
// only free slots. Every write here is made under HeaderLock.
//
// These are the master's only writes to slots besides profileRequestMs (see
// layout.h): it claims a free slot before the worker exists and folds it
// into the retired totals after the worker has exited, so no slot ever has
// two writers at once.

#include <cstdint>
#include <string>
#include <vector>

#include "stats/segment.h"

namespace tcpfork::stats {

class SlotAllocator {
 public:
  explicit SlotAllocator(StatsSegment& segment);

  // Claims a free slot for a worker about to be spawned, its heartbeat
  // stamped now (the hang timeout counts from the spawn until the worker's
  // first beat). Throws std::runtime_error when every slot is taken.
  uint32_t allocate();
  // After the slot's worker has exited: its counts join the retired totals
  // (so exported counters never go down) and the slot is free again.
  // Returns the module counter names the retired table had no room for.
  std::vector<std::string> release(uint32_t slot);
  bool owns(uint32_t slot) const;
  unsigned freeCount() const;
  // A master that shared the segment (binary upgrade) and died without
  // folding its workers leaves slots owned by a dead pid. Its workers die
  // with it; once they have, their slots are folded and freed. Returns how
  // many.
  unsigned reclaimOrphans();

 private:
  StatsSegment& segment_;
  uint64_t self_;
};

// The header fields masters write (generation, workerRestarts, reloads,
// autoProfiles), each under HeaderLock.
void storeInHeader(Header& header, uint64_t Header::*field, uint64_t value);
void addToHeader(Header& header, uint64_t Header::*field, uint64_t by = 1);
// Increments `field` and returns the new value, as one locked step.
uint64_t incrementInHeader(Header& header, uint64_t Header::*field);

}  // namespace tcpfork::stats
