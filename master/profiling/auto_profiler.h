#pragma once
// AutoProfiler: the master samples each serving worker's CPU share (of one
// core) and memory share (RSS of MemTotal) every profile.auto.interval; when
// either stays above profile.auto.threshold for profile.auto.consecutive
// samples, it profiles that worker once (SIGTRAP, for profile.duration) and
// leaves that worker index alone for profile.auto.cooldown. Owned by the
// Master; runs on its loop timer.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>

#include "master/config/config.h"
#include "stats/segment.h"

namespace tcpfork {

class AutoProfiler {
 public:
  using Clock = std::chrono::steady_clock;

  AutoProfiler(stats::StatsSegment& segment, AutoProfileConfig config);
  void setConfig(AutoProfileConfig config) { config_ = config; }
  const AutoProfileConfig& config() const { return config_; }

  // One sample of the workers of `generation`. `ours(index, pid)`: whether
  // `pid` is the supervisor's serving worker of that index. The pids come
  // from the segment, which the workers' user can write: one forged there
  // must not have the root master signal a process of someone else.
  void sample(uint64_t generation, const std::function<bool(unsigned, pid_t)>& ours);

 private:
  struct Track {
    pid_t pid = 0;
    double cpuSeconds = 0;
    Clock::time_point at;
    unsigned over = 0;
  };

  stats::StatsSegment& segment_;
  AutoProfileConfig config_;
  uint64_t memTotalBytes_;
  std::map<uint64_t, Track> tracks_;                  // by worker index
  std::map<uint64_t, Clock::time_point> lastProfile_;  // by worker index
};

}  // namespace tcpfork
