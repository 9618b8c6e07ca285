#include "stats/segment_locator.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <climits>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>

namespace tcpfork::stats {
namespace {

// tmpfs on every Linux, writable by every user (sticky), emptied at boot:
// where POSIX shared memory lives, and where this project's segments did.
constexpr const char* kDirectory = "/dev/shm/";

// A master that exits between our open() and our flock() has unlinked the
// file we hold; each retry opens the name afresh.
constexpr int kLockAttempts = 8;

// A master publishes right after it takes the lock; a reader (or the master
// that lost the race) may look in between.
constexpr int kReadAttempts = 50;
constexpr useconds_t kReadRetryMicros = 10'000;

// The first line: "<pid> <fd>", each right-aligned in 10 columns, so that
// every master writes it at the same length.
constexpr size_t kFirstLineBytes = 22;
// Two paths of at most PATH_MAX and their labels.
constexpr size_t kMaxFileBytes = kFirstLineBytes + 2 * (PATH_MAX + 16);

// "<label> <value>" from the lines after the first; empty when absent.
std::string field(std::string_view text, std::string_view label) {
  for (size_t at = text.find('\n'); at != std::string_view::npos && at + 1 < text.size(); at = text.find('\n', at + 1)) {
    std::string_view line = text.substr(at + 1);
    line = line.substr(0, line.find('\n'));
    if (line.size() > label.size() && line.starts_with(label) && line[label.size()] == ' ') {
      return std::string(line.substr(label.size() + 1));
    }
  }
  return {};
}

std::optional<SegmentLocator::Where> readWhere(int fd) {
  std::string text(kMaxFileBytes, '\0');
  ssize_t n = ::pread(fd, text.data(), text.size(), 0);
  if (n <= 0) return std::nullopt;
  text.resize(size_t(n));
  long pid = 0;
  int descriptor = -1;
  if (std::sscanf(text.c_str(), "%ld %d", &pid, &descriptor) != 2 || pid <= 0 || descriptor < 0) return std::nullopt;
  return SegmentLocator::Where{pid_t(pid), descriptor, {field(text, "pidfile"), field(text, "config")}};
}

std::optional<SegmentLocator::Where> awaitWhere(int fd) {
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    if (auto where = readWhere(fd)) return where;
    ::usleep(kReadRetryMicros);
  }
  return std::nullopt;
}

bool sameFile(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

}  // namespace

std::string SegmentLocator::path(const std::string& name) { return kDirectory + name + ".stats"; }

SegmentLocator SegmentLocator::take(const std::string& name, Owner owner) {
  std::string file = path(name);
  for (int attempt = 0; attempt < kLockAttempts; ++attempt) {
    UniqueFd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd) {
      throw SegmentError(fmt::format("open({}): {}{}", file, std::strerror(errno),
                                     errno == ELOOP ? " (a symlink: refused)" : ""));
    }
    struct stat held {};
    if (::fstat(fd.get(), &held) != 0) throw SegmentError(fmt::format("fstat({}): {}", file, std::strerror(errno)));
    if (!S_ISREG(held.st_mode)) throw SegmentError(fmt::format("{} is not a regular file", file));
    // Whoever owns it could write another pid into it, or hold its lock.
    if (held.st_uid != ::geteuid()) {
      throw SegmentError(fmt::format("{} belongs to uid {}, not to this master's uid {}: remove it, or give this "
                                     "instance another name",
                                     file, held.st_uid, ::geteuid()));
    }
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) throw SegmentError(fmt::format("flock({}): {}", file, std::strerror(errno)));
      auto where = awaitWhere(fd.get());
      throw SegmentError(fmt::format("stats segment '{}' belongs to a running master ({}); give this instance "
                                     "another name",
                                     name, where ? fmt::format("pid {}", where->pid) : "which has not said its pid yet"));
    }
    struct stat named {};
    if (::stat(file.c_str(), &named) == 0 && sameFile(named, held)) {
      return SegmentLocator(file, std::move(fd), std::move(owner));
    }
  }
  throw SegmentError(fmt::format("cannot lock {}: it was replaced {} times in a row", file, kLockAttempts));
}

SegmentLocator SegmentLocator::adopt(const std::string& name, UniqueFd lock, Owner owner) {
  return SegmentLocator(path(name), std::move(lock), std::move(owner));
}

SegmentLocator::~SegmentLocator() {
  if (!lock_) return;
  auto where = readWhere(lock_.get());
  struct stat held {};
  struct stat named {};
  // The file names the master that serves last (or nobody, when this one
  // failed to start after taking it); and the path may have been removed and
  // made again by another master meanwhile (an operator's rm).
  if ((!where || where->pid == ::getpid()) && ::fstat(lock_.get(), &held) == 0 && ::stat(path_.c_str(), &named) == 0 &&
      sameFile(held, named)) {
    ::unlink(path_.c_str());
  }
}

void SegmentLocator::publish(int segmentFd) {
  // Always the same length: a reader sees the previous master or this one,
  // never a mix, and never an empty file. (A binary upgrade's two masters
  // write the same paths after the first line.)
  auto line = [](std::string_view label, const std::string& value) {
    bool fits = !value.empty() && value.find('\n') == std::string::npos && value.size() <= PATH_MAX;
    return fits ? fmt::format("{} {}\n", label, value) : std::string();
  };
  std::string text = fmt::format("{:>10} {:>10}\n", ::getpid(), segmentFd);
  text += line("pidfile", owner_.pidFile) + line("config", owner_.config);
  if (::pwrite(lock_.get(), text.data(), text.size(), 0) != ssize_t(text.size()) ||
      ::ftruncate(lock_.get(), off_t(text.size())) != 0) {
    throw SegmentError(fmt::format("write({}): {}", path_, std::strerror(errno)));
  }
}

SegmentLocator::Where SegmentLocator::find(const std::string& name, bool awaitPublish) {
  std::string file = path(name);
  // Non-blocking: whatever someone put at that path, opening it must not hang.
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) {
    int error = errno;
    throw SegmentError(fmt::format("open({}): {}{}", file, std::strerror(error),
                                   error == ENOENT ? " (is a tcpfork master with this name running?)" : ""));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    throw SegmentError(fmt::format("{} is not a regular file", file));
  }
  auto where = awaitPublish ? awaitWhere(fd.get()) : readWhere(fd.get());
  if (!where) throw SegmentError(fmt::format("{} names no master", file));
  return *where;
}

}  // namespace tcpfork::stats
