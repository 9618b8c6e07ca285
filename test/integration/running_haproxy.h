#pragma once
// RunningHaproxy: a real HAProxy (/usr/sbin/haproxy, in the foreground) run
// with the shipped deploy/haproxy/haproxy.cfg, its two listeners replaced by
// loopback sockets the test binds to ephemeral ports and hands over (bind
// fd@N) and its check timing by the test's; ready once its runtime API
// answers. Killed by pid when the test ends.

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "test/integration/loopback_port.h"
#include "test/integration/process.h"

namespace tcpfork::test {

inline constexpr const char* kHaproxy = "/usr/sbin/haproxy";

// Check timing the tests substitute for the shipped default-server timing:
// short, so that a dead instance is DOWN within a fraction of a second.
inline constexpr const char* kFastChecks = "inter 200ms fastinter 100ms downinter 200ms fall 2 rise 1";

// Check timing the fleet test substitutes for deploy/haproxy/fleet.cfg's:
// health and agent checks every 200 ms.
inline constexpr const char* kFastFleetChecks =
    "inter 200ms fastinter 100ms downinter 200ms fall 2 rise 2 agent-check agent-inter 200ms";

// A host of the fleet config: its service and agent addresses.
struct FleetServer {
  std::string name;  // host1, host2, ...
  std::string address;  // "127.0.0.2:P"
  int agentPort = 0;
};

// One row of `show stat`: column name to value.
using StatRow = std::map<std::string, std::string>;

class RunningHaproxy {
 public:
  // Balances over servers tcpfork1..N at 127.0.0.1:`backendPorts`[i]; an
  // empty `checkTiming` keeps the shipped one.
  explicit RunningHaproxy(const std::vector<int>& backendPorts, const std::string& checkTiming = kFastChecks);

  // The shipped deploy/haproxy/fleet.cfg over `servers`, with `checkTiming`
  // (kFastFleetChecks' form) for its default-server timing.
  RunningHaproxy(const std::vector<FleetServer>& servers, const std::string& checkTiming);

  int port() const { return frontend_.port; }
  int statsPort() const { return stats_.port; }
  const std::string& configPath() const { return configPath_; }
  std::string log() const { return readFile(logPath_); }
  ChildProcess& process() { return process_; }

  // A runtime API command over the stats socket; the whole answer ("" when
  // the socket did not answer).
  std::string command(const std::string& line) const;
  // The `show stat` row of backend server `server` (empty when absent).
  StatRow serverStat(const std::string& server) const;
  // Its "status" column: "UP", "DOWN", "UP 1/2" (going down), "no check", ...
  std::string serverStatus(const std::string& server) const;

  // The shipped config with the substitutions applied, its frontends bound
  // to the inherited descriptors `frontendFd` and `statsFd`; throws when the
  // shipped file no longer has a line a substitution expects.
  static std::string configFor(const std::string& shipped, const std::vector<int>& backendPorts, int frontendFd,
                               int statsFd, const std::string& socketPath, const std::string& checkTiming);
  static std::string fleetConfigFor(const std::string& shipped, const std::vector<FleetServer>& servers, int frontendFd,
                                    int statsFd, const std::string& socketPath, const std::string& checkTiming);

 private:
  using ConfigMaker = std::function<std::string(int frontendFd, int statsFd, const std::string& socketPath)>;
  explicit RunningHaproxy(const ConfigMaker& makeConfig);

  std::string dir_;
  std::string socketPath_;
  std::string configPath_;
  std::string logPath_;
  BoundPort frontend_;
  BoundPort stats_;
  ChildProcess process_;
};

}  // namespace tcpfork::test
