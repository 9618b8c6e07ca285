#include "worker/held_acks.h"

#include <algorithm>

namespace tcpfork {

uint64_t HeldAcks::push(const protocol::Request& request, uint64_t token, int result, uint64_t receivedNs,
                        uint64_t decodedNs) {
  Ack& ack = acks_.emplace_back(Ack{token, receivedNs, decodedNs, {}, request.command, result});
  std::copy(request.id.begin(), request.id.end(), ack.id.begin());
  if (result == Handler::kPending) ++pending_;
  return base_ + (acks_.size() - 1 - head_);
}

void HeldAcks::complete(uint64_t sequence, uint8_t result) {
  acks_[head_ + (sequence - base_)].result = result;
  --pending_;
}

size_t HeldAcks::ready() const {
  size_t n = 0;
  while (head_ + n < acks_.size() && acks_[head_ + n].result != Handler::kPending) ++n;
  return n;
}

// A burst's capacity is let go; a handler deferring steadily keeps a little.
// With acks still held, the sent front is cut: at most once per
// kCompactAfter pops, each moving what is left (amortized O(1)).
void HeldAcks::compact() {
  if (count() > 0) {
    acks_.erase(acks_.begin(), acks_.begin() + static_cast<ptrdiff_t>(head_));
    if (acks_.capacity() > 2 * acks_.size() + 256) acks_.shrink_to_fit();
    head_ = 0;
    return;
  }
  if (acks_.capacity() > 256) acks_ = std::vector<Ack>();
  acks_.clear();
  head_ = 0;
}

}  // namespace tcpfork
