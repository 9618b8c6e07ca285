#pragma once
// runBench: the `tcpfork-client bench` load generator. Splits the connections
// over threads, prints a progress line every second to stderr while they run,
// and returns the combined result. Throws std::invalid_argument for bad options.

#include <atomic>

#include "client/bench_options.h"

namespace tcpfork::client {

// `stop` may be set (from a signal handler) to end the sending phase early.
BenchResult runBench(const BenchOptions& options, const std::atomic<bool>& stop);

}  // namespace tcpfork::client
