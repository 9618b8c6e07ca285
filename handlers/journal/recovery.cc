#include "handlers/journal/recovery.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <string_view>
#include <system_error>
#include <vector>

#include "base/unique_fd.h"
#include "handlers/journal/format.h"
#include "handlers/journal/segment_files.h"

namespace tcpfork::journal {

namespace {

// The names in `dir` that `keep` takes.
template <typename Keep>
std::vector<std::string> namesIn(int dirFd, const std::string& dir, Keep keep) {
  int fd = ::openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), dir);
  DIR* listing = ::fdopendir(fd);
  if (!listing) {
    int e = errno;
    ::close(fd);
    throw std::system_error(e, std::generic_category(), dir);
  }
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(listing)) {
    if (keep(std::string_view(entry->d_name))) names.emplace_back(entry->d_name);
  }
  ::closedir(listing);
  return names;
}

// One dead writer's segment, locked by us.
void recoverOne(int dirFd, const std::string& dir, const std::string& name, int fd, RecoveryReport& report,
                const RecoveryLog& log) {
  std::string path = dir + "/" + name;
  uint64_t cutAt = 0;
  bool cut = false;
  {
    MappedFile file(path);
    SegmentHeader header;
    HeaderStatus status = decodeHeader(file.bytes(), header);
    if (status == HeaderStatus::kShort) {
      // Made whole before it was named (O_TMPFILE), so only a power cut
      // leaves this: a segment with no record in it.
      if (::unlinkat(dirFd, name.c_str(), 0) == 0) {
        log(2, path + ": its header is cut short and it holds no record; removed");
      }
      return;
    }
    if (status != HeaderStatus::kOk) {
      ++report.corrupt;
      log(3, path + ": " + describe(status) + "; left as it is (tcpfork-journal verify)");
      return;
    }
    RecordScanner scanner(file.bytes());
    while (scanner.next()) {
    }
    const ScanEnd& end = scanner.end();
    if (end.stop == Stop::kTorn) {
      cut = true;
      cutAt = end.offset;
      ++report.tornTails;
      report.tornBytes += file.bytes().size() - end.offset;
      log(2, path + ": torn tail of " + std::to_string(file.bytes().size() - end.offset) + " bytes at offset " +
                 std::to_string(end.offset) + " (" + end.why + ", its writer died mid-write); truncated");
    } else if (end.stop == Stop::kCorrupt) {
      ++report.corrupt;
      log(3, path + ": corrupt record at offset " + std::to_string(end.offset) + " (" + end.why +
                 "); not truncated, sealed as it is: records after it are not read (tcpfork-journal verify)");
    }
  }  // unmapped before the file is cut
  if (cut && ::ftruncate(fd, off_t(cutAt)) != 0) {
    log(3, path + ": truncating the torn tail: " + std::strerror(errno));
    return;
  }
  // Synced before it is sealed, cut or not: its writer may have died between
  // a write and its sync, and a sealed segment is read whole (by
  // tcpfork-journal follow too), so all of it must be on disk.
  if (::fdatasync(fd) != 0) {
    log(3, path + ": fdatasync: " + std::strerror(errno) + "; left open");
    return;
  }
  std::string sealed = sealedName(name);
  if (::renameat(dirFd, name.c_str(), dirFd, sealed.c_str()) != 0) {
    log(3, path + ": rename to " + sealed + ": " + std::strerror(errno));
    return;
  }
  ++report.segments;
}

// A dead writer's durable mark, once no open segment of its writer is left
// (they are sealed, so read whole): a reader needs it no more.
void removeDeadMarks(int dirFd, const std::string& dir) {
  std::vector<std::string> open = namesIn(dirFd, dir, isOpenSegment);
  for (const std::string& name : namesIn(dirFd, dir, isDurableMark)) {
    std::string writer = name.substr(0, name.size() - kDurableSuffix.size()) + "-";
    bool stillOpen = std::any_of(open.begin(), open.end(), [&](const std::string& s) { return s.starts_with(writer); });
    if (stillOpen) continue;
    UniqueFd fd(::openat(dirFd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    // Held: its writer lives. Removed while we hold the lock, so a writer
    // cannot be taking it over meanwhile (only its own process makes it).
    if (fd && ::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) ::unlinkat(dirFd, name.c_str(), 0);
  }
}

}  // namespace

RecoveryReport recoverDeadSegments(int dirFd, const std::string& dir, const RecoveryLog& log) {
  RecoveryReport report;
  for (const std::string& name : namesIn(dirFd, dir, isOpenSegment)) {
    UniqueFd fd(::openat(dirFd, name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
      if (errno != ENOENT) log(2, dir + "/" + name + ": " + std::strerror(errno) + "; not checked");
      continue;  // ENOENT: another worker sealed it just now
    }
    // A held lock: its writer lives (or another worker is checking it).
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
      // Sealed by another worker between our listing and our lock?
      if (::faccessat(dirFd, name.c_str(), F_OK, 0) == 0) {
        try {
          recoverOne(dirFd, dir, name, fd.get(), report, log);
        } catch (const std::exception& e) {
          log(3, std::string(e.what()) + "; not checked");
        }
      }
    }
  }
  if (report.segments > 0) ::fsync(dirFd);
  removeDeadMarks(dirFd, dir);
  return report;
}

}  // namespace tcpfork::journal
