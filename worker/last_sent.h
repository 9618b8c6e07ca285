#pragma once
// LastSent: when a connection last sent its peer bytes (CLOCK_MONOTONIC_COARSE,
// ms). An idle timer that fires just after a send is not the peer's
// silence: a worker stopped between reading requests and sending their acks
// sends them when it runs again, and the peer has had no time to send more
// when the expired timer is seen.

#include <time.h>

#include <chrono>
#include <cstdint>

namespace tcpfork {

class LastSent {
 public:
  void stamp() { ms_ = coarseMs(); }
  // Half the timeout tells the cases apart: normally the last acks went out
  // with the last read, a whole idle timeout before the timer fires; after a
  // stall they went out moments ago.
  bool justNow(std::chrono::milliseconds idleTimeout) const {
    return ms_ != 0 && coarseMs() - ms_ < uint64_t(idleTimeout.count()) / 2;
  }

 private:
  static uint64_t coarseMs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1'000'000;
  }
  uint64_t ms_ = 0;
};

}  // namespace tcpfork
