#include "worker/ack_queue.h"

#include "protocol/codec.h"

namespace tcpfork {

uint64_t AckQueue::hold(const protocol::Request& request, uint64_t token, int result, uint64_t receivedNs,
                        uint64_t decodedNs) {
  if (!held_) held_ = std::make_unique<HeldAcks>();
  return held_->push(request, token, result, receivedNs, decodedNs);
}

std::optional<size_t> AckQueue::release(OutputBuffer::Spare& spare) {
  size_t ready = this->ready();
  if (ready == 0) return 0;
  std::byte* out = reserve(ready, spare);
  if (out == nullptr) return std::nullopt;
  uint64_t nowNs = stats_.now();
  bool timed = stats_.timed();
  held_->popFront(ready, [&](const HeldAcks::Ack& ack) {
    protocol::encodeAck(protocol::ackFor(ack.command), protocol::IdView(ack.id), uint8_t(ack.result), out);
    out += protocol::kAckFrameBytes;
    if (timed) {
      stats_.handled(clampedElapsed(ack.decodedNs, nowNs));
      clock_.queued(ack.receivedNs, 1);
    }
  });
  output_.commit(ready * protocol::kAckFrameBytes);
  return ready;
}

}  // namespace tcpfork
