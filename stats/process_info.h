#pragma once
// What the kernel says about a process (from /proc): CPU time, memory, fds,
// start time. Read by the master for per-worker and process_* metrics and by
// tcpfork-stats. Absent processes yield nullopt.

#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace tcpfork::stats {

struct ProcessInfo {
  double cpuSeconds = 0;        // user + system
  uint64_t residentBytes = 0;
  uint64_t virtualBytes = 0;
  // Seconds since the epoch, on the wall clock as it reads now: a step of
  // the wall clock moves it, as it moves the kernel's own boot time.
  double startTimeUnix = 0;
  // Seconds the process has run, on the kernel's monotonic boot clock: no
  // step of the wall clock changes it.
  double uptimeSeconds = 0;
  uint64_t openFds = 0;
  uint64_t maxFds = 0;
};

std::optional<ProcessInfo> readProcessInfo(pid_t pid);

// The process exists and has not exited: a zombie nobody has reaped yet
// (an orphan under an init that does not reap) counts as gone.
bool processRunning(pid_t pid);

}  // namespace tcpfork::stats
