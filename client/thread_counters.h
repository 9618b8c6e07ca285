#pragma once
// ThreadCounters: what one bench thread has done. The thread is the only
// writer (relaxed load + store, no locked instructions on the hot path); the
// progress reporter reads them from the main thread.

#include <array>
#include <atomic>
#include <cstdint>

#include "client/bench_options.h"
#include "client/histogram.h"

namespace tcpfork::client {

struct ThreadCounters {
  using Counter = std::atomic<uint64_t>;

  static void add(Counter& counter, uint64_t by) {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }
  static uint64_t read(const Counter& counter) { return counter.load(std::memory_order_relaxed); }

  Counter sent{0};
  Counter acked{0};  // answers to requests sent, whatever their result
  Counter ok{0};     // of those, result 0: the goodput
  Counter busy{0};   // of those, result 255: answered, not processed (not an error)
  std::array<Counter, kAckErrorCount> errors{};
  Counter connectsFailed{0};
  Counter connectsReset{0};  // of those, reset by the server after the handshake
  Counter closedByServer{0};
  Counter unackedOnClose{0};
  // Send to ack, split by whether the server took the request in: one
  // histogram per ack, so the hot path records once; all acks are the sum.
  LatencyHistogram admittedNs;  // result other than 255
  LatencyHistogram busyNs;      // result 255
};

}  // namespace tcpfork::client
