#pragma once
// ReceiveClock: when the bytes of each read arrived, on CLOCK_MONOTONIC,
// where request durations are taken: the kernel's receive stamp
// (SO_TIMESTAMPNS, on the wall clock) mapped through ClockEpochs, or the
// read's own time when the kernel gave none. Warns once when stamps are
// missing, and whenever the wall clock is stepped. Owned by the Worker,
// shared by its connections, used on its loop only, and only while requests
// are timed (ConnectionStats::timed) or shed by their queueing delay
// (LoadShedder).

#include <cstdint>

#include "worker/clock_epochs.h"

namespace tcpfork {

class ReceiveClock {
 public:
  struct Stamp {
    uint64_t readNs;      // the read, just made
    uint64_t receivedNs;  // its bytes' arrival, never after readNs
  };

  // The read just made on `fd` (for the log), with the kernel's stamp
  // `kernelNs` (CLOCK_REALTIME ns; 0: none came).
  Stamp stamp(uint64_t kernelNs, int fd);

 private:
  ClockEpochs clocks_{};
  bool missingLogged_ = false;  // a read came back without a stamp
};

}  // namespace tcpfork
