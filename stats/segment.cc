#include "stats/segment.h"

#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "stats/process_info.h"

namespace tcpfork::stats {
namespace bip = boost::interprocess;

namespace {

// If a segment of this name exists and names a live master, that master is
// still using it: refuse rather than pull it from under its workers.
void refuseIfOwnedByLiveMaster(const std::string& name) {
  try {
    bip::shared_memory_object existing(bip::open_only, name.c_str(), bip::read_only);
    bip::offset_t size = 0;
    if (!existing.get_size(size) || size < static_cast<bip::offset_t>(sizeof(Header))) return;
    bip::mapped_region region(existing, bip::read_only, 0, sizeof(Header));
    const auto* header = static_cast<const Header*>(region.get_address());
    auto owner = static_cast<pid_t>(load(header->masterPid));
    if (header->magic == kMagic && owner != ::getpid() && processRunning(owner)) {
      throw SegmentError(fmt::format("stats segment '{}' belongs to a running master (pid {}); "
                                     "give this instance another name",
                                     name, owner));
    }
  } catch (const bip::interprocess_exception&) {
    // Absent or unreadable: nothing to protect.
  }
}

}  // namespace

StatsSegment::StatsSegment(std::string name, std::unique_ptr<bip::mapped_region> region)
    : name_(std::move(name)), region_(std::move(region)) {
  header_ = static_cast<Header*>(region_->get_address());
  slots_ = reinterpret_cast<Slot*>(static_cast<char*>(region_->get_address()) + sizeof(Header));
}

StatsSegment::StatsSegment(StatsSegment&& other) noexcept
    : name_(std::move(other.name_)),
      region_(std::move(other.region_)),
      ownsName_(std::exchange(other.ownsName_, false)),
      header_(other.header_),
      slots_(other.slots_) {}

StatsSegment& StatsSegment::operator=(StatsSegment&& other) noexcept {
  if (this != &other) {
    if (ownsName_ && load(header_->masterPid) == uint64_t(::getpid())) remove(name_);
    name_ = std::move(other.name_);
    region_ = std::move(other.region_);
    ownsName_ = std::exchange(other.ownsName_, false);
    header_ = other.header_;
    slots_ = other.slots_;
  }
  return *this;
}

StatsSegment::~StatsSegment() {
  // After a binary upgrade the segment is the new master's: leave it.
  if (ownsName_ && load(header_->masterPid) == uint64_t(::getpid())) remove(name_);
}

StatsSegment StatsSegment::adopt(const std::string& name) { return open(name, true); }

void StatsSegment::claimName() {
  ownsName_ = true;
  store(header_->masterPid, static_cast<uint64_t>(::getpid()));
}

StatsSegment StatsSegment::create(const std::string& name, uint32_t slotCount, uid_t owner, gid_t group) {
  refuseIfOwnedByLiveMaster(name);
  bip::shared_memory_object::remove(name.c_str());
  size_t bytes = segmentBytes(slotCount);
  try {
    bip::permissions mode(0600);
    bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write, mode);
    if ((owner != uid_t(-1) || group != gid_t(-1)) && ::fchown(shm.get_mapping_handle().handle, owner, group) != 0) {
      throw SegmentError(fmt::format("fchown(stats segment '{}'): {}", name, std::strerror(errno)));
    }
    shm.truncate(static_cast<bip::offset_t>(bytes));
    auto region = std::make_unique<bip::mapped_region>(shm, bip::read_write);
    std::memset(region->get_address(), 0, bytes);
    StatsSegment segment(name, std::move(region));
    segment.ownsName_ = true;
    Header& h = segment.header();
    h.layoutVersion = kLayoutVersion;
    h.slotCount = slotCount;
    h.segmentBytes = bytes;
    store(h.masterPid, static_cast<uint64_t>(::getpid()));
    // Written last: a reader that sees the magic sees a complete header.
    std::atomic_ref<uint64_t>(h.magic).store(kMagic, std::memory_order_release);
    return segment;
  } catch (const bip::interprocess_exception& e) {
    throw SegmentError(fmt::format("cannot create stats segment '{}' ({} bytes): {}", name, bytes, e.what()));
  }
}

StatsSegment StatsSegment::openReadWrite(const std::string& name) { return open(name, true); }
StatsSegment StatsSegment::openReadOnly(const std::string& name) { return open(name, false); }

StatsSegment StatsSegment::open(const std::string& name, bool writable) {
  auto mode = writable ? bip::read_write : bip::read_only;
  std::unique_ptr<bip::mapped_region> region;
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), mode);
    region = std::make_unique<bip::mapped_region>(shm, mode);
  } catch (const bip::interprocess_exception& e) {
    throw SegmentError(fmt::format("cannot open stats segment '{}': {} (is a tcpfork master with this name running?)",
                                   name, e.what()));
  }
  if (region->get_size() < sizeof(Header)) {
    throw SegmentError(fmt::format("stats segment '{}' is {} bytes, smaller than its header", name, region->get_size()));
  }
  const auto* h = static_cast<const Header*>(region->get_address());
  if (std::atomic_ref<uint64_t>(const_cast<uint64_t&>(h->magic)).load(std::memory_order_acquire) != kMagic) {
    throw SegmentError(fmt::format("stats segment '{}' is not a tcpfork segment (bad magic)", name));
  }
  if (h->layoutVersion != kLayoutVersion) {
    throw SegmentError(fmt::format("stats segment '{}' has layout version {}, this build reads version {}", name,
                                   h->layoutVersion, kLayoutVersion));
  }
  if (h->segmentBytes != segmentBytes(h->slotCount) || region->get_size() < h->segmentBytes) {
    throw SegmentError(fmt::format("stats segment '{}' size {} does not match {} slots", name, region->get_size(),
                                   h->slotCount));
  }
  return StatsSegment(name, std::move(region));
}

void StatsSegment::remove(const std::string& name) { bip::shared_memory_object::remove(name.c_str()); }

Slot& StatsSegment::slot(uint32_t index) const {
  if (index >= header_->slotCount) {
    throw SegmentError(fmt::format("slot {} out of range: segment '{}' has {} slots", index, name_, header_->slotCount));
  }
  return slots_[index];
}

}  // namespace tcpfork::stats
