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
// Requests pending in the handler count too (PendingTable::memoryBytes: the
// real cost of each, about 100 bytes with its held ack, where the 14 bytes of
// its ack were counted before), but shedding cannot free them: a closed
// connection's tokens stay in the table until the module completes them, and
// its client reconnects and sends more. So past the budget with them, the
// worker is gated: no connection reads or decodes, none is accepted, until
// completions bring the sum under the low mark. A backend that stalls then
// holds the worker at its budget, not at whatever its clients send.
//
// Shedding runs at once, at the end of the callback that went over: one loop
// pass can run the read callbacks of hundreds of connections, each taking a
// read batch (256 KiB), so a round deferred to an event of its own would run
// only after all of them had. Closing is safe there: close() only disarms a
// connection and queues it, and the Worker frees it after the callback.

#include <cstddef>
#include <functional>
#include <memory>
#include <unordered_map>

#include "base/log.h"
#include "worker/connection.h"
#include "worker/pending_table.h"

namespace tcpfork {

class BufferBudget {
 public:
  using Connections = std::unordered_map<int, std::unique_ptr<Connection>>;

  // Wires itself into `context` (its limit, overBudget and overPending).
  // `accepting(false)` stops the worker's acceptors while gated.
  BufferBudget(size_t limit, ConnectionContext& context, const Connections& connections, const PendingTable& pendings,
               std::function<void(bool)> accepting);

  size_t limit() const { return limit_; }
  size_t lowMark() const { return limit_ / 4 * 3; }
  // After completions: opens the gate once the sum is under the low mark.
  void pendingsDone();

 private:
  void shed();
  void gate();
  size_t held() const { return context_.bufferedBytes + pendings_.memoryBytes(); }

  size_t limit_;
  ConnectionContext& context_;
  const Connections& connections_;
  const PendingTable& pendings_;
  std::function<void(bool)> accepting_;
  bool shedding_ = false;  // a round closes connections, which account again
  RateLimitedLog log_{1};
  RateLimitedLog gateLog_{1};
};

}  // namespace tcpfork
