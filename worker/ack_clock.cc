#include "worker/ack_clock.h"

#include <algorithm>
#include <new>

#include "base/rx_timestamp.h"
#include "protocol/frame.h"

namespace tcpfork {

// front_ is empty only when nothing is queued (more_ is then empty too).
void AckClock::queued(uint64_t receivedNs, uint32_t acks) {
  if (acks == 0) return;
  if (front_.acks == 0) {
    front_ = Run{receivedNs, acks};
    return;
  }
  Run& last = more_ && !more_->empty() ? more_->back() : front_;
  if (last.receivedNs == receivedNs) {
    last.acks += acks;
    return;
  }
  try {
    if (!more_) more_ = std::make_unique<std::deque<Run>>();
    more_->push_back(Run{receivedNs, acks});
  } catch (const std::bad_alloc&) {
    last.acks += acks;  // timed from the older stamp: an over-count, not a loss
  }
}

void AckClock::sent(size_t bytes, uint64_t nowNs, Histogram& into) {
  uint64_t total = partialBytes_ + bytes;
  uint64_t whole = total / protocol::kAckFrameBytes;
  partialBytes_ = uint32_t(total % protocol::kAckFrameBytes);
  while (whole > 0 && front_.acks > 0) {
    uint32_t n = uint32_t(std::min<uint64_t>(whole, front_.acks));
    into.record(clampedElapsed(front_.receivedNs, nowNs), n);
    front_.acks -= n;
    whole -= n;
    if (front_.acks > 0) break;
    if (more_ && !more_->empty()) {
      front_ = more_->front();
      more_->pop_front();
    }
    if (more_ && more_->empty()) more_.reset();
  }
}

}  // namespace tcpfork
