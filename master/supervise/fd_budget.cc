#include "master/supervise/fd_budget.h"

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include "contract/worker_settings.h"

#include <algorithm>
#include <filesystem>

namespace tcpfork {
namespace {

// Beyond the listeners: a spawn's report pipe, a binary upgrade's readiness
// pipe and inherited sockets, /proc and profile-directory reads, a reopened
// log, socket activation's extra fds; generous, since running short is worse.
constexpr long kSpare = 64;

long openDescriptors() {
  std::error_code ec;
  long n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec)) {
    ++n;
  }
  return n;
}

}  // namespace

unsigned adminConnectionLimit(unsigned maxWorkers, unsigned listenAddresses) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return kMaxAdminConnections;
  long reserve = 2L * maxWorkers * listenAddresses + kSpare;
  long open = openDescriptors();
  long left = long(limit.rlim_cur) - open - reserve;
  auto connections = unsigned(std::clamp<long>(left, 1, kMaxAdminConnections));
  if (left < long(kMaxAdminConnections)) {
    spdlog::warn("RLIMIT_NOFILE {} leaves {} admin HTTP connection(s) after {} descriptors open and {} kept in reserve "
                 "for workers' sockets and spawning (max_workers {}); raise it (systemd: LimitNOFILE=) for the full {}",
                 limit.rlim_cur, connections, open, reserve, maxWorkers, kMaxAdminConnections);
  }
  return connections;
}

void warnIfWorkersInheritTooFewDescriptors(uint64_t maxConnections, uint64_t rlimitNofile) {
  rlimit limit{};
  if (rlimitNofile > 0 || ::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  uint64_t needed = maxConnections + kWorkerOwnDescriptors;
  if (needed <= limit.rlim_cur) return;
  spdlog::warn("max_connections ({}) needs about {} descriptors per worker, and workers inherit a limit of {} "
               "(ulimit -n): each accepts about {} connections, then pauses accepting; set rlimit_nofile to {} "
               "or more, or lower max_connections",
               maxConnections, needed, uint64_t(limit.rlim_cur),
               uint64_t(limit.rlim_cur) > kWorkerOwnDescriptors ? uint64_t(limit.rlim_cur) - kWorkerOwnDescriptors : 0,
               needed);
}

}  // namespace tcpfork
