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

// What a journal directory keeps: sealed segments past either bound are
// deleted, oldest first, across every worker's segments (see retention.h).
struct RetentionOptions {
  uint64_t maxBytes = 0;           // 0: no bound on size
  std::chrono::seconds maxAge{0};  // 0: no bound on age
  bool any() const { return maxBytes > 0 || maxAge.count() > 0; }
};

struct Options {
  std::string dir;  // absolute; created if missing
  FsyncMode fsync = FsyncMode::kAlways;
  std::chrono::milliseconds fsyncInterval{100};
  uint64_t segmentBytes = 64ull << 20;
  RetentionOptions retention;
};

// Throws std::invalid_argument "KEY: what is wrong", naming the key.
Options parseOptions(const std::string& configJson);

}  // namespace tcpfork::journal
