#pragma once
// BufferBudget: max_buffered_bytes for one worker, and the sum it bounds.
// Each connection is bounded on its own (max_frame_bytes of input,
// output_high_water of acks), but a worker with thousands of them is not:
// peers that each park most of a large frame would grow it without end.
// Each connection reports what it holds (unfinished frames, unsent acks and
// acks held behind a pending request) as each of its callbacks returns
// (report); once the sum passes the budget, this closes the connections
// holding the most, biggest first, until it is back under the low mark
// (three quarters of the budget, so a steady flood sheds in rounds, not one
// connection per read). Connections holding nothing are never touched
// (Redis's maxmemory-clients, which also evicts the biggest clients first).
// Owned by the Worker; used on its loop only.
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
// only after all of them had. Closing is safe there: Connection::shed only
// disarms a connection and queues it, and the Worker frees it after the
// callback.
//
// The budget keeps the sum and the gate; the connections are the Worker's.
// It reaches them only through the Worker's hooks, so that data flows one
// way: a connection reports to its budget, and never the reverse by name.
//
// The budget bounds RSS, not only the sum it counts: buffers that grow by
// doubling free their smaller selves, and an allocator that keeps freed
// pages for reuse (tcmalloc) holds them. So from half the budget on, the
// Worker has the allocator return freed pages at once (Hooks::pressure),
// until a tick finds the sum under a quarter of it again.

#include <algorithm>
#include <cstddef>
#include <functional>
#include <vector>

#include "base/log.h"
#include "worker/pending_table.h"

namespace tcpfork {

class BufferBudget {
 public:

  // One connection's part of the sum: what it held at its last report.
  class Share {
   public:
    size_t bytes() const { return bytes_; }

   private:
    friend class BufferBudget;
    size_t bytes_ = 0;
  };

  // What a shedding round did (shedBiggest).
  struct Round {
    size_t closed = 0;
    size_t largest = 0;  // bytes the biggest one held
    size_t holding = 0;  // connections that held anything
  };
  struct Hooks {
    std::function<void(bool on)> accepting;  // stops the worker's acceptors while gated
    std::function<Round()> shed;             // one round over the connections: shedBiggest
    std::function<void()> resume;            // the gate opened: every connection reads again
    std::function<void(bool on)> pressure;   // the sum passed half the budget (on), or fell under a quarter
  };

  BufferBudget(size_t limit, const PendingTable& pendings, Hooks hooks);
  BufferBudget(const BufferBudget&) = delete;
  BufferBudget& operator=(const BufferBudget&) = delete;

  // A connection's callback returns with it holding `bytes` (`share` is its
  // part). Between callbacks the sum is exact; within one, a connection can
  // grow by at most one read batch and its acks before it reports. Past the
  // budget, sheds at once.
  void report(Share& share, size_t bytes) {
    sum_ = sum_ - share.bytes_ + bytes;
    share.bytes_ = bytes;
    if (sum_ > limit_ / 2) [[unlikely]] overHalf();
  }
  // A connection is freed: its part leaves the sum, shedding nothing.
  void leave(Share& share) {
    sum_ -= share.bytes_;
    share.bytes_ = 0;
  }
  // A request was deferred: gates the worker once the pending requests
  // take the sum past the budget.
  void pendingAdded() {
    if (held() > limit_) gate();
  }
  // Gated: no connection reads or decodes until completions bring the sum
  // under the low mark (pendingsDone).
  bool gated() const { return gated_; }

  size_t limit() const { return limit_; }
  size_t lowMark() const { return limit_ / 4 * 3; }
  // After completions: opens the gate once the sum is under the low mark.
  void pendingsDone();
  // Periodically: ends the pressure once the sum is under a quarter of the budget.
  void tick();

  // The round itself, over the Worker's `connections` (pointers to objects
  // with buffered() and shed()): closes those holding the most, biggest
  // first, until the sum is under the low mark.
  template <class Connections>
  Round shedBiggest(const Connections& connections) {
    using Pointer = decltype(&*connections.begin()->second);
    std::vector<Pointer> holding;
    for (const auto& entry : connections) {
      if (entry.second->buffered() > 0) holding.push_back(&*entry.second);
    }
    std::sort(holding.begin(), holding.end(), [](Pointer a, Pointer b) { return a->buffered() > b->buffered(); });
    Round round{0, holding.empty() ? 0 : holding.front()->buffered(), holding.size()};
    for (Pointer connection : holding) {
      if (sum_ <= lowMark()) break;
      connection->shed();  // takes its share out of the sum at once
      ++round.closed;
    }
    return round;
  }

 private:
  void overHalf();
  void overBudget();
  void shed();
  void gate();
  size_t held() const { return sum_ + pendings_.memoryBytes(); }

  size_t limit_;
  size_t sum_ = 0;  // the connections' shares
  bool gated_ = false;
  bool pressed_ = false;  // hooks_.pressure(true) was called last
  const PendingTable& pendings_;
  Hooks hooks_;
  bool shedding_ = false;  // a round closes connections, which report again
  RateLimitedLog log_{1};
  RateLimitedLog gateLog_{1};
};

}  // namespace tcpfork
