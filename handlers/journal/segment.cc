#include "handlers/journal/segment.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "handlers/journal/segment_files.h"

namespace tcpfork::journal {

namespace {

std::string errorText(const std::string& what, int error) { return what + ": " + std::strerror(error); }

}  // namespace

std::shared_ptr<Segment> Segment::create(int dirFd, const std::string& dir, const std::string& name,
                                         const SegmentHeader& header, uint32_t sequence,
                                         std::shared_ptr<DurableMarkFile> mark) {
  // O_TMPFILE: the file gets its name (linkat) only once header and lock are
  // in place, so recovery in another worker never sees it half made.
  UniqueFd fd(::openat(dirFd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0640));
  if (!fd) {
    int e = errno;
    if (e == EOPNOTSUPP || e == EISDIR) {
      throw std::system_error(e, std::generic_category(),
                              dir + ": the file system does not support O_TMPFILE (ext4, xfs, btrfs and tmpfs do)");
    }
    throw std::system_error(e, std::generic_category(), dir + ": open(O_TMPFILE)");
  }
  UniqueFd ownDirFd(::fcntl(dirFd, F_DUPFD_CLOEXEC, 0));
  if (!ownDirFd) throw std::system_error(errno, std::generic_category(), dir + ": fcntl(F_DUPFD_CLOEXEC)");
  int raw = fd.get();
  auto segment = std::shared_ptr<Segment>(new Segment(std::move(fd), std::move(ownDirFd), dir, name, sequence, std::move(mark)));
  if (::flock(raw, LOCK_EX | LOCK_NB) != 0) throw std::system_error(errno, std::generic_category(), dir + ": flock");
  auto bytes = encodeHeader(header);
  std::string error;
  if (!segment->append(bytes, error)) throw std::runtime_error(dir + ": " + error);
  std::string proc = "/proc/self/fd/" + std::to_string(raw);
  if (::linkat(AT_FDCWD, proc.c_str(), segment->dirFd_.get(), name.c_str(), AT_SYMLINK_FOLLOW) != 0) {
    throw std::system_error(errno, std::generic_category(), segment->path() + ": linkat");
  }
  return segment;
}

Segment::Segment(UniqueFd fd, UniqueFd dirFd, std::string dir, std::string name, uint32_t sequence,
                 std::shared_ptr<DurableMarkFile> mark)
    : fd_(std::move(fd)),
      dirFd_(std::move(dirFd)),
      dir_(std::move(dir)),
      name_(std::move(name)),
      path_(dir_ + "/" + name_),
      sequence_(sequence),
      mark_(std::move(mark)) {}

bool Segment::append(std::span<const std::byte> bytes, std::string& error) {
  size_t done = 0;
  while (done < bytes.size()) {
    // At our own offset: a write cut back after a failure leaves the file
    // offset past the end, and the next append must not leave a gap.
    ssize_t n = ::pwrite(fd_.get(), bytes.data() + done, bytes.size() - done, off_t(size_ + done));
    if (n > 0) {
      done += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    int e = n < 0 ? errno : EIO;
    error = errorText(path_ + ": pwrite", e);
    if (done > 0 && ::ftruncate(fd_.get(), off_t(size_)) != 0) {
      broken_ = true;
      error += "; " + errorText("cutting the partial record back", errno);
    }
    return false;
  }
  size_ += bytes.size();
  return true;
}

bool Segment::sync(std::string& error) {
  if (::fdatasync(fd_.get()) != 0) {
    error = errorText(path_ + ": fdatasync", errno);
    return false;
  }
  if (!nameSynced_.exchange(true) && ::fsync(dirFd_.get()) != 0) {
    nameSynced_ = false;
    error = errorText(dir_ + ": fsync of the directory", errno);
    return false;
  }
  return true;
}

std::string Segment::markDurable(uint64_t end) { return mark_ ? mark_->publish({sequence_, end}) : ""; }

bool Segment::named(std::string& error) {
  if (unnamed()) {
    error = path_ + ": deleted while open";
    return false;
  }
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) {
    error = errorText(path_ + ": fstat", errno);
  } else if (st.st_nlink == 0) {
    error = path_ + ": deleted while open (st_nlink 0: no name left, its directory may be gone too)";
  } else {
    return true;
  }
  unnamed_.store(true, std::memory_order_release);
  return false;
}

bool Segment::seal(bool durable, std::string& error) {
  if (unnamed()) {
    error = path_ + ": not sealed: the file was deleted while open";
    return false;
  }
  std::string sealed = sealedName(name_);
  if (::renameat(dirFd_.get(), name_.c_str(), dirFd_.get(), sealed.c_str()) != 0) {
    error = errorText(path_ + ": rename to " + sealed, errno);
    return false;
  }
  name_ = sealed;
  path_ = dir_ + "/" + name_;
  if (durable && ::fsync(dirFd_.get()) != 0) {
    error = errorText(dir_ + ": fsync of the directory", errno);
    return false;
  }
  return true;
}

}  // namespace tcpfork::journal
