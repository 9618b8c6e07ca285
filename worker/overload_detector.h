#pragma once
// OverloadDetector: whether a worker is overloaded, judged from the queueing
// delay (sojourn) of the requests it dispatches, and which of them to shed.
// CoDel as folly's executors/Codel.cpp applies it to a server: the worker
// becomes overloaded when the shortest sojourn over an interval exceeded
// the target (a standing queue: even the luckiest request waited), and
// while it is, a request whose sojourn exceeds 2 x target is shed.
//
// It leaves the overload at the end of an interval whose shortest sojourn
// was within the target and in which nothing was shed. folly leaves on the
// first condition alone; here the worker serves its connections in turn,
// so the newest request of each connection's read is dispatched soon after
// it arrived, whatever waits behind the others, and the shortest sojourn
// falls below the target as soon as shedding has cleared the old requests.
// Leaving then would let the queue grow back for a whole interval; waiting
// also for an interval in which no request was old enough to shed leaves
// once the queue is really gone.
//
// Pure: no clock, no I/O; the caller passes the time. Owned by the
// worker's LoadShedder, used on its loop only.

#include <cstdint>

namespace tcpfork {

class OverloadDetector {
 public:
  OverloadDetector(uint64_t targetNs, uint64_t intervalNs) : targetNs_(targetNs), intervalNs_(intervalNs) {}

  // A request dispatched at `nowNs` after waiting `sojournNs`: true when it
  // is to be shed (answered busy, not handled).
  bool shed(uint64_t sojournNs, uint64_t nowNs) {
    if (nowNs >= intervalEndNs_) endInterval(nowNs);
    if (sojournNs < minNs_) minNs_ = sojournNs;
    bool drop = overloaded_ && sojournNs > 2 * targetNs_;
    shedThisInterval_ = shedThisInterval_ || drop;
    return drop;
  }
  // No request at `nowNs` (the loop's periodic tick): ends an interval that
  // is over, so that one without requests ends an overload on time.
  void idle(uint64_t nowNs) {
    if (nowNs >= intervalEndNs_) endInterval(nowNs);
  }
  bool overloaded() const { return overloaded_; }

 private:
  static constexpr uint64_t kNone = UINT64_MAX;

  // Judges the interval that ended (none before the first) and begins the next at `nowNs`.
  void endInterval(uint64_t nowNs);

  uint64_t targetNs_;
  uint64_t intervalNs_;
  uint64_t intervalEndNs_ = 0;  // 0: no interval begun yet
  uint64_t minNs_ = kNone;      // the shortest sojourn this interval (kNone: no request)
  bool shedThisInterval_ = false;
  bool overloaded_ = false;
};

}  // namespace tcpfork
