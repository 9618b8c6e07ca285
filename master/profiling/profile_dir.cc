#include "master/profiling/profile_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <vector>

#include "base/unique_fd.h"

namespace tcpfork {

ProfileDir::ProfileDir(std::string path, std::optional<uid_t> owner, std::optional<gid_t> group)
    : path_(std::move(path)), fileOwner_(owner.value_or(::geteuid())) {
  if (::mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::runtime_error(fmt::format("profile.dir: mkdir({}): {}", path_, std::strerror(errno)));
  }
  // O_NOFOLLOW: a symlink planted at the path fails here instead of redirecting profiles.
  dir_.reset(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir_) {
    throw std::runtime_error(fmt::format("profile.dir: {} is not a directory we can use ({}); a symlink is refused",
                                         path_, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(dir_.get(), &st) != 0) throw std::runtime_error(fmt::format("profile.dir: fstat({}) failed", path_));
  if (st.st_uid != ::geteuid() && st.st_uid != fileOwner_) {
    throw std::runtime_error(fmt::format("profile.dir: {} belongs to uid {}, not to us; refusing to write there", path_,
                                         st.st_uid));
  }
  if ((owner || group) && ::fchown(dir_.get(), owner.value_or(uid_t(-1)), group.value_or(gid_t(-1))) != 0) {
    throw std::runtime_error(fmt::format("profile.dir: fchown({}): {}", path_, std::strerror(errno)));
  }
  if (::fchmod(dir_.get(), 0700) != 0) {
    throw std::runtime_error(fmt::format("profile.dir: fchmod({}, 0700): {}", path_, std::strerror(errno)));
  }
}

namespace {

struct CloseDir {
  void operator()(DIR* dir) const { ::closedir(dir); }
};
using DirPtr = std::unique_ptr<DIR, CloseDir>;

// A fresh listing of the directory behind `dir` (its own open file
// description, so listings never share a position); null when out of
// descriptors or memory, which the callers take as an empty directory.
DirPtr list(int dir) {
  int fd = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  DirPtr listing(::fdopendir(fd));
  if (!listing) ::close(fd);
  return listing;
}

}  // namespace

std::optional<std::string> ProfileDir::newestProfileOf(pid_t pid, std::string_view suffix) const {
  std::string marker = fmt::format("-{}-", pid);
  std::optional<std::string> newest;
  timespec newestTime{};
  DirPtr listing = list(dir_.get());
  while (dirent* entry = listing ? ::readdir(listing.get()) : nullptr) {
    std::string_view name = entry->d_name;
    if (name.find(marker) == std::string_view::npos || !name.ends_with(suffix)) continue;
    struct stat st {};
    if (::fstatat(dir_.get(), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    if (!newest || std::tie(st.st_mtim.tv_sec, st.st_mtim.tv_nsec) > std::tie(newestTime.tv_sec, newestTime.tv_nsec)) {
      newest = std::string(name);
      newestTime = st.st_mtim;
    }
  }
  return newest;
}

std::string ProfileDir::readProfile(const std::string& name) const {
  auto refuse = [&](const std::string& why) { return Refused(fmt::format("{}/{}: {}", path_, name, why)); };
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") throw refuse("not a file name");
  UniqueFd file(::openat(dir_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!file) {
    throw refuse(errno == ELOOP ? "a symlink; not followed" : fmt::format("openat(): {}", std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) throw refuse(fmt::format("fstat(): {}", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw refuse("not a regular file");
  if (st.st_uid != fileOwner_) throw refuse(fmt::format("owned by uid {}, not by the workers' uid {}", st.st_uid, fileOwner_));
  if (st.st_nlink != 1) throw refuse(fmt::format("{} links to it, not the 1 a worker's profile has", st.st_nlink));
  if (st.st_size > kMaxProfileBytes) {
    throw refuse(fmt::format("{} bytes, over the {} a profile may have", st.st_size, kMaxProfileBytes));
  }
  // The owner may still be writing to it: the limit holds for what is read.
  std::string bytes;
  bytes.reserve(size_t(st.st_size));
  char chunk[64 * 1024];
  for (;;) {
    ssize_t n = ::read(file.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw refuse(fmt::format("read(): {}", std::strerror(errno)));
    if (n == 0) return bytes;
    if (off_t(bytes.size()) + n > kMaxProfileBytes) {
      throw refuse(fmt::format("grew past the {} bytes a profile may have", kMaxProfileBytes));
    }
    bytes.append(chunk, size_t(n));
  }
}

int ProfileDir::removePartialProfilesOf(pid_t pid) const {
  std::string marker = fmt::format("-{}-", pid);
  std::vector<std::string> partial;
  DirPtr listing = list(dir_.get());
  while (dirent* entry = listing ? ::readdir(listing.get()) : nullptr) {
    std::string_view name = entry->d_name;
    if (name.find(marker) != std::string_view::npos && name.ends_with(".tmp")) partial.emplace_back(name);
  }
  int removed = 0;
  for (const auto& name : partial) {
    if (::unlinkat(dir_.get(), name.c_str(), 0) == 0) ++removed;
  }
  return removed;
}

}  // namespace tcpfork
