#include "handlers/journal/retention.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "handlers/journal/segment_files.h"

namespace tcpfork::journal {

namespace {

constexpr auto kRetentionErrorLogInterval = std::chrono::seconds(10);

struct Listed {
  std::string name;
  uint64_t bytes = 0;
  std::chrono::system_clock::time_point written;  // mtime
  bool sealed = false;
};

std::chrono::system_clock::time_point mtime(const struct stat& st) {
  auto ns = std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
  return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(ns));
}

// The segments of the directory; false and `error` when it cannot be read.
bool list(int dirFd, std::vector<Listed>& out, std::string& error) {
  int fd = ::openat(dirFd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    error = std::string("open: ") + std::strerror(errno);
    return false;
  }
  DIR* listing = ::fdopendir(fd);
  if (!listing) {
    error = std::string("fdopendir: ") + std::strerror(errno);
    ::close(fd);
    return false;
  }
  while (dirent* entry = ::readdir(listing)) {
    std::string_view name = entry->d_name;
    if (!isSegment(name)) continue;
    struct stat st {};
    // Gone since the listing: sealed (renamed) or deleted by another worker.
    if (::fstatat(dirFd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    out.push_back({std::string(name), uint64_t(st.st_size), mtime(st), !isOpenSegment(name)});
  }
  ::closedir(listing);
  return true;
}

std::string size(uint64_t bytes) {
  char text[32];
  if (bytes < (1 << 20)) {
    std::snprintf(text, sizeof text, "%.0f KiB", double(bytes) / double(1 << 10));
  } else {
    std::snprintf(text, sizeof text, "%.1f MiB", double(bytes) / double(1 << 20));
  }
  return text;
}

}  // namespace

RetentionPass Retention::run(int dirFd, const std::string& dir, std::chrono::system_clock::time_point now) {
  RetentionPass pass;
  std::vector<Listed> segments;
  std::string error;
  if (!list(dirFd, segments, error)) {
    auto steadyNow = std::chrono::steady_clock::now();
    if (steadyNow - lastErrorLog_ >= kRetentionErrorLogInterval) {
      lastErrorLog_ = steadyNow;
      log_(3, "retention: " + dir + ": " + error + "; nothing deleted");
    }
    return pass;
  }
  uint64_t total = 0;
  for (const Listed& s : segments) total += s.bytes;
  std::sort(segments.begin(), segments.end(), [](const Listed& a, const Listed& b) {
    return a.written != b.written ? a.written < b.written : a.name < b.name;
  });
  const bool bySize = options_.maxBytes > 0;
  const bool byAge = options_.maxAge.count() > 0;
  for (const Listed& s : segments) {
    if (!s.sealed) continue;
    bool tooOld = byAge && now - s.written > options_.maxAge;
    bool overSize = bySize && total > options_.maxBytes;
    if (!tooOld && !overSize) break;  // oldest first: the rest are younger, and the size is kept
    if (::unlinkat(dirFd, s.name.c_str(), 0) == 0) {
      ++pass.segmentsDeleted;
      pass.bytesDeleted += s.bytes;
    } else if (errno != ENOENT) {  // ENOENT: another worker deleted it first
      auto steadyNow = std::chrono::steady_clock::now();
      if (steadyNow - lastErrorLog_ >= kRetentionErrorLogInterval) {
        lastErrorLog_ = steadyNow;
        log_(3, "retention: " + dir + "/" + s.name + ": unlink: " + std::strerror(errno) + "; kept");
      }
      continue;
    }
    total -= s.bytes;
  }
  pass.bytesLeft = total;
  if (bySize && total > options_.maxBytes && !saidUnkept_) {
    saidUnkept_ = true;
    uint64_t open = 0;
    size_t openCount = 0;
    for (const Listed& s : segments) {
      if (!s.sealed) {
        open += s.bytes;
        ++openCount;
      }
    }
    log_(2, "retention: " + dir + " holds " + size(total) + ", over max_bytes " + size(options_.maxBytes) +
                ", with every sealed segment it could delete gone: " + std::to_string(openCount) +
                " segments still being written take " + size(open) +
                " (each grows to segment_bytes before it is sealed; a segment_bytes under max_bytes divided by the "
                "number of workers keeps the bound). Said once per worker.");
  }
  return pass;
}

}  // namespace tcpfork::journal
