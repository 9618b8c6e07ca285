#include "worker/overload_detector.h"

namespace tcpfork {

void OverloadDetector::endInterval(uint64_t nowNs) {
  if (intervalEndNs_ != 0) {
    // An interval without requests had no queue.
    bool standingQueue = minNs_ != kNone && minNs_ > targetNs_;
    overloaded_ = overloaded_ ? standingQueue || shedThisInterval_ : standingQueue;
  }
  intervalEndNs_ = nowNs + intervalNs_;
  minNs_ = kNone;
  shedThisInterval_ = false;
}

}  // namespace tcpfork
