#pragma once
// BenchThread: one epoll loop driving a share of the bench connections. Owned
// by runBench(), runs on its own std::thread, shares nothing with the other
// threads but its ThreadCounters (read by the progress reporter) and the stop
// flag. Raw epoll on purpose: the client must not be what limits a benchmark.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/socket.h"
#include "client/bench_connection.h"
#include "client/bench_options.h"
#include "client/thread_counters.h"

namespace tcpfork::client {

class BenchThread {
 public:
  // `quotas` holds one request quota per connection (0 = unlimited).
  BenchThread(const BenchOptions& options, const SocketAddress& address, const std::vector<uint64_t>& quotas,
              ThreadCounters& counters, const std::atomic<bool>& stop);

  // Connects, sends until the duration, the quotas or `stop` end it, then waits
  // up to drainSeconds for owed acks.
  void run();

  // Acks received in the measured span, and its length: the sending phase when
  // a duration or a stop ends it, up to the last ack when the quotas end it.
  uint64_t measuredAcks() const { return measuredAcks_; }
  uint64_t measuredOk() const { return measuredOk_; }
  int64_t measuredNs() const { return measuredNs_; }
  uint64_t unackedAtEnd() const { return unackedAtEnd_; }

 private:
  struct Slot {
    std::unique_ptr<BenchConnection> connection;
    bool pollingOut = false;
    uint64_t scheduled = 0;     // open loop: requests whose intended time has been handed out
    int64_t offsetNs = 0;       // open loop: stagger of this connection's schedule
    int64_t reconnectAtNs = 0;  // when a closed connection may try again
    int64_t connectedAtNs = 0;
  };

  bool connect(Slot& slot, int64_t nowNs);
  void onClosed(Slot& slot, int64_t nowNs);
  void topUp(Slot& slot, int64_t nowNs);
  void flush(Slot& slot, int64_t nowNs);
  int64_t nextDueNs() const;
  bool allQuotasDone() const;
  uint64_t inFlight() const;

  const BenchOptions& options_;
  SocketAddress address_;
  ThreadCounters& counters_;
  const std::atomic<bool>& stop_;
  std::vector<Slot> slots_;
  UniqueFd epoll_;
  bool sending_ = true;
  int64_t startNs_ = 0;
  int64_t sendUntilNs_ = 0;
  int64_t intervalNs_ = 0;  // open loop: per-connection spacing
  uint64_t measuredAcks_ = 0;
  uint64_t measuredOk_ = 0;
  int64_t measuredNs_ = 0;
  uint64_t unackedAtEnd_ = 0;
};

int64_t monotonicNowNs();

}  // namespace tcpfork::client
