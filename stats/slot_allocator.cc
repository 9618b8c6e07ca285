#include "stats/slot_allocator.h"

#include <unistd.h>

#include <stdexcept>

#include "stats/header_lock.h"
#include "stats/heartbeat.h"
#include "stats/process_info.h"
#include "stats/snapshot.h"

namespace tcpfork::stats {

SlotAllocator::SlotAllocator(StatsSegment& segment) : segment_(segment), self_(uint64_t(::getpid())) {}

uint32_t SlotAllocator::allocate() {
  HeaderLock lock(segment_.header());
  for (uint32_t i = 0; i < segment_.slotCount(); ++i) {
    Slot& s = segment_.slot(i);
    if (load(s.ownerPid) != 0) continue;
    // Folding left the slot empty with zero totals; the worker fills in the rest.
    store(s.ownerPid, self_);
    beat(s);
    return i;
  }
  throw std::runtime_error("no free stats slot (more than two generations of max_workers running?)");
}

std::vector<std::string> SlotAllocator::release(uint32_t slot) {
  HeaderLock lock(segment_.header());
  return foldIntoRetired(segment_.header(), segment_.slot(slot));
}

bool SlotAllocator::owns(uint32_t slot) const { return load(segment_.slot(slot).ownerPid) == self_; }

unsigned SlotAllocator::freeCount() const {
  unsigned free = 0;
  for (uint32_t i = 0; i < segment_.slotCount(); ++i) {
    if (load(segment_.slot(i).ownerPid) == 0) ++free;
  }
  return free;
}

unsigned SlotAllocator::reclaimOrphans() {
  auto alive = [](uint64_t pid) { return processRunning(pid_t(pid)); };
  unsigned reclaimed = 0;
  HeaderLock lock(segment_.header());
  for (uint32_t i = 0; i < segment_.slotCount(); ++i) {
    Slot& s = segment_.slot(i);
    uint64_t owner = load(s.ownerPid);
    if (owner == 0 || owner == self_ || alive(owner) || alive(load(s.pid))) continue;
    foldIntoRetired(segment_.header(), s);
    ++reclaimed;
  }
  return reclaimed;
}

void storeInHeader(Header& header, uint64_t Header::*field, uint64_t value) {
  HeaderLock lock(header);
  store(header.*field, value);
}

void addToHeader(Header& header, uint64_t Header::*field, uint64_t by) {
  HeaderLock lock(header);
  add(header.*field, by);
}

uint64_t incrementInHeader(Header& header, uint64_t Header::*field) {
  HeaderLock lock(header);
  uint64_t next = load(header.*field) + 1;
  store(header.*field, next);
  return next;
}

}  // namespace tcpfork::stats
