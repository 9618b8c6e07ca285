#include "worker/overload_detector.h"

namespace tcpfork {

bool OverloadDetector::shed(uint64_t sojournNs, uint64_t nowNs) {
  if (!overloaded_) {
    // A whole interval without requests before this one: a new run begins.
    if (lastRequestNs_ == kNone || nowNs - lastRequestNs_ >= intervalNs_) withinSinceNs_ = nowNs;
    lastRequestNs_ = nowNs;
    if (sojournNs <= targetNs_) {
      withinSinceNs_ = nowNs;
      return false;
    }
    if (nowNs - withinSinceNs_ < intervalNs_) return false;
    overloaded_ = true;
    beginInterval(nowNs);
  } else if (nowNs >= intervalEndNs_) {
    endInterval(nowNs);
    if (!overloaded_) return shed(sojournNs, nowNs);
  }
  if (sojournNs < minNs_) minNs_ = sojournNs;
  bool drop = sojournNs > 2 * targetNs_;
  shedThisInterval_ = shedThisInterval_ || drop;
  return drop;
}

void OverloadDetector::idle(uint64_t nowNs) {
  if (overloaded_ && nowNs >= intervalEndNs_) endInterval(nowNs);
}

void OverloadDetector::endInterval(uint64_t nowNs) {
  // An interval without requests had no queue.
  bool queueGone = minNs_ == kNone || (minNs_ <= targetNs_ && !shedThisInterval_);
  if (!queueGone) {
    beginInterval(nowNs);
    return;
  }
  overloaded_ = false;
  withinSinceNs_ = nowNs;
  lastRequestNs_ = kNone;
}

void OverloadDetector::beginInterval(uint64_t nowNs) {
  intervalEndNs_ = nowNs + intervalNs_;
  minNs_ = kNone;
  shedThisInterval_ = false;
}

}  // namespace tcpfork
