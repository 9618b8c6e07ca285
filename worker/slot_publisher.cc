#include "worker/slot_publisher.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace tcpfork {

SlotPublisher::SlotPublisher(const std::string& name, UniqueFd segment, uint32_t slot, uint64_t generation,
                             uint64_t workerIndex)
    : segment_(std::make_unique<stats::StatsSegment>(stats::StatsSegment::attach(name, std::move(segment)))),
      slot_(&segment_->slot(slot)) {
  begin(generation, workerIndex);
}

SlotPublisher::SlotPublisher() : local_(std::make_unique<stats::Slot>()), slot_(local_.get()) { begin(0, 0); }

void SlotPublisher::begin(uint64_t generation, uint64_t workerIndex) {
  using namespace std::chrono;
  stats::store(slot_->pid, static_cast<uint64_t>(::getpid()));
  stats::store(slot_->generation, generation);
  stats::store(slot_->workerIndex, workerIndex);
  stats::store(slot_->startedAtUnixMs,
               static_cast<uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count()));
  heartbeat();
  setState(stats::WorkerState::kStarting);
}

void SlotPublisher::setState(stats::WorkerState state) { stats::store(slot_->state, static_cast<uint64_t>(state)); }

void SlotPublisher::heartbeat() { stats::beat(*slot_); }

void SlotPublisher::loopRan(uint64_t lagNs) {
  slot_->loopLag.record(lagNs);
  heartbeat();
}

void SlotPublisher::setExitReason(const std::string& reason) {
  size_t n = std::min(reason.size(), sizeof slot_->exitReason - 1);
  std::memcpy(slot_->exitReason, reason.data(), n);
  slot_->exitReason[n] = '\0';
}

}  // namespace tcpfork
