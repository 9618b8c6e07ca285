#include "stats/heartbeat.h"

#include <ctime>

namespace tcpfork::stats {

uint64_t monotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

}  // namespace tcpfork::stats
