#pragma once
// StatsSegment: the named shared-memory segment of one tcpfork instance
// (Boost.Interprocess shared_memory_object + mapped_region). The master
// creates it (mode 0600) and removes it on exit; workers open it read-write
// and write only their own slot; tcpfork-stats opens it read-only. Opening
// checks magic, layout version and size, and throws SegmentError saying which.

#include <sys/types.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "stats/layout.h"

namespace boost::interprocess {
class mapped_region;
}

namespace tcpfork::stats {

class SegmentError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

class StatsSegment {
 public:
  // Creates (replacing a stale one) and zero-fills a segment of `slotCount`
  // slots. Refuses when a live master other than us still owns one of that name.
  // The returned object owns the name: destroying it removes the segment.
  static StatsSegment create(const std::string& name, uint32_t slotCount, uid_t owner = -1, gid_t group = -1);
  static StatsSegment openReadWrite(const std::string& name);
  // A new master taking over from the one it upgrades: opens the running
  // segment read-write without owning its name (a failed start must not
  // remove it); claimName() makes it ours once we serve.
  static StatsSegment adopt(const std::string& name);
  static StatsSegment openReadOnly(const std::string& name);
  // Makes this process the segment's master: it is named in the header and
  // removes the segment on destruction (unless another master claims it since).
  void claimName();
  // Removes the name; mappings stay valid until unmapped.
  static void remove(const std::string& name);

  StatsSegment(StatsSegment&&) noexcept;
  StatsSegment& operator=(StatsSegment&&) noexcept;
  ~StatsSegment();

  const std::string& name() const { return name_; }
  Header& header() const { return *header_; }
  uint32_t slotCount() const { return header_->slotCount; }
  Slot& slot(uint32_t index) const;

 private:
  StatsSegment(std::string name, std::unique_ptr<boost::interprocess::mapped_region> region);
  static StatsSegment open(const std::string& name, bool writable);

  std::string name_;
  std::unique_ptr<boost::interprocess::mapped_region> region_;
  bool ownsName_ = false;
  Header* header_ = nullptr;
  Slot* slots_ = nullptr;
};

}  // namespace tcpfork::stats
