#include "master/config/config_rules.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fmt/format.h>

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/socket.h"

namespace tcpfork {

std::optional<ListenProblem> listenProblem(const std::vector<std::string>& listen) {
  std::map<std::string, size_t> seen;  // a long list costs n log n, not n squared
  for (size_t i = 0; i < listen.size(); ++i) {
    std::string address;
    try {
      address = parseAddress(listen[i]).toString();
    } catch (const std::invalid_argument& e) {
      return ListenProblem{i, e.what()};
    }
    if (auto [first, fresh] = seen.emplace(address, i); !fresh) {
      return ListenProblem{
          i, fmt::format("{} is listed twice (entries {} and {})", listen[i], first->second + 1, i + 1)};
    }
  }
  return std::nullopt;
}

void checkRulesAcrossKeys(const Config& c, const ConfigOrigins& o) {
  if (!isInstanceName(c.name)) {
    o.fail("name", fmt::format("{} is not an instance name: {} (it names the stats segment and default paths)",
                               o.value("name", "'" + c.name + "'"), kInstanceNameRule));
  }
  if (c.listen.empty()) o.fail("listen", "needs at least one address");
  if (auto problem = listenProblem(c.listen)) {
    std::string entry = fmt::format("entry {}", problem->entry + 1);
    o.fail("listen", fmt::format("{}: {}", o.value("listen", entry), problem->why));
  }
  try {
    if (!isLoopback(parseAddress(c.metricsListen)) && !c.metricsAllowRemote) {
      o.fail("metrics.listen",
             fmt::format("{} is not a loopback address and {} does not allow one; the admin port serves /status "
                         "(and /debug/pprof when enabled): set metrics.allow_remote: true to expose it",
                         o.value("metrics.listen", c.metricsListen), o.compared("metrics.allow_remote", "false")),
             {"metrics.allow_remote"});
    }
  } catch (const std::invalid_argument& e) {
    o.fail("metrics.listen", o.value("metrics.listen", c.metricsListen) + ": " + e.what());
  }
  if (!c.agentListen.empty() && !isLoopback(parseAddress(c.agentListen)) && !c.agentAllowRemote) {
    o.fail("agent.listen",
           fmt::format("{} is not a loopback address and {} does not allow one; the agent check tells anyone who "
                       "connects how loaded this host is: set agent.allow_remote: true for a balancer on another "
                       "machine",
                       o.value("agent.listen", c.agentListen), o.compared("agent.allow_remote", "false")),
           {"agent.allow_remote"});
  }
  if (c.effectiveWorkers() > c.maxWorkers) {
    o.fail("workers",
           fmt::format("{} is more than {}", o.value("workers", std::to_string(c.effectiveWorkers())),
                       o.compared("max_workers", std::to_string(c.maxWorkers))),
           {"max_workers"});
  }
  if (uint64_t nofile = c.worker.rlimitNofile; nofile > 0) {
    if (c.worker.maxConnections + kWorkerOwnDescriptors > nofile) {
      o.fail("rlimit_nofile",
             fmt::format("{} leaves no room for {} and the {} descriptors a worker needs of its own: at least {}",
                         o.value("rlimit_nofile", std::to_string(nofile)),
                         o.compared("max_connections", std::to_string(c.worker.maxConnections)),
                         kWorkerOwnDescriptors, c.worker.maxConnections + kWorkerOwnDescriptors),
             {"max_connections"});
    }
    rlimit current{};
    ::getrlimit(RLIMIT_NOFILE, &current);
    if (nofile > current.rlim_max && ::geteuid() != 0) {
      o.fail("rlimit_nofile", fmt::format("{} is above the hard limit ({}), which only root can raise",
                                          o.value("rlimit_nofile", std::to_string(nofile)),
                                          uint64_t(current.rlim_max)));
    }
  }
  const RecycleLimits& recycle = c.recycle;
  if (recycle.maxRequestsJitter > 0 && recycle.maxRequests == 0) {
    o.fail("max_requests_jitter",
           fmt::format("{} needs max_requests; {} is no limit",
                       o.value("max_requests_jitter", std::to_string(recycle.maxRequestsJitter)),
                       o.compared("max_requests", "0")),
           {"max_requests"});
  }
  if (recycle.maxLifetimeJitter.count() > 0 && recycle.maxLifetime.count() == 0) {
    o.fail("max_lifetime_jitter",
           fmt::format("{} needs max_lifetime; {} is no limit",
                       o.value("max_lifetime_jitter", formatDuration(recycle.maxLifetimeJitter)),
                       o.compared("max_lifetime", "0")),
           {"max_lifetime"});
  }
  // A worker recycled every few moments would spend its life starting.
  if (recycle.maxLifetime.count() > 0 && recycle.maxLifetime < Millis(1000)) {
    o.fail("max_lifetime",
           o.value("max_lifetime", formatDuration(recycle.maxLifetime)) + " is under 1s (0 = no limit)");
  }
  if (recycle.maxRss > 0 && recycle.maxRssHard > 0 && recycle.maxRssHard <= recycle.maxRss) {
    o.fail("max_rss_hard",
           fmt::format("{} is not above {}: the graceful recycle would never come first",
                       o.value("max_rss_hard", std::to_string(recycle.maxRssHard)),
                       o.compared("max_rss", std::to_string(recycle.maxRss))),
           {"max_rss"});
  }
  // The minimum over an interval shorter than the target could never be
  // judged against it: a request would have to wait longer than the window.
  if (const OverloadSettings& overload = c.worker.overload; overload.target > overload.interval) {
    o.fail("overload.target",
           fmt::format("{} is longer than {}", o.value("overload.target", formatDuration(overload.target)),
                       o.compared("overload.interval", formatDuration(overload.interval))),
           {"overload.interval"});
  }
  // Below one connection's worth, a single client sending its largest frame
  // would be shed for it.
  if (size_t oneConnection = c.worker.limits.maxFrameBytes + c.worker.limits.outputHighWater;
      c.worker.maxBufferedBytes < oneConnection) {
    o.fail("max_buffered_bytes",
           fmt::format("{} is less than one connection may hold: {} + {} = {}",
                       o.value("max_buffered_bytes", std::to_string(c.worker.maxBufferedBytes)),
                       o.compared("max_frame_bytes", std::to_string(c.worker.limits.maxFrameBytes)),
                       o.compared("output_high_water", std::to_string(c.worker.limits.outputHighWater)),
                       oneConnection),
           {"max_frame_bytes", "output_high_water"});
  }
}


}  // namespace tcpfork
