#pragma once
// ClockEpochs: puts the kernel's receive stamps (CLOCK_REALTIME, the only
// clock SO_TIMESTAMPNS offers) on CLOCK_MONOTONIC, where every request
// duration is taken, so a step of the wall clock (an NTP step, a VM resume,
// an operator's `date -s`) cannot turn into an hour-long request. Part of
// the worker's ReceiveClock; used on its loop only, with stats on.
//
// Each read reads both clocks together (observe): their difference, the
// offset, drifts slowly under NTP's slewing and jumps when the wall clock is
// stepped. A jump starts an epoch with the new offset, dated from the
// previous observation, the earliest the step can have come. A stamp is
// mapped with the offset of the newest epoch whose start it is not before
// on the wall clock: a stamp taken before a forward step falls in the epoch
// before it and keeps its true age. The one case no mapping can settle (a
// stamp from just before a backward step, which the new epoch claims) comes
// out in the future and is clamped to the read: such a request counts from
// its read, never as a wait it did not have.

#include <array>
#include <cstddef>
#include <cstdint>

namespace tcpfork {

class ClockEpochs {
 public:
  // A change of the offset under this between two observations is NTP's
  // slewing (at most 0.5 ms a second), followed; above it, a step.
  static constexpr int64_t kStepNs = 10'000'000;

  // The two clocks, read together at a read. True when the wall clock was
  // stepped since the last observation (`steppedByNs` says by how much).
  bool observe(uint64_t realtimeNs, uint64_t monotonicNs, int64_t& steppedByNs) {
    int64_t offset = int64_t(realtimeNs - monotonicNs);
    uint64_t since = lastMonotonicNs_;
    lastMonotonicNs_ = monotonicNs;
    if (count_ == 0) {
      epochs_[0] = Epoch{0, offset};
      count_ = 1;
      return false;
    }
    Epoch& newest = epochs_[count_ - 1];
    steppedByNs = offset - newest.offset;
    if (steppedByNs < kStepNs && steppedByNs > -kStepNs) {
      newest.offset = offset;
      return false;
    }
    if (count_ == epochs_.size()) {
      for (size_t i = 1; i < count_; ++i) epochs_[i - 1] = epochs_[i];
      --count_;
    }
    epochs_[count_++] = Epoch{since, offset};
    return true;
  }

  // `stampNs` (CLOCK_REALTIME) as CLOCK_MONOTONIC ns, never after `nowNs`,
  // the monotonic time of the read that returned it.
  uint64_t toMonotonic(uint64_t stampNs, uint64_t nowNs) const {
    if (count_ == 0) return nowNs;
    size_t i = count_ - 1;
    while (i > 0 && int64_t(stampNs) < int64_t(epochs_[i].startNs) + epochs_[i].offset) --i;
    uint64_t mapped = stampNs - uint64_t(epochs_[i].offset);
    return mapped < nowNs ? mapped : nowNs;
  }

 private:
  struct Epoch {
    uint64_t startNs;  // CLOCK_MONOTONIC
    int64_t offset;    // CLOCK_REALTIME - CLOCK_MONOTONIC
  };
  std::array<Epoch, 8> epochs_{};
  size_t count_ = 0;
  uint64_t lastMonotonicNs_ = 0;
};

}  // namespace tcpfork
