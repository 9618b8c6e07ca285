#pragma once
// WorkerOptions: everything a worker needs, parsed from its command line (the
// master passes settings there; a worker never reads the config file).

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "protocol/frame.h"

namespace tcpfork {

struct ConnectionLimits {
  size_t maxFrameBytes = protocol::kDefaultMaxFrameBytes;
  std::chrono::milliseconds idleTimeout{60'000};
  // Reading a connection stops while its unsent acks exceed the high mark and
  // resumes below the low mark, so a client that never reads cannot grow memory.
  size_t outputHighWater = 256 * 1024;
  size_t outputLowWater = 128 * 1024;
};

struct WorkerOptions {
  std::string listen;          // standalone: make our own SO_REUSEPORT socket here
  std::vector<int> listenFds;  // under a master: inherited listening sockets
  size_t maxConnections = 10'000;
  std::chrono::milliseconds drainTimeout{10'000};
  ConnectionLimits limits;
  std::string logLevel = "info";
  std::string logFile;         // reopened on SIGUSR1; empty = stderr as inherited
  std::string role = "worker";
  // Under a master: where to publish state and heartbeat, and who the master is.
  std::string statsName;
  int slot = -1;
  uint64_t generation = 0;
  uint64_t index = 0;
  int parentPid = 0;
  bool noStats = false;  // benchmarking: measure what counting costs
  std::string name = "tcpfork";  // instance name, for profile file names
  std::string profileDir;        // empty: CPU profiling unavailable
  std::chrono::milliseconds profileDuration{60'000};
};

// Parses argv; on --help or a usage error prints and exits (CLI11 conventions:
// 0 for help, 106+ for usage errors).
WorkerOptions parseWorkerOptions(int argc, char** argv);

}  // namespace tcpfork
