#pragma once
// LoadShedder: a worker's overload shedding (overload.shed): decides, per
// request about to be dispatched, whether to answer it busy instead, and
// counts what it sees into the worker's stats slot: each request's queueing
// delay (queue_delay_seconds), the requests shed (requests_shed_total) and
// whether the worker is overloaded (the slot's `overloaded`, logged as it
// changes). The decision is the OverloadDetector's. Made by the Worker only
// when shedding is on, shared by its connections (ConnectionContext), used
// on its loop only.

#include <cstdint>

#include "contract/worker_settings.h"
#include "stats/layout.h"
#include "worker/overload_detector.h"

namespace tcpfork {

class LoadShedder {
 public:
  // `slot`: the worker's, or null with stats off (it still sheds).
  LoadShedder(const OverloadSettings& settings, stats::Slot* slot);

  // The request received at `receivedNs` (CLOCK_MONOTONIC, ReceiveClock) is
  // about to be dispatched: true when it is to be answered busy instead.
  bool shed(uint64_t receivedNs);
  // From the loop's periodic tick: an interval without requests ends an
  // overload on time.
  void tick(uint64_t nowNs);

 private:
  // Writes and logs a change of the overloaded state.
  void publish();

  OverloadDetector detector_;
  uint64_t targetNs_;
  stats::Slot* slot_;
  bool published_ = false;  // the overloaded state the slot shows
};

}  // namespace tcpfork
