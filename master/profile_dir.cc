#include "master/profile_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "base/unique_fd.h"

namespace tcpfork {
namespace fs = std::filesystem;

ProfileDir::ProfileDir(std::string path, std::optional<uid_t> owner, std::optional<gid_t> group)
    : path_(std::move(path)) {
  if (::mkdir(path_.c_str(), 0700) != 0 && errno != EEXIST) {
    throw std::runtime_error(fmt::format("profile.dir: mkdir({}): {}", path_, std::strerror(errno)));
  }
  // O_NOFOLLOW: a symlink planted at the path fails here instead of redirecting profiles.
  UniqueFd dir(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) {
    throw std::runtime_error(fmt::format("profile.dir: {} is not a directory we can use ({}); a symlink is refused",
                                         path_, std::strerror(errno)));
  }
  struct stat st {};
  if (::fstat(dir.get(), &st) != 0) throw std::runtime_error(fmt::format("profile.dir: fstat({}) failed", path_));
  uid_t expected = owner.value_or(::geteuid());
  if (st.st_uid != ::geteuid() && st.st_uid != expected) {
    throw std::runtime_error(fmt::format("profile.dir: {} belongs to uid {}, not to us; refusing to write there", path_,
                                         st.st_uid));
  }
  if ((owner || group) && ::fchown(dir.get(), owner.value_or(uid_t(-1)), group.value_or(gid_t(-1))) != 0) {
    throw std::runtime_error(fmt::format("profile.dir: fchown({}): {}", path_, std::strerror(errno)));
  }
  if (::fchmod(dir.get(), 0700) != 0) {
    throw std::runtime_error(fmt::format("profile.dir: fchmod({}, 0700): {}", path_, std::strerror(errno)));
  }
}

std::optional<std::string> ProfileDir::newestProfileOf(pid_t pid) const {
  std::string marker = fmt::format("-{}-", pid);
  std::optional<std::string> newest;
  fs::file_time_type newestTime{};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path_, ec)) {
    std::string name = entry.path().filename().string();
    if (name.find(marker) == std::string::npos || entry.path().extension() != ".prof") continue;
    auto time = entry.last_write_time(ec);
    if (!newest || time > newestTime) {
      newest = entry.path().string();
      newestTime = time;
    }
  }
  return newest;
}

int ProfileDir::removePartialProfilesOf(pid_t pid) const {
  std::string marker = fmt::format("-{}-", pid);
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path_, ec)) {
    std::string name = entry.path().filename().string();
    if (name.find(marker) != std::string::npos && name.ends_with(".prof.tmp") && fs::remove(entry.path(), ec)) {
      ++removed;
    }
  }
  return removed;
}

}  // namespace tcpfork
