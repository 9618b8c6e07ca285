#pragma once
// Where tcpfork-journal follow got to in each writer's segments, kept in a
// file between runs: per writer (a worker process, "w000-<start>-<pid>" from
// its file names), the sequence number of the segment it reads and the
// offset just after the last record it printed. The file is replaced
// atomically (a new file synced, renamed over the old one, the directory
// synced), so a crash leaves the old cursor or the new one, never a mix.

#include <cstdint>
#include <map>
#include <string>

namespace tcpfork::journal {

struct WriterPosition {
  uint32_t sequence = 0;
  uint64_t offset = 0;
  bool operator==(const WriterPosition&) const = default;
};

using Positions = std::map<std::string, WriterPosition>;

// False when `path` does not exist. Throws std::runtime_error naming the
// file when it cannot be read or is not a cursor.
bool loadCursor(const std::string& path, Positions& positions);

// Throws std::system_error naming the file and the call that failed.
void saveCursor(const std::string& path, const Positions& positions);

}  // namespace tcpfork::journal
