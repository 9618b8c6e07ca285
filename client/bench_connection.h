#pragma once
// BenchConnection: one load-generating connection, owned by a BenchThread and
// used only on that thread. It queues requests with increasing 8-digit IDs,
// remembers when each was (meant to be) sent, and checks every ack against the
// one it expects next: SubmitAck, same ID, in order, result 0 (ok) or 255
// (busy: an answer, not an error).

#include <cstdint>
#include <vector>

#include "base/socket.h"
#include "base/unique_fd.h"
#include "client/thread_counters.h"
#include "protocol/frame.h"

namespace tcpfork::client {

class BenchConnection {
 public:
  BenchConnection(size_t payloadBytes, unsigned window, uint64_t quota, ThreadCounters& counters);

  // Blocking connect, then non-blocking I/O. Returns false (and counts it) on failure.
  bool connect(const SocketAddress& address);
  bool connected() const { return fd_.valid(); }
  int fd() const { return fd_.get(); }

  // Requests it may queue now: window room, buffer room and the quota left.
  uint64_t room() const;
  // Queues `count` requests (at most room()); the i-th is stamped as meant to
  // be sent at intendedNs + i * stepNs (open loop) or all at intendedNs.
  void queue(uint64_t count, int64_t intendedNs, int64_t stepNs = 0);
  // Writes what the socket takes. Returns false when the connection failed.
  bool writePending();
  bool wantsWrite() const { return outEnd_ > outBegin_; }

  // Reads and checks acks, recording latency against `nowNs`. Returns the
  // number of acks read, or -1 when the connection closed or broke.
  int64_t readAcks(int64_t nowNs);

  // Closes the socket; requests never written are no longer counted as sent.
  // Returns how many sent requests were never acked (given up).
  uint64_t close();

  uint64_t sent() const { return sent_; }
  uint64_t inFlight() const { return sent_ - acked_; }
  bool quotaDone() const { return quota_ != 0 && sent_ >= quota_; }

 private:
  bool checkAck(const std::byte* frame, int64_t nowNs);
  int64_t closed(uint64_t ackedBefore, uint64_t notOkBefore);
  void publish(uint64_t ackedBefore, uint64_t notOkBefore);

  size_t frameBytes_;
  unsigned window_;
  uint64_t quota_;  // 0 = unlimited
  ThreadCounters& counters_;
  UniqueFd fd_;

  // The next request, its ID field advanced in place after each copy.
  std::vector<std::byte> requestTemplate_;
  // The next expected ack, likewise.
  std::array<std::byte, protocol::kAckFrameBytes> expectedAck_{};

  std::vector<std::byte> out_;
  size_t outBegin_ = 0;
  size_t outEnd_ = 0;
  std::vector<std::byte> in_;
  size_t inLength_ = 0;

  std::vector<int64_t> sendTimes_;  // ring of `window` stamps, oldest = next ack
  size_t sendHead_ = 0;
  size_t ackHead_ = 0;
  uint64_t sent_ = 0;
  uint64_t acked_ = 0;
  uint64_t notOk_ = 0;  // acks taken by the slow path, none of them ok; never reset
};

}  // namespace tcpfork::client
