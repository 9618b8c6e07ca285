#pragma once
// AckClock: when each ack waiting in a connection's output was received, so
// that request_duration_seconds is taken when the ack's bytes are handed to
// the kernel, however long they wait for room in the socket. Acks join in
// output order, in runs that share one receive stamp; sent() retires whole
// acks as their bytes go out. The common case (one read's acks, all sent at
// once) keeps its one run inline and allocates nothing. Owned by its
// Connection; used only with stats on.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>

#include "stats/layout.h"

namespace tcpfork {

class AckClock {
 public:
  using Histogram = stats::Histogram<stats::kRequestBoundsNs>;

  // `acks` acks received at `receivedNs` (CLOCK_MONOTONIC) joined the output.
  void queued(uint64_t receivedNs, uint32_t acks);
  // `bytes` more of the output went to the kernel at `nowNs`: every ack now
  // wholly sent is counted into `into`.
  void sent(size_t bytes, uint64_t nowNs, Histogram& into);

 private:
  struct Run {
    uint64_t receivedNs = 0;
    uint32_t acks = 0;
  };
  Run front_;
  // Bytes of the front ack already sent, short of a whole ack.
  uint32_t partialBytes_ = 0;
  // The runs behind front_: made while output waits for the socket, freed
  // once it has drained.
  std::unique_ptr<std::deque<Run>> more_;
};

}  // namespace tcpfork
