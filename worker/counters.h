#pragma once
// WorkerCounters: what one worker has done, counted on its loop thread.
// Owned by the Worker; connections add to it. Plain integers: one writer, and
// the whole struct is read only by the same loop (logged at exit today; the
// shared-memory stats slot publishes it).

#include <array>
#include <cstdint>

#include "protocol/frame.h"

namespace tcpfork {

struct WorkerCounters {
  uint64_t connectionsCurrent = 0;
  uint64_t connectionsAccepted = 0;
  uint64_t connectionsRejected = 0;  // over max_connections
  uint64_t acceptErrors = 0;         // EMFILE and friends
  uint64_t idleTimeouts = 0;
  uint64_t requestsReceived = 0;
  uint64_t responsesSent = 0;  // acks queued for writing
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  std::array<uint64_t, protocol::kDecodeErrorCount> protocolErrors{};
};

}  // namespace tcpfork
