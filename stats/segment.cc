#include "stats/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

// Linux 6.3: the memfd can never be made executable. Older kernels refuse
// the flag (EINVAL) and we go without it.
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

namespace tcpfork::stats {
namespace {

// No size change, and no seal added or removed later (a hostile F_SEAL_WRITE
// or F_SEAL_FUTURE_WRITE would keep new workers from mapping it).
constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

// What /proc shows for the master's descriptor (memfd_create names it).
std::string memfdName(const std::string& name) { return "tcpfork:" + name; }
std::string memfdLink(const std::string& name) { return "/memfd:" + memfdName(name) + " (deleted)"; }

std::string readLink(const std::string& path) {
  char target[512];
  ssize_t n = ::readlink(path.c_str(), target, sizeof target);
  if (n < 0) throw SegmentError(fmt::format("readlink({}): {}", path, std::strerror(errno)));
  return std::string(target, size_t(n));
}

UniqueFd createSealed(const std::string& name, size_t bytes) {
  std::string label = memfdName(name);
  UniqueFd fd(::memfd_create(label.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL));
  if (!fd && errno == EINVAL) fd.reset(::memfd_create(label.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) throw SegmentError(fmt::format("memfd_create({}): {}", label, std::strerror(errno)));
  auto fail = [&](const char* call) {
    return SegmentError(fmt::format("{}(stats segment '{}', {} bytes): {}", call, name, bytes, std::strerror(errno)));
  };
  // Opened again only through /proc/<master pid>/fd (tcpfork-stats): by
  // root and the master's user. Workers inherit the descriptor instead.
  if (::fchmod(fd.get(), 0600) != 0) throw fail("fchmod");
  if (::ftruncate(fd.get(), off_t(bytes)) != 0) throw fail("ftruncate");
  if (::fcntl(fd.get(), F_ADD_SEALS, kSeals) != 0) throw fail("fcntl(F_ADD_SEALS)");
  return fd;
}

}  // namespace

void StatsSegment::Unmap::operator()(void* address) const noexcept { ::munmap(address, bytes); }

StatsSegment::StatsSegment(std::string name, Mapping mapping, uint32_t slotCount)
    : name_(std::move(name)), mapping_(std::move(mapping)), slotCount_(slotCount) {
  header_ = static_cast<Header*>(mapping_.get());
  slots_ = reinterpret_cast<Slot*>(static_cast<char*>(mapping_.get()) + sizeof(Header));
}

StatsSegment StatsSegment::create(const std::string& name, uint32_t slotCount, SegmentLocator::Owner owner) {
  // First: of two masters of this name, the second stops here.
  SegmentLocator locator = SegmentLocator::take(name, std::move(owner));
  size_t bytes = segmentBytes(slotCount);
  UniqueFd fd = createSealed(name, bytes);
  void* address = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (address == MAP_FAILED) {
    throw SegmentError(fmt::format("mmap(stats segment '{}', {} bytes): {}", name, bytes, std::strerror(errno)));
  }
  // A new memfd reads as zeros: nothing to clear.
  StatsSegment segment(name, Mapping(address, Unmap{bytes}), slotCount);
  Header& h = segment.header();
  h.layoutVersion = kLayoutVersion;
  h.slotCount = slotCount;
  h.segmentBytes = bytes;
  // Written last: a reader that sees the magic sees a complete header.
  std::atomic_ref<uint64_t>(h.magic).store(kMagic, std::memory_order_release);
  segment.fd_ = std::move(fd);
  segment.locator_.emplace(std::move(locator));
  segment.claimName();
  return segment;
}

StatsSegment StatsSegment::adopt(const std::string& name, UniqueFd segmentFd, UniqueFd lock,
                                 SegmentLocator::Owner owner) {
  if (!segmentFd || !lock) {
    throw SegmentError("the running master handed over no stats segment descriptor (it is a tcpfork from before "
                       "they were inherited): stop it and start this version instead");
  }
  std::string link = readLink(fmt::format("/proc/self/fd/{}", segmentFd.get()));
  if (link != memfdLink(name)) {
    throw SegmentError(fmt::format("the running master's stats segment is {}, not that of '{}': a new name needs a "
                                   "restart",
                                   link, name));
  }
  StatsSegment segment = map(name, segmentFd.get(), true);
  segment.fd_ = std::move(segmentFd);
  segment.locator_.emplace(SegmentLocator::adopt(name, std::move(lock), std::move(owner)));
  return segment;
}

StatsSegment StatsSegment::attach(const std::string& name, UniqueFd segmentFd) {
  return map(name, segmentFd.get(), true);  // the mapping outlives the descriptor
}

StatsSegment StatsSegment::openReadOnly(const std::string& name) {
  UniqueFd fd;
  try {
    SegmentLocator::Where where = SegmentLocator::find(name);
    std::string proc = fmt::format("/proc/{}/fd/{}", where.pid, where.fd);
    char target[512];
    ssize_t n = ::readlink(proc.c_str(), target, sizeof target);
    int error = n < 0 ? errno : 0;
    if (error == ENOENT) throw SegmentError(fmt::format("its master (pid {}) is no longer running", where.pid));
    if (error != 0) {
      throw SegmentError(fmt::format("readlink({}): {}{}", proc, std::strerror(error),
                                     error == EACCES ? " (only root and the master's user can read it)" : ""));
    }
    std::string link(target, size_t(n));
    // Checked before opening: a reused pid's descriptor could be anything.
    if (link != memfdLink(name)) {
      throw SegmentError(fmt::format("{} is {}, not the segment (is its master, pid {}, gone?)", proc, link, where.pid));
    }
    fd.reset(::open(proc.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
    if (!fd) throw SegmentError(fmt::format("open({}): {}", proc, std::strerror(errno)));
  } catch (const SegmentError& e) {
    throw SegmentError(fmt::format("cannot open stats segment '{}': {}", name, e.what()));
  }
  return map(name, fd.get(), false);
}

StatsSegment StatsSegment::map(const std::string& name, int fd, bool writable) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    throw SegmentError(fmt::format("fstat(stats segment '{}', fd {}): {}", name, fd, std::strerror(errno)));
  }
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & kSeals) != kSeals) {
    throw SegmentError(fmt::format("stats segment '{}' is not sealed against resizing ({}): refusing to map what "
                                   "another process could shrink under us",
                                   name, seals < 0 ? fmt::format("fcntl(F_GET_SEALS): {}", std::strerror(errno))
                                                   : fmt::format("seals {:#x}", seals)));
  }
  auto size = size_t(st.st_size);
  if (size < sizeof(Header)) {
    throw SegmentError(fmt::format("stats segment '{}' is {} bytes, smaller than its header", name, size));
  }
  void* address = ::mmap(nullptr, size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) {
    throw SegmentError(fmt::format("mmap(stats segment '{}', {} bytes): {}", name, size, std::strerror(errno)));
  }
  Mapping mapping(address, Unmap{size});
  const auto* h = static_cast<const Header*>(address);
  if (std::atomic_ref<uint64_t>(const_cast<uint64_t&>(h->magic)).load(std::memory_order_acquire) != kMagic) {
    throw SegmentError(fmt::format("stats segment '{}' is not a tcpfork segment (bad magic)", name));
  }
  if (h->layoutVersion != kLayoutVersion) {
    throw SegmentError(fmt::format("stats segment '{}' has layout version {}, this build reads version {}", name,
                                   h->layoutVersion, kLayoutVersion));
  }
  uint32_t slotCount = h->slotCount;
  if (h->segmentBytes != segmentBytes(slotCount) || size < h->segmentBytes) {
    throw SegmentError(fmt::format("stats segment '{}' size {} does not match {} slots", name, size, slotCount));
  }
  return StatsSegment(name, std::move(mapping), slotCount);
}

void StatsSegment::claimName() {
  store(header_->masterPid, static_cast<uint64_t>(::getpid()));
  locator_->publish(fd_.get());
}

void StatsSegment::remove(const std::string& name) { ::unlink(SegmentLocator::path(name).c_str()); }

Slot& StatsSegment::slot(uint32_t index) const {
  if (index >= slotCount_) {
    throw SegmentError(fmt::format("slot {} out of range: segment '{}' has {} slots", index, name_, slotCount_));
  }
  return slots_[index];
}

}  // namespace tcpfork::stats
