#pragma once
// OverloadDetector: whether a worker is overloaded, judged from the queueing
// delay (sojourn) of the requests it dispatches, and which of them to shed.
// CoDel as folly's executors/Codel.cpp applies it to a server: the worker is
// overloaded once the shortest sojourn over an interval exceeded the target
// (a standing queue: even the luckiest request waited), and while it is, a
// request whose sojourn exceeds 2 x target is shed.
//
// Onset: the interval slides. Overloaded as soon as a whole interval has
// passed since the last request within the target, with requests all along
// (a gap of a whole interval without requests is no queue). folly judges
// fixed intervals, which notices the same queue anywhere from one to two
// intervals after it formed; every request served in between waits on it.
//
// Recovery: at the end of an interval (fixed, from the onset) whose shortest
// sojourn was within the target and in which nothing was shed. folly leaves
// on the first condition alone; here the worker serves its connections in
// turn, so the newest request of each connection's read is dispatched soon
// after it arrived, whatever waits behind the others, and the shortest
// sojourn falls below the target as soon as shedding has cleared the old
// requests. Leaving then would let the queue grow back for a whole
// interval; waiting also for an interval with nothing old enough to shed
// leaves once the queue is really gone.
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
  bool shed(uint64_t sojournNs, uint64_t nowNs);
  // No request at `nowNs` (the loop's periodic tick): an interval without
  // requests ends an overload, and is no queue.
  void idle(uint64_t nowNs);
  bool overloaded() const { return overloaded_; }

 private:
  static constexpr uint64_t kNone = UINT64_MAX;

  // While overloaded: judges the interval that ended at or before `nowNs`,
  // and begins the next one there unless the overload ended.
  void endInterval(uint64_t nowNs);
  void beginInterval(uint64_t nowNs);

  uint64_t targetNs_;
  uint64_t intervalNs_;
  bool overloaded_ = false;
  // Not overloaded: the last request within the target (or the start of a
  // run of requests), and the last request of all (kNone: none yet).
  uint64_t withinSinceNs_ = 0;
  uint64_t lastRequestNs_ = kNone;
  // Overloaded: the interval being judged.
  uint64_t intervalEndNs_ = 0;
  uint64_t minNs_ = kNone;  // its shortest sojourn (kNone: no request)
  bool shedThisInterval_ = false;
};

}  // namespace tcpfork
