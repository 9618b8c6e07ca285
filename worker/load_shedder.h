#pragma once
// LoadShedder: a worker's overload shedding (overload.shed): decides, per
// request about to be dispatched, whether to answer it busy instead, and
// counts what it sees into the worker's stats slot: each request's queueing
// delay (queue_delay_seconds), the requests shed (requests_shed_total) and
// whether the worker is overloaded (the slot's `overloaded`, logged as it
// changes). While overloaded it also shortens each connection's turn on the
// loop (TimeSlice): the kernel stamps the newest bytes of a read, so what
// waited in a socket before them, up to the time between two reads of it,
// is not seen; a shorter turn brings the loop round to every socket sooner. The decision is the OverloadDetector's. Made by the Worker only
// when shedding is on, shared by its connections (ConnectionContext), used
// on its loop only.

#include <cstdint>

#include "contract/worker_settings.h"
#include "stats/layout.h"
#include "worker/overload_detector.h"
#include "worker/time_slice.h"

namespace tcpfork {

class LoadShedder {
 public:
  // `slot`: the worker's, or null with stats off (it still sheds). While
  // overloaded, `slice` (the worker's) gets a shorter budget.
  LoadShedder(const OverloadSettings& settings, stats::Slot* slot, TimeSlice& slice);

  // The request received at `receivedNs` (CLOCK_MONOTONIC, ReceiveClock) is
  // about to be dispatched at `nowNs`: true when it is to be answered busy
  // instead. `nowNs` is the run of frames' clock reading (the Dispatcher
  // reads the clock once a run, and again whenever the time slice does), not
  // a reading per request: a clock read and two shared-memory adds a request
  // cost a pipelined module more than its handler (2.8x the CPU per ack).
  // What it counts waits for endRun().
  bool shed(uint64_t receivedNs, uint64_t nowNs);
  // The run of frames is over: its queue delays and sheds go to the stats
  // slot, one write per distinct delay rather than one per request.
  void endRun();
  // From the loop's periodic tick: an interval without requests ends an
  // overload on time.
  void tick(uint64_t nowNs);

 private:
  // Writes and logs a change of the overloaded state.
  void publish();
  void recordDelays();

  OverloadDetector detector_;
  uint64_t targetNs_;
  stats::Slot* slot_;
  TimeSlice& slice_;
  bool published_ = false;  // the overloaded state the slot shows
  // This run's counts, until endRun(): requests that waited runDelayNs_
  // (not yet recorded), and the requests shed.
  uint64_t runDelayNs_ = 0;
  uint64_t runDelayed_ = 0;
  uint64_t runShed_ = 0;
};

}  // namespace tcpfork
