#pragma once
// HeldAcks: one connection's acks waiting behind a request its handler
// answers later (Handler::kPending), in request order. Each ack has a
// sequence number, which the PendingTable keeps with the token of a pending
// one, so a completion finds its place in O(1). Part of a connection's
// AckQueue, which makes it when a request is first deferred.

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol/frame.h"
#include "worker/handler.h"

namespace tcpfork {

class HeldAcks {
 public:
  struct Ack {
    uint64_t token;
    // For the histograms (0 with stats off): the kernel's receive stamp
    // and when its run of frames was decoded (both CLOCK_MONOTONIC).
    uint64_t receivedNs;
    uint64_t decodedNs;
    std::array<std::byte, protocol::kIdBytes> id;  // a copy: the request's bytes are reused
    protocol::Command command;
    int result;  // Handler::kPending until completed
  };

  // Appends `request`'s ack (pending when `result` is kPending) and returns
  // its sequence number. Throws std::bad_alloc.
  uint64_t push(const protocol::Request& request, uint64_t token, int result, uint64_t receivedNs,
                uint64_t decodedNs);
  void complete(uint64_t sequence, uint8_t result);

  size_t count() const { return acks_.size() - head_; }
  // What it takes of the heap: its entries' array, sent ones not yet
  // compacted and spare capacity included.
  size_t memoryBytes() const { return acks_.capacity() * sizeof(Ack); }
  size_t pending() const { return pending_; }
  // How many acks at the front are complete, so can go out now.
  size_t ready() const;
  // Calls each(const Ack&) for the first `n` (at most ready()) and drops them.
  template <typename Each>
  void popFront(size_t n, Each&& each) {
    for (size_t i = 0; i < n; ++i) each(acks_[head_ + i]);
    head_ += n;
    base_ += n;
    if (count() == 0 || head_ >= kCompactAfter) compact();
  }
  // Calls each(token) for every pending ack.
  template <typename Each>
  void forEachPending(Each&& each) const {
    for (size_t i = head_; i < acks_.size(); ++i) {
      if (acks_[i].result == Handler::kPending) each(acks_[i].token);
    }
  }

 private:
  // The front is sent: reclaimed once empty, or once this many entries are
  // sent with others still held (a connection that always has one pending
  // would otherwise grow its array with every request it ever made).
  static constexpr size_t kCompactAfter = 4096;
  void compact();

  std::vector<Ack> acks_;  // acks_[head_] is the oldest, with sequence number base_
  size_t head_ = 0;
  uint64_t base_ = 0;
  size_t pending_ = 0;
};

}  // namespace tcpfork
