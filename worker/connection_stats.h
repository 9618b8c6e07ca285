#pragma once
// ConnectionStats: everything the worker's connections write to its stats
// slot, and whether they time requests. Stats off (--no-stats, to measure
// what counting costs) makes every call here a no-op and times nothing: no
// clock is read for timing and no receive stamp asked for (unless the
// worker sheds by queueing delay, which needs the stamps: LoadShedder). So a connection
// counts without checking, and asks timed() only where timing changes what
// it does (a read that asks for the kernel's stamp). Owned by the Worker,
// shared by its connections, used on its loop only.

#include <cstdint>

#include "base/rx_timestamp.h"
#include "protocol/frame.h"
#include "worker/ack_clock.h"
#include "worker/slot_publisher.h"

namespace tcpfork {

class ConnectionStats {
 public:
  // Null: stats off.
  explicit ConnectionStats(stats::Slot* slot) : slot_(slot) {}

  // Requests are timed: reads ask for the kernel's receive stamp, and the
  // clock is read around runs of frames and at sends.
  bool timed() const { return slot_ != nullptr; }
  // CLOCK_MONOTONIC ns when timed, else 0 without reading the clock.
  uint64_t now() const { return slot_ ? monotonicNanos() : 0; }

  void count(stats::Counter counter, uint64_t by) const { tcpfork::count(slot_, counter, by); }
  void protocolError(protocol::DecodeError error) const {
    if (slot_) stats::add(slot_->totals.protocolErrors[static_cast<size_t>(error)], 1);
  }
  void openConnections(uint64_t n) const {
    if (slot_) stats::store(slot_->connectionsCurrent, n);
  }
  // The loop is running, found at `nowNs` (see Connection::yieldNow).
  void beat(uint64_t nowNs) const {
    if (slot_) stats::beatAt(*slot_, nowNs);
  }

  // Once per run of whole frames (a read's, or a completed tail's), not per
  // request: two clock reads bound the time from the first frame decoded
  // (`startedNs`) to the last ack queued, and every ack in the run is counted
  // with that duration (an upper bound for each). Counts `requests` decoded
  // and the `acks` of them answered at once (the others are held, and timed
  // as they are released); returns the end of the run (0 when untimed).
  uint64_t ranFrames(uint64_t requests, uint64_t acks, uint64_t startedNs) const {
    if (!slot_) return 0;
    uint64_t endedNs = monotonicNanos();
    count(stats::Counter::kRequestsReceived, requests);
    if (acks == 0) return endedNs;
    count(stats::Counter::kResponsesSent, acks);
    slot_->totals.handlerDuration.record(clampedElapsed(startedNs, endedNs), acks);
    return endedNs;
  }
  // A held ack is released, `elapsedNs` after its run of frames was decoded.
  void handled(uint64_t elapsedNs) const {
    if (slot_) slot_->totals.handlerDuration.record(elapsedNs);
  }
  // Where acks are timed from their receive stamp as they are sent
  // (request_duration_seconds); null when untimed.
  AckClock::Histogram* requestDuration() const { return slot_ ? &slot_->totals.requestDuration : nullptr; }

 private:
  stats::Slot* slot_;
};

}  // namespace tcpfork
