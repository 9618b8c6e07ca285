#include "worker/receive_clock.h"

#include <spdlog/spdlog.h>

#include "base/rx_timestamp.h"
#include "stats/heartbeat.h"

namespace tcpfork {

ReceiveClock::Stamp ReceiveClock::stamp(uint64_t kernelNs, int fd) {
  uint64_t wallNs = realtimeNanos();
  uint64_t readNs = stats::monotonicNanos();
  int64_t steppedByNs = 0;
  if (clocks_.observe(wallNs, readNs, steppedByNs)) {
    spdlog::warn("the wall clock (CLOCK_REALTIME) was stepped by {:+.3f} s: request durations are taken on "
                 "CLOCK_MONOTONIC, and receive stamps from before the step keep their true age",
                 double(steppedByNs) / 1e9);
  }
  if (kernelNs != 0) return {readNs, clocks_.toMonotonic(kernelNs, readNs)};
  if (!missingLogged_) {
    missingLogged_ = true;
    // The kernel stamps packets only while some socket on the host asks, and
    // switches stamping on from a work queue just after the first one asks
    // (net_enable_timestamp), so the first packets after start may carry none.
    spdlog::warn("the kernel sent no receive timestamp on fd {}: request_duration_seconds counts from the read "
                 "for such reads, so it misses the time they waited in the socket (expected for the first packets "
                 "after start while the kernel switches stamping on; if it lasts, stamps are unavailable here)",
                 fd);
  }
  return {readNs, readNs};
}

}  // namespace tcpfork
