#pragma once
// Names of segment files and finding them in a journal directory.
//
// A worker process writes its own files, never another's:
//   w<index>-<UTC start>-<pid>-<seq>.journal.open   while it writes it
//   w<index>-<UTC start>-<pid>-<seq>.journal        once sealed (rotated past,
//                                                   or the worker stopped)
// e.g. w000-20261202T053000.123456Z-4242-000001.journal. Names sort by worker
// and then by time, so a directory listing reads in the order written.
// A writer that syncs has its durable mark (format.h) beside them:
//   w<index>-<UTC start>-<pid>.durable      made before its first segment,
//                                           removed once it has sealed its last

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tcpfork::journal {

inline constexpr std::string_view kSealedSuffix = ".journal";
inline constexpr std::string_view kOpenSuffix = ".journal.open";
inline constexpr std::string_view kDurableSuffix = ".durable";

// "w000-20261202T053000.123456Z-4242": one worker process, the writer of its files.
std::string writerName(uint32_t worker, uint64_t startNs, uint32_t pid);
std::string segmentName(uint32_t worker, uint64_t startNs, uint32_t pid, uint32_t sequence);
std::string durableMarkName(const std::string& writer);
bool isDurableMark(std::string_view name);

bool isOpenSegment(std::string_view name);
bool isSegment(std::string_view name);  // sealed or open
// "x.journal.open" -> "x.journal".
std::string sealedName(std::string_view openName);

// The segment files of `path`: the file itself, or a directory's segments
// sorted by name. Throws std::system_error naming the path.
std::vector<std::string> segmentsIn(const std::string& path);

}  // namespace tcpfork::journal
