#pragma once
// BufferBudget: max_buffered_bytes for one worker. Each connection is bounded
// on its own (max_frame_bytes of input, output_high_water of acks), but a
// worker with thousands of them is not: peers that each park most of a large
// frame would grow it without end. Connections report what they hold as each
// callback returns (ConnectionContext::bufferedBytes); once the sum passes
// the budget, this closes the connections holding the most, biggest first,
// until it is back under the low mark (three quarters of the budget, so a
// steady flood sheds in rounds, not one connection per read). Connections
// holding nothing are never touched (Redis's maxmemory-clients, which also
// evicts the biggest clients first). Owned by the Worker; used on its loop
// only.
//
// Shedding runs at once, at the end of the callback that went over: one loop
// pass can run the read callbacks of hundreds of connections, each taking a
// read batch (256 KiB), so a round deferred to an event of its own would run
// only after all of them had. Closing is safe there: close() only disarms a
// connection and queues it, and the Worker frees it after the callback.

#include <cstddef>
#include <memory>
#include <unordered_map>

#include "base/log.h"
#include "worker/connection.h"

namespace tcpfork {

class BufferBudget {
 public:
  using Connections = std::unordered_map<int, std::unique_ptr<Connection>>;

  // Wires itself into `context` (its limit and overBudget).
  BufferBudget(size_t limit, ConnectionContext& context, const Connections& connections);

  size_t limit() const { return limit_; }
  size_t lowMark() const { return limit_ / 4 * 3; }

 private:
  void shed();

  size_t limit_;
  ConnectionContext& context_;
  const Connections& connections_;
  bool shedding_ = false;  // a round closes connections, which account again
  RateLimitedLog log_{1};
};

}  // namespace tcpfork
