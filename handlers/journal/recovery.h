#pragma once
// At start: segments left open by a writer that died (kill -9, a crash, a
// power cut) are checked; a torn tail is cut off, and the file is synced and
// sealed. A dead writer's durable mark goes once none of its segments is
// left open.

#include <cstdint>
#include <functional>
#include <string>

namespace tcpfork::journal {

struct RecoveryReport {
  uint64_t segments = 0;   // open segments of dead writers, checked and sealed
  uint64_t tornTails = 0;  // of those, how many ended in a cut record
  uint64_t tornBytes = 0;  // bytes cut off
  uint64_t corrupt = 0;    // damaged records found (left as they are)
};

using RecoveryLog = std::function<void(int level, const std::string&)>;

// Checks every .journal.open file in `dir` whose writer is gone (its flock is
// free); skips those a live worker holds. Throws std::system_error if the
// directory cannot be read.
RecoveryReport recoverDeadSegments(int dirFd, const std::string& dir, const RecoveryLog& log);

}  // namespace tcpfork::journal
