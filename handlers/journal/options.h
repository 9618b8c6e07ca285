#pragma once
// The journal's settings, read from handler.config (JSON text from the host).

#include <chrono>
#include <cstdint>
#include <string>

namespace tcpfork::journal {

enum class FsyncMode {
  kAlways,    // an ack waits for the fdatasync that covers its record (group commit)
  kInterval,  // ack once written; fdatasync every fsync_interval
  kNever,     // ack once written; the kernel writes back when it likes
};

const char* name(FsyncMode mode);

struct Options {
  std::string dir;  // absolute; created if missing
  FsyncMode fsync = FsyncMode::kAlways;
  std::chrono::milliseconds fsyncInterval{100};
  uint64_t segmentBytes = 64ull << 20;
};

// Throws std::invalid_argument "KEY: what is wrong", naming the key.
Options parseOptions(const std::string& configJson);

}  // namespace tcpfork::journal
