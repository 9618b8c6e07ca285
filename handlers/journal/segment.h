#pragma once
// One segment file being written: created whole (header and lock in place
// before it has a name), appended to on the loop, synced on the syncer's
// thread, sealed (renamed from .journal.open to .journal) once done.
//
// The writer holds flock(LOCK_EX) on the file for as long as it is open, so
// recovery at start and tcpfork-journal verify can tell a segment still being
// written from one whose writer died. Nothing else ever takes that lock while
// a writer lives: it marks the file, it does not arbitrate writes.
//
// An open file can lose its last name (rm, or rm -rf of the directory): its
// records then vanish when it is closed, though every write and fdatasync
// still succeeds. named() is asked before records are acked as stored.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/unique_fd.h"
#include "handlers/journal/durable_mark_file.h"
#include "handlers/journal/format.h"

namespace tcpfork::journal {

class Segment {
 public:
  // Creates dir/name with its header, locked. `mark`: its writer's durable
  // mark, which markDurable() moves (none: a writer that never syncs).
  // Throws std::system_error or std::runtime_error, naming the directory.
  static std::shared_ptr<Segment> create(int dirFd, const std::string& dir, const std::string& name,
                                         const SegmentHeader& header, uint32_t sequence = 0,
                                         std::shared_ptr<DurableMarkFile> mark = nullptr);
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  const std::string& path() const { return path_; }
  // Bytes in the file, header included: what the loop has appended.
  uint64_t size() const { return size_; }
  bool hasRecords() const { return size_ > kHeaderBytes; }

  // Loop thread. Writes all of `bytes` or, on failure, cuts the file back to
  // where it was so that no partial record stays; false and `error` then.
  bool append(std::span<const std::byte> bytes, std::string& error);
  // Any thread, one at a time. fdatasync, and the directory's fsync the
  // first time, so that the file's name is as durable as its records.
  bool sync(std::string& error);
  // Syncer thread, after a sync() that succeeded and covered the first
  // `end` bytes: the writer's durable mark says so. What to log, or empty.
  std::string markDurable(uint64_t end);
  // Renames it to its sealed name (and syncs the directory when `durable`).
  // A segment found unnamed is not sealed: whatever has its name now is not it.
  bool seal(bool durable, std::string& error);
  // Cutting back failed: the file may end in a partial record.
  bool broken() const { return broken_; }

  // Any thread. Whether the file still has a name somewhere (st_nlink > 0,
  // one fstat): without one, nothing written to it is stored. A directory
  // can only be removed once empty, so this also answers for the directory.
  // Once false (or fstat failed: `error` says why), it stays false.
  bool named(std::string& error);
  // named() has found it unnamed, on whatever thread asked.
  bool unnamed() const { return unnamed_.load(std::memory_order_acquire); }

 private:
  Segment(UniqueFd fd, UniqueFd dirFd, std::string dir, std::string name, uint32_t sequence,
          std::shared_ptr<DurableMarkFile> mark);

  UniqueFd fd_;
  UniqueFd dirFd_;  // its own: the journal may move on to a new directory while a sync of this one runs
  std::string dir_;
  std::string name_;
  std::string path_;
  const uint32_t sequence_;
  const std::shared_ptr<DurableMarkFile> mark_;
  uint64_t size_ = 0;
  bool broken_ = false;
  std::atomic<bool> nameSynced_{false};
  std::atomic<bool> unnamed_{false};
};

}  // namespace tcpfork::journal
