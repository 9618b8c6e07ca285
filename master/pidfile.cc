#include "master/pidfile.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace tcpfork {
namespace {

std::optional<pid_t> readPid(int fd) {
  char buffer[32] = {};
  ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  if (n <= 0) return std::nullopt;
  pid_t pid = 0;
  auto [end, ec] = std::from_chars(buffer, buffer + n, pid);
  if (ec != std::errc() || pid <= 0) return std::nullopt;
  return pid;
}

}  // namespace

Pidfile::Pidfile(std::string path) : path_(std::move(path)) {
  fd_.reset(::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd_) {
    throw PidfileError(fmt::format("open(pidfile {}): {}", path_, std::strerror(errno)));
  }
  if (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      auto pid = readPid(fd_.get());
      throw PidfileError(fmt::format("another tcpfork master (pid {}) holds {}; stop it first or use another pid_file",
                                     pid ? std::to_string(*pid) : "?", path_));
    }
    throw PidfileError(fmt::format("flock(pidfile {}): {}", path_, std::strerror(errno)));
  }
  write(::getpid());
}

Pidfile::~Pidfile() {
  // Unlink while still locked, so no newcomer can lock the name we remove.
  if (fd_) ::unlink(path_.c_str());
}

void Pidfile::write(pid_t pid) {
  std::string text = fmt::format("{}\n", pid);
  // Readers see the old pid, nothing, or the new pid: one write of a few bytes.
  if (::ftruncate(fd_.get(), 0) != 0 || ::pwrite(fd_.get(), text.data(), text.size(), 0) != ssize_t(text.size())) {
    throw PidfileError(fmt::format("write(pidfile {}): {}", path_, std::strerror(errno)));
  }
}

void Pidfile::moveTo(const std::string& path) {
  if (::rename(path_.c_str(), path.c_str()) != 0) {
    throw PidfileError(fmt::format("rename(pidfile {} -> {}): {}", path_, path, std::strerror(errno)));
  }
  path_ = path;
}

pid_t runningMasterPid(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    throw PidfileError(fmt::format("pidfile {}: {}", path, std::strerror(errno)));
  }
  // A live master holds the lock; if we can take it, the file is stale.
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
    throw PidfileError(fmt::format("pidfile {} is stale: no process holds its lock", path));
  }
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (auto pid = readPid(fd.get())) return *pid;
    ::usleep(10'000);  // the master may be between truncate and write
  }
  throw PidfileError(fmt::format("pidfile {} is locked but holds no pid", path));
}

}  // namespace tcpfork
