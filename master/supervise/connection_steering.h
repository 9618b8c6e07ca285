#pragma once
// ConnectionSteering: which workers take new connections. Every tick it looks
// at each worker index (does a worker serve it, how old is its heartbeat,
// how long its accept queue, does it shed for overload), decides with
// steering/policy.h and writes the eligible set into the reuseport program
// (steering/reuseport_steering.h), so that no new connection is hashed to a
// stalled, swamped or overloaded worker. A socket about to close is taken out
// first (Listeners::onDrop). Owned by the Master; on its loop.

#include <cstdint>
#include <string>
#include <vector>

#include "base/log.h"
#include "master/config/config.h"
#include "master/supervise/listeners.h"
#include "master/supervise/supervisor.h"
#include "stats/segment.h"
#include "steering/policy.h"
#include "steering/reuseport_steering.h"

namespace tcpfork {

class ConnectionSteering {
 public:
  ConnectionSteering(const SteeringConfig& config, unsigned maxWorkers, Listeners& listeners);
  ConnectionSteering(const ConnectionSteering&) = delete;
  ConnectionSteering& operator=(const ConnectionSteering&) = delete;

  // Steering is on and the program loads (tried once).
  bool possible() { return config_.enabled && program_.available(); }
  // Thresholds from a reloaded config (steering.enabled needs a restart).
  void configure(const SteeringConfig& config);
  // Loads the program on the first call (or says once why steering is off),
  // then decides and publishes.
  // `maxConnections`: the current generation's max_connections, past which a
  // worker closes every new connection.
  void tick(const Supervisor& supervisor, const stats::StatsSegment& segment, uint64_t maxConnections);
  // A binary upgrade's new master serves: steering is its from now on.
  void handOver();
  // After a failed binary upgrade: the dead master's program is attached.
  void reattach() { program_.reattach(); }
  steering::Status status() const;

 private:
  void logChanges(const std::vector<steering::WorkerView>& views, const steering::Decision& decision,
                  uint64_t maxConnections);

  SteeringConfig config_;
  Listeners& listeners_;
  steering::ReuseportSteering program_;
  bool announced_ = false;
  bool announcedOn_ = false;
  std::vector<steering::WorkerView> views_;
  steering::Decision last_;
  bool wasEveryoneOut_ = false;
  uint64_t excludedStale_ = 0;
  uint64_t excludedQueue_ = 0;
  uint64_t excludedFull_ = 0;
  uint64_t excludedOverloaded_ = 0;
  uint64_t excludedRetiring_ = 0;
  // A worker busy for a few hundred ms at a time (its only worker, say)
  // goes out of rotation and back every few ticks; each change is counted
  // (steering_excluded_total), but logged once, then once per window as a
  // count (RateLimitedLog::flush, each tick).
  static constexpr auto kLogWindow = std::chrono::seconds(10);
  RateLimitedLog outLog_{1, kLogWindow, "steering 'out of rotation' messages"};
  RateLimitedLog backLog_{1, kLogWindow, "steering 'back in rotation' messages"};
  RateLimitedLog everyoneOutLog_{1, kLogWindow, "steering 'no worker qualifies' messages"};
};

}  // namespace tcpfork
