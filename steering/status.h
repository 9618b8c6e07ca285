#pragma once
// What steering reports to /metrics and /status: whether the program steers,
// which worker indices take new connections, and how often each was taken out.

#include <cstdint>
#include <utility>
#include <vector>

namespace tcpfork::steering {

// What the programs did, summed over groups and CPUs.
struct ProgramStats {
  uint64_t steered = 0;   // new connections sent to an eligible worker
  uint64_t migrated = 0;  // a closing listener's connections moved to one
  uint64_t unsteered = 0; // left to the kernel's hash (no set, none selectable)
};

struct Status {
  bool active = false;
  std::vector<std::pair<unsigned, bool>> eligible;  // per worker index
  uint64_t excludedStale = 0;
  uint64_t excludedQueue = 0;
  uint64_t excludedFull = 0;
  uint64_t excludedOverloaded = 0;
  uint64_t excludedRetiring = 0;
  ProgramStats program;
};

}  // namespace tcpfork::steering
