#pragma once
// StatsSegment: the shared-memory stats of one tcpfork instance, a sealed
// memfd mapped whole. The master creates it: memfd_create, ftruncate to the
// layout's size, then the seals F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, so
// that nobody holding it, the workers' user included, can resize it: a mapping
// of it can never fault (SIGBUS) however hostile a process with access is.
// It has no name in any directory: workers, and a binary upgrade's new master,
// inherit the descriptor on exec; tcpfork-stats finds it through the
// instance's SegmentLocator (/dev/shm/<name>.stats), which also makes the name
// one master's. Attaching checks the seals, then magic, layout version and
// size, and throws SegmentError saying which. The master's object removes the
// locator on destruction (unless another master has published itself since);
// the memory goes when its last holder unmaps it.

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "base/unique_fd.h"
#include "stats/layout.h"
#include "stats/segment_error.h"
#include "stats/segment_locator.h"

namespace tcpfork::stats {

class StatsSegment {
 public:
  // The master: takes the name's lock first (refusing while another live
  // master holds it), then creates and publishes a zero-filled segment of
  // `slotCount` slots.
  // `owner` is what the locator says of the master (SegmentLocator::Owner).
  static StatsSegment create(const std::string& name, uint32_t slotCount, SegmentLocator::Owner owner = {});
  // A binary upgrade's new master: the running master's segment and name
  // lock, inherited. Publishes itself only in claimName(), once it serves (a
  // failed start must leave readers with the running master).
  static StatsSegment adopt(const std::string& name, UniqueFd segment, UniqueFd lock,
                            SegmentLocator::Owner owner = {});
  // A worker: maps its inherited descriptor read-write and closes it.
  static StatsSegment attach(const std::string& name, UniqueFd segment);
  // tcpfork-stats and tests: the running master's segment, read-only, found
  // through the locator of `name` (root or the master's user only).
  static StatsSegment openReadOnly(const std::string& name);
  // Makes this process (a master) the segment's master: it is named in the
  // header and in the locator, and removes the locator on destruction.
  void claimName();
  // Removes the locator a master killed outright left behind.
  static void remove(const std::string& name);

  StatsSegment(StatsSegment&&) noexcept = default;
  StatsSegment& operator=(StatsSegment&&) = delete;
  ~StatsSegment() = default;

  const std::string& name() const { return name_; }
  // The master's descriptor (close-on-exec: handed on only on purpose); -1 elsewhere.
  int fd() const { return fd_.get(); }
  // The master's lock on the name, for a binary upgrade to hand on; -1 elsewhere.
  int lockFd() const { return locator_ ? locator_->fd() : -1; }
  Header& header() const { return *header_; }
  // As checked on attach: the header's copy is writable by the workers' user.
  uint32_t slotCount() const { return slotCount_; }
  Slot& slot(uint32_t index) const;

 private:
  struct Unmap {
    size_t bytes;
    void operator()(void* address) const noexcept;
  };
  using Mapping = std::unique_ptr<void, Unmap>;

  StatsSegment(std::string name, Mapping mapping, uint32_t slotCount);
  // Checks `fd`'s seals and layout and maps it; the caller keeps `fd`.
  static StatsSegment map(const std::string& name, int fd, bool writable);

  std::string name_;
  UniqueFd fd_;
  // Declared after fd_, so destroyed before it: the locator goes before
  // the descriptor it names is closed.
  std::optional<SegmentLocator> locator_;
  Mapping mapping_;
  uint32_t slotCount_ = 0;
  Header* header_ = nullptr;
  Slot* slots_ = nullptr;
};

}  // namespace tcpfork::stats
