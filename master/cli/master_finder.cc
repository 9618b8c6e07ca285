#include "master/cli/master_finder.h"

#include <dirent.h>
#include <unistd.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "master/pidfile.h"
#include "stats/segment_error.h"
#include "stats/segment_locator.h"

namespace tcpfork {
namespace {

using stats::SegmentLocator;

// Where every instance's locator lives (SegmentLocator::path).
constexpr const char* kLocatorDirectory = "/dev/shm";
constexpr std::string_view kLocatorSuffix = ".stats";

bool sameFile(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

struct Locator {
  std::string name;
  std::string path;
  struct stat file {};
  SegmentLocator::Where where;
};

// The locator of `name`, or nullopt with `why` saying what is there instead.
// `awaitPublish` as for SegmentLocator::find: only for the instance asked
// for by name, not in a scan of every instance's file.
std::optional<Locator> readLocator(const std::string& name, std::string& why, bool awaitPublish = true) {
  Locator locator{name, SegmentLocator::path(name), {}, {}};
  if (::lstat(locator.path.c_str(), &locator.file) != 0) {
    why = fmt::format("{}: {}", locator.path, std::strerror(errno));
    return std::nullopt;
  }
  if (!S_ISREG(locator.file.st_mode)) {
    why = fmt::format("{} is not a regular file", locator.path);
    return std::nullopt;
  }
  try {
    locator.where = SegmentLocator::find(name, awaitPublish);
  } catch (const stats::SegmentError& e) {
    why = e.what();
    return std::nullopt;
  }
  return locator;
}

// Whether process `pid` has the file at `path` (`file`) open. Throws
// MasterNotFound when that cannot be told: /proc/<pid>/fd is readable only
// by root and the process's own user, who alone may signal it anyway. Only
// descriptors whose link names `path` are stat()ed: the others may be
// sockets, pipes or files on a hung network mount.
bool holdsOpen(pid_t pid, const std::string& path, const struct stat& file) {
  std::string directory = fmt::format("/proc/{}/fd", pid);
  std::unique_ptr<DIR, int (*)(DIR*)> fds(::opendir(directory.c_str()), &::closedir);
  if (!fds) {
    if (errno == ENOENT) return false;  // no such process
    throw MasterNotFound(fmt::format("cannot tell whether pid {} is a tcpfork master: {}: {} (run -s as root or "
                                     "as the master's user)",
                                     pid, directory, std::strerror(errno)));
  }
  char link[PATH_MAX];
  while (const dirent* entry = ::readdir(fds.get())) {
    if (entry->d_name[0] == '.') continue;
    std::string descriptor = directory + "/" + entry->d_name;
    ssize_t n = ::readlink(descriptor.c_str(), link, sizeof link);
    if (n <= 0 || std::string_view(link, size_t(n)) != path) continue;
    struct stat held {};
    if (::stat(descriptor.c_str(), &held) == 0 && sameFile(held, file)) return true;
  }
  return false;
}

// Every instance name with a locator, in directory order.
std::vector<std::string> instanceNames() {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> directory(::opendir(kLocatorDirectory), &::closedir);
  if (!directory) return names;
  while (const dirent* entry = ::readdir(directory.get())) {
    std::string_view file = entry->d_name;
    if (file.size() > kLocatorSuffix.size() && file.ends_with(kLocatorSuffix) && file[0] != '.') {
      names.emplace_back(file.substr(0, file.size() - kLocatorSuffix.size()));
    }
  }
  return names;
}

// Whether the config a locator names is the file the operator gave: the same
// file, or the same path when it is gone.
bool sameConfig(const std::string& recorded, const std::string& given) {
  if (recorded.empty() || given.empty()) return false;
  struct stat a {};
  struct stat b {};
  if (::stat(recorded.c_str(), &a) == 0 && ::stat(given.c_str(), &b) == 0) return sameFile(a, b);
  return recorded == given;
}

FoundMaster throughPidfile(const MasterQuery& query, pid_t pid) {
  const std::string& pidFile = *query.pidFile;
  std::vector<std::string> names = query.name ? std::vector<std::string>{*query.name} : instanceNames();
  for (const std::string& name : names) {
    std::string why;
    if (auto locator = readLocator(name, why, query.name.has_value());
        locator && holdsOpen(pid, locator->path, locator->file)) {
      return FoundMaster{pid, name, pidFile, {}};
    }
  }
  throw MasterNotFound(
      query.name ? fmt::format("pidfile {} names pid {}, which is not the master of instance '{}' (it does not hold "
                               "{}): check pid_file and name",
                               pidFile, pid, *query.name, SegmentLocator::path(*query.name))
                 : fmt::format("pidfile {} names pid {}, which is not a tcpfork master (it holds no {}/*{})", pidFile,
                               pid, kLocatorDirectory, kLocatorSuffix));
}

}  // namespace

FoundMaster findMaster(const MasterQuery& query) {
  std::vector<std::string> looked;

  if (query.pidFile) {
    std::optional<pid_t> pid;
    try {
      pid = runningMasterPid(*query.pidFile);
    } catch (const PidfileError& e) {
      looked.emplace_back(e.what());
    }
    if (pid) return throughPidfile(query, *pid);
  }

  if (query.name) {
    std::string why;
    if (auto locator = readLocator(*query.name, why)) {
      pid_t pid = locator->where.pid;
      if (holdsOpen(pid, locator->path, locator->file)) {
        const std::string& pidFile = locator->where.owner.pidFile;
        return FoundMaster{pid, *query.name, pidFile,
                           fmt::format("found through {}{}", locator->path,
                                       pidFile.empty() ? "" : fmt::format(" (its pidfile is {})", pidFile))};
      }
      why = fmt::format("{} names pid {}, which does not run as its master (one killed outright leaves the file)",
                        locator->path, pid);
    }
    looked.push_back(why);
  }

  if (!query.configPath.empty()) {
    std::vector<FoundMaster> found;
    for (const std::string& name : instanceNames()) {
      if (query.name && name == *query.name) continue;  // looked at above
      std::string why;
      auto locator = readLocator(name, why, false);
      if (!locator || !sameConfig(locator->where.owner.config, query.configPath)) continue;
      if (!holdsOpen(locator->where.pid, locator->path, locator->file)) continue;
      const std::string& pidFile = locator->where.owner.pidFile;
      found.push_back({locator->where.pid, name, pidFile,
                       fmt::format("found through {}, the instance that runs with {}{}", locator->path,
                                   query.configPath,
                                   pidFile.empty() ? "" : fmt::format(" (its pidfile is {})", pidFile))});
    }
    if (found.size() == 1) return found.front();
    if (found.size() > 1) {
      std::vector<std::string> which;
      for (const FoundMaster& master : found) which.push_back(fmt::format("pid {} (name {})", master.pid, master.name));
      throw MasterNotFound(fmt::format("{} masters run with {}: {}; say which with --name", found.size(),
                                       query.configPath, fmt::join(which, ", ")));
    }
    looked.push_back(fmt::format("no instance in {} runs with {}", kLocatorDirectory, query.configPath));
  }

  throw MasterNotFound(fmt::format("no tcpfork master is running{} ({})",
                                   query.name ? fmt::format(" for instance '{}'", *query.name) : "",
                                   fmt::join(looked, "; ")));
}

}  // namespace tcpfork
