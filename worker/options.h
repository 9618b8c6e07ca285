#pragma once
// WorkerOptions: everything a worker needs, parsed from its command line (the
// master passes settings there; a worker never reads the config file).

#include <chrono>
#include <cstddef>
#include <string>

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
  std::string listen;   // standalone: make our own SO_REUSEPORT socket here
  int listenFd = -1;    // under a master: an inherited listening socket
  size_t maxConnections = 10'000;
  std::chrono::milliseconds drainTimeout{10'000};
  ConnectionLimits limits;
  std::string logLevel = "info";
  std::string role = "worker";
};

// Parses argv; on --help or a usage error prints and exits (CLI11 conventions:
// 0 for help, 106+ for usage errors).
WorkerOptions parseWorkerOptions(int argc, char** argv);

}  // namespace tcpfork
