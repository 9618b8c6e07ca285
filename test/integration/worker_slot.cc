#include "test/integration/worker_slot.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "stats/fields.h"
#include "test/integration/running_master.h"

namespace tcpfork::test {

namespace {

stats::StatsSegment attachAsAWorker(const std::string& name) {
  UniqueFd fd = openSegmentAsAWorker(name);
  if (!fd) throw std::runtime_error("open the stats segment of '" + name + "' as a worker: " + std::strerror(errno));
  return stats::StatsSegment::attach(name, std::move(fd));
}

}  // namespace

WorkerSlot::WorkerSlot(const std::string& name, pid_t pid) : segment_(attachAsAWorker(name)) {
  for (uint32_t i = 0; i < segment_.slotCount() && !slot_; ++i) {
    if (stats::load(segment_.slot(i).pid) == uint64_t(pid)) slot_ = &segment_.slot(i);
  }
  if (!slot_) throw std::runtime_error("no slot of '" + name + "' holds worker " + std::to_string(pid));
}

void WorkerSlot::setOverloaded(bool overloaded) { stats::store(slot_->overloaded, overloaded ? 1 : 0); }

void WorkerSlot::addCounter(stats::Counter counter, uint64_t n) {
  stats::add(slot_->totals.counters[stats::index(counter)], n);
}

}  // namespace tcpfork::test
