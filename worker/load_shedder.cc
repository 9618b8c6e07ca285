#include "worker/load_shedder.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "worker/slot_publisher.h"

namespace tcpfork {

namespace {

uint64_t nanos(std::chrono::milliseconds ms) { return uint64_t(ms.count()) * 1'000'000; }

// A connection's turn while overloaded: a twentieth of the target, so that
// twenty connections' turns make one target (at most the usual turn).
uint64_t overloadedTurnNs(uint64_t targetNs) { return std::min(targetNs / 20, TimeSlice::kBudgetNs); }

}  // namespace

LoadShedder::LoadShedder(const OverloadSettings& settings, stats::Slot* slot, TimeSlice& slice)
    : detector_(nanos(settings.target), nanos(settings.interval)),
      targetNs_(nanos(settings.target)),
      slot_(slot),
      slice_(slice) {
  if (slot_) stats::store(slot_->overloaded, 0);
}

bool LoadShedder::shed(uint64_t receivedNs, uint64_t nowNs) {
  // A stamp mapped from the wall clock may land a little after the read.
  uint64_t sojournNs = nowNs > receivedNs ? nowNs - receivedNs : 0;
  bool drop = detector_.shed(sojournNs, nowNs);
  // The frames of one read share their stamp, and of one clock reading
  // their dispatch time: a run records a handful of distinct delays.
  if (sojournNs != runDelayNs_) {
    recordDelays();
    runDelayNs_ = sojournNs;
  }
  ++runDelayed_;
  runShed_ += drop ? 1 : 0;
  if (detector_.overloaded() != published_) publish();
  return drop;
}

void LoadShedder::endRun() {
  recordDelays();
  if (slot_ && runShed_ > 0) count(slot_, stats::Counter::kRequestsShedQueueDelay, runShed_);
  runShed_ = 0;
}

void LoadShedder::recordDelays() {
  if (slot_ && runDelayed_ > 0) slot_->totals.queueDelay.record(runDelayNs_, runDelayed_);
  runDelayed_ = 0;
}

void LoadShedder::tick(uint64_t nowNs) {
  detector_.idle(nowNs);
  if (detector_.overloaded() != published_) publish();
}

void LoadShedder::publish() {
  published_ = detector_.overloaded();
  if (slot_) stats::store(slot_->overloaded, published_ ? 1 : 0);
  slice_.setBudget(published_ ? overloadedTurnNs(targetNs_) : TimeSlice::kBudgetNs);
  if (published_) {
    spdlog::warn("overloaded: requests waited over overload.target ({} ms) for a whole interval; answering busy "
                 "(255) to those that waited over twice that",
                 double(targetNs_) / 1e6);
  } else {
    spdlog::info("no longer overloaded: shedding stops");
  }
}

}  // namespace tcpfork
