#pragma once
// The durable mark of one writer (format.h): a 16-byte file beside its
// segments saying how far its records are synced, rewritten in place by the
// syncer's thread after each fdatasync that succeeded, so that
// tcpfork-journal follow prints only what is on disk. Owned (shared) by the
// Journal and by the segments it covers; made before the first of them is
// named, so a reader that sees a segment of a syncing writer also sees its
// mark.
//
// The writer holds flock(LOCK_EX) on it while it lives, as on its open
// segments: recovery at start removes a dead writer's mark once it has
// sealed (and synced) that writer's last open segment.
//
// The mark only trails what is on disk: it is written after the fdatasync
// returned, and an OS crash can only lose the rewrite (the old mark stays,
// or a CRC that fails, which reads as nothing synced).

#include <atomic>
#include <memory>
#include <string>

#include "base/unique_fd.h"
#include "handlers/journal/format.h"

namespace tcpfork::journal {

class DurableMarkFile {
 public:
  // Creates (or takes over) dir/name saying nothing is synced, locked.
  // Throws std::system_error naming the file.
  static std::shared_ptr<DurableMarkFile> create(int dirFd, const std::string& dir, const std::string& name);
  DurableMarkFile(const DurableMarkFile&) = delete;
  DurableMarkFile& operator=(const DurableMarkFile&) = delete;

  // Syncer thread. One pwrite of 16 bytes into the page cache, no sync: the
  // mark needs none (see above). What to log, or empty: a failure is said
  // once until a write succeeds again (a reader then stays behind, never
  // ahead).
  std::string publish(const DurableMark& mark);
  // Loop thread, once the writer has sealed its last segment: every byte of
  // its sealed segments is synced, so a reader needs the mark no more.
  void remove();

 private:
  DurableMarkFile(UniqueFd fd, UniqueFd dirFd, std::string name, std::string path);

  UniqueFd fd_;
  UniqueFd dirFd_;
  std::string name_;
  std::string path_;
  bool failing_ = false;  // syncer thread only
};

}  // namespace tcpfork::journal
