#include "handlers/journal/tool/scan.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>

#include "base/unique_fd.h"
#include "handlers/journal/segment_files.h"

namespace tcpfork::journal {

SegmentScan::Verdict SegmentScan::verdict() const {
  switch (headerStatus) {
    case HeaderStatus::kOk:
      break;
    case HeaderStatus::kNotAJournal:
      return Verdict::kNotASegment;
    case HeaderStatus::kShort:
      // A writer creates the file, then writes its header.
      return writerHolds ? Verdict::kBeingWritten : Verdict::kProblem;
    case HeaderStatus::kCorrupt:
      return Verdict::kProblem;
  }
  switch (end.stop) {
    case Stop::kEnd:
      return Verdict::kOk;
    case Stop::kTorn:
      return writerHolds ? Verdict::kBeingWritten : Verdict::kProblem;
    case Stop::kCorrupt:
      break;
  }
  return Verdict::kProblem;
}

SegmentScan scanSegment(const std::string& path, const RecordSink& sink) {
  SegmentScan scan;
  scan.path = path;
  MappedFile file(path);
  std::span<const std::byte> bytes = file.bytes();
  scan.size = bytes.size();
  scan.headerStatus = decodeHeader(bytes, scan.header);
  if (scan.headerStatus == HeaderStatus::kOk) {
    RecordScanner scanner(bytes);
    while (auto record = scanner.next()) {
      ++scan.records;
      sink(scan, *record);
    }
    scan.end = scanner.end();
  }
  bool cutShort = scan.headerStatus == HeaderStatus::kShort ||
                  (scan.headerStatus == HeaderStatus::kOk && scan.end.stop == Stop::kTorn);
  // Asked after the bytes were read: the writer takes the lock before it
  // writes the header and keeps it until the file is sealed, so a lock held
  // now was held while we read.
  if (cutShort && isOpenSegment(path)) scan.writerHolds = writerHoldsLock(path);
  return scan;
}

bool writerHoldsLock(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  // Gone since we read it: sealed (renamed) or removed meanwhile, by a writer
  // that was at work on it when we read it.
  if (!fd) return errno == ENOENT;
  // A shared lock conflicts only with the writer's exclusive one; if we get
  // it, closing the fd drops it at once.
  return ::flock(fd.get(), LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
}

}  // namespace tcpfork::journal
