#pragma once
// AckQueue: one connection's acks on their way to the socket, in request
// order. Acks answered at once are encoded straight into the output buffer
// (reserve, then commit); once a request is answered later (Handler::kPending)
// its ack and every ack after it wait in HeldAcks, and move to the output as
// the front of them completes (release). When requests are timed, each ack in
// the output keeps its receive stamp (AckClock) until its last byte is sent.
// Owned by its Connection, used on the worker's loop; the Connection sends
// what unsent() shows and reports it with sent().

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "protocol/frame.h"
#include "worker/ack_clock.h"
#include "worker/connection_stats.h"
#include "worker/held_acks.h"
#include "worker/output_buffer.h"

namespace tcpfork {

class AckQueue {
 public:
  // `stats` outlives it: the Worker's.
  explicit AckQueue(const ConnectionStats& stats) : stats_(stats) {}
  AckQueue(const AckQueue&) = delete;
  AckQueue& operator=(const AckQueue&) = delete;

  // Room for `n` acks at the end of the output, for commit(); null when
  // there is no memory for it (what is queued is kept). `spare`: the
  // worker's (OutputBuffer), here and below.
  std::byte* reserve(size_t n, OutputBuffer::Spare& spare) {
    return output_.reserve(n * protocol::kAckFrameBytes, spare);
  }
  // The first `n` acks of the last reserve() are encoded; their requests
  // were received at `receivedNs`.
  void commit(size_t n, uint64_t receivedNs) {
    output_.commit(n * protocol::kAckFrameBytes);
    if (stats_.timed()) clock_.queued(receivedNs, uint32_t(n));
  }

  // Queues `request`'s ack behind the held ones, pending when `result` is
  // Handler::kPending, and returns its sequence number (for complete()).
  // `decodedNs`: when its run of frames began, for handler_duration.
  // Throws std::bad_alloc: the ack is lost, and with it the order.
  uint64_t hold(const protocol::Request& request, uint64_t token, int result, uint64_t receivedNs,
                uint64_t decodedNs);
  // The handler's result for the pending ack at `sequence`.
  void complete(uint64_t sequence, uint8_t result) { held_->complete(sequence, result); }
  // Moves the completed acks at the front of the held ones to the output
  // and returns how many; nullopt when the output has no memory for them
  // (they stay held).
  std::optional<size_t> release(OutputBuffer::Spare& spare);
  // Held acks, completed or not.
  size_t held() const { return held_ ? held_->count() : 0; }
  // Held acks that wait for their result.
  size_t pending() const { return held_ ? held_->pending() : 0; }
  // Completed held acks at the front, that release() would move.
  size_t ready() const { return held_ ? held_->ready() : 0; }
  // Drops every held ack, calling orphan(token) for each pending one.
  template <typename Orphan>
  void dropHeld(Orphan&& orphan) {
    if (!held_) return;
    held_->forEachPending(orphan);
    held_.reset();
  }

  // The output, oldest first: what to send.
  std::span<const std::byte> unsent() const { return output_.bytes(); }
  // The first `n` bytes of unsent() went to the socket at `sentNs`.
  void sent(size_t n, uint64_t sentNs, OutputBuffer::Spare& spare) {
    if (AckClock::Histogram* into = stats_.requestDuration()) clock_.sent(n, sentNs, *into);
    output_.consume(n, spare);
  }
  // Unsent acks in bytes, in the output or held: what the watermarks bound.
  size_t queuedBytes() const { return output_.size() + held() * protocol::kAckFrameBytes; }
  // What the budget counts: the output's bytes, and the held acks' entries
  // (their memory, not their 14 bytes on the wire).
  size_t memoryBytes() const { return output_.size() + (held_ ? held_->memoryBytes() : 0); }
  // Drops the output and frees its memory (a closed connection).
  void clear() {
    output_.clear();
    clock_ = AckClock();
  }

 private:
  const ConnectionStats& stats_;
  OutputBuffer output_;
  // Made when a request is first deferred: a connection of the built-in
  // handler pays one null pointer for all this.
  std::unique_ptr<HeldAcks> held_;
  // When the acks in output_ were received (timed only).
  AckClock clock_;
};

}  // namespace tcpfork
