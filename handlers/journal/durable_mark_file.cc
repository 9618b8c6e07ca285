#include "handlers/journal/durable_mark_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace tcpfork::journal {

std::shared_ptr<DurableMarkFile> DurableMarkFile::create(int dirFd, const std::string& dir, const std::string& name) {
  std::string path = dir + "/" + name;
  UniqueFd fd(::openat(dirFd, name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640));
  if (!fd) throw std::system_error(errno, std::generic_category(), path + ": open");
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) throw std::system_error(errno, std::generic_category(), path + ": flock");
  UniqueFd ownDirFd(::fcntl(dirFd, F_DUPFD_CLOEXEC, 0));
  if (!ownDirFd) throw std::system_error(errno, std::generic_category(), dir + ": fcntl(F_DUPFD_CLOEXEC)");
  // Written whole now, so that each later rewrite lands in a block the file
  // already has: a full file system cannot refuse it.
  auto bytes = encodeDurableMark({});
  if (::pwrite(fd.get(), bytes.data(), bytes.size(), 0) != ssize_t(bytes.size())) {
    throw std::system_error(errno ? errno : EIO, std::generic_category(), path + ": pwrite");
  }
  return std::shared_ptr<DurableMarkFile>(new DurableMarkFile(std::move(fd), std::move(ownDirFd), name, path));
}

DurableMarkFile::DurableMarkFile(UniqueFd fd, UniqueFd dirFd, std::string name, std::string path)
    : fd_(std::move(fd)), dirFd_(std::move(dirFd)), name_(std::move(name)), path_(std::move(path)) {}

std::string DurableMarkFile::publish(const DurableMark& mark) {
  auto bytes = encodeDurableMark(mark);
  ssize_t n = ::pwrite(fd_.get(), bytes.data(), bytes.size(), 0);
  if (n == ssize_t(bytes.size())) {
    if (!failing_) return "";
    failing_ = false;
    return path_ + ": written again; tcpfork-journal follow catches up";
  }
  if (failing_) return "";
  failing_ = true;
  return path_ + ": pwrite: " + (n < 0 ? std::strerror(errno) : "short write") +
         "; tcpfork-journal follow stays at the last mark written until a write succeeds";
}

void DurableMarkFile::remove() { ::unlinkat(dirFd_.get(), name_.c_str(), 0); }

}  // namespace tcpfork::journal
