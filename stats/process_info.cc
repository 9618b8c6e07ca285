#include "stats/process_info.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace tcpfork::stats {
namespace {

double secondsOn(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

}  // namespace

std::optional<ProcessInfo> readProcessInfo(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream stat(dir + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return std::nullopt;
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  ProcessInfo info;
  const double ticks = double(sysconf(_SC_CLK_TCK));
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  // Field numbers as in proc(5); the first one after ')' is 3 (state).
  for (int n = 3; fields >> field; ++n) {
    if (n == 14 || n == 15) info.cpuSeconds += std::stod(field) / ticks;
    if (n == 22) {
      // The start is in clock ticks since boot (CLOCK_BOOTTIME). Not from
      // /proc/stat's btime read once: that is the wall clock at the read, and
      // kept across a step it put uptime and start times an hour off for good.
      info.uptimeSeconds = std::max(0.0, secondsOn(CLOCK_BOOTTIME) - std::stod(field) / ticks);
      info.startTimeUnix = secondsOn(CLOCK_REALTIME) - info.uptimeSeconds;
    }
    if (n == 23) info.virtualBytes = std::stoull(field);
    if (n == 24) {
      info.residentBytes = std::stoull(field) * page;
      break;
    }
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir + "/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    ++info.openFds;
  }
  rlimit limit{};
  if (::prlimit(pid, RLIMIT_NOFILE, nullptr, &limit) == 0) info.maxFds = limit.rlim_cur;
  return info;
}

bool processRunning(pid_t pid) {
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;  // no /proc: trust kill()
  // "pid (comm) S ...": the state follows the last ')' (comm may hold one).
  size_t close = line.rfind(')');
  return close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'Z';
}

}  // namespace tcpfork::stats
