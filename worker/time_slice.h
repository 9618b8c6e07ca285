#pragma once
// TimeSlice: how long one connection may run a handler module's requests in
// one callback before it yields the loop to the others. Owned by the Worker,
// shared by its connections (ConnectionContext), used on its loop only.
//
// Reads are bounded in bytes (kReadsPerBatch x kReadChunk), but a module's
// time per request is its own: at 50 us a request, one 256 KiB batch of small
// frames is 0.4 s, and 100 such connections kept the loop from its timers for
// 40 s, long enough for the master to take a working worker for a hung one.
// So the module path also stops after kBudget: the rest of the input waits in
// the connection's tail, and the connection resumes on the next loop pass,
// after every other ready connection and the worker's timers have run.
//
// The clock is read only on the 2nd, 4th and 8th frame of a callback and on
// every 16th after that (the slice starts at the 2nd): a request/response
// exchange (one frame a callback) never reads it, a fast module pays one read
// per 16 requests, and a slow one is caught after a few requests. One
// callback runs at a time on the loop, so the worker's connections share one
// TimeSlice.

#include <cstdint>

#include "stats/heartbeat.h"

namespace tcpfork {

class TimeSlice {
 public:
  static constexpr uint64_t kBudgetNs = 1'000'000;

  // The budget from the next callback on: shorter while the worker sheds
  // (LoadShedder), so that the loop comes round to every connection, and
  // reads its socket, sooner.
  void setBudget(uint64_t ns) { budgetNs_ = ns; }

  // A new callback: its first frame starts the slice.
  void begin() { frames_ = 0; }

  // After each frame: true once this callback has run for kBudgetNs. `nowNs`
  // is then the CLOCK_MONOTONIC time it was found spent.
  bool spent(uint64_t& nowNs) {
    ++frames_;
    if (frames_ == 2) {
      startNs_ = stats::monotonicNanos();
      return false;
    }
    bool check = frames_ <= 8 ? (frames_ == 4 || frames_ == 8) : (frames_ & 15) == 0;
    if (!check) return false;
    nowNs = stats::monotonicNanos();
    return nowNs - startNs_ >= budgetNs_;
  }

 private:
  uint64_t frames_ = 0;
  uint64_t startNs_ = 0;
  uint64_t budgetNs_ = kBudgetNs;
};

}  // namespace tcpfork
