#pragma once
// Config: everything the master runs with. Every key has a default, so no
// file is needed; a YAML file overrides defaults and command-line flags
// override the file. loadConfig() rejects unknown keys and bad values with
// ConfigError("FILE:LINE: key: why"); values that contradict each other cite
// the line of the key at fault or, when the file leaves it at its default,
// of the key it is compared with, and a value a flag set is named as such.

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "contract/setting_values.h"
#include "contract/worker_settings.h"

namespace tcpfork {

class ConfigError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct AutoProfileConfig {
  bool enabled = false;
  Millis interval{10'000};
  double threshold = 80.0;  // percent of one core (CPU) or of memory limit
  unsigned consecutive = 3;
  Millis cooldown{300'000};
};

struct ProfileConfig {
  std::string dir;  // empty = /tmp/<name>_profile
  AutoProfileConfig autoProfile;
  bool http = false;        // serve /debug/pprof/profile
  bool httpRemote = false;  // ... to non-loopback peers too
};

// When the master replaces a serving worker with a fresh one, to contain
// what a long-lived process accumulates (a module's leaks, fragmentation);
// 0 = no such limit. Each worker draws its own limit, up to the jitter
// above the base, so workers started together do not all recycle at once.
// Graceful limits start a successor on the same sockets first and drain the
// old worker once it serves; max_rss_hard kills at once.
struct RecycleLimits {
  uint64_t maxRequests = 0;
  uint64_t maxRequestsJitter = 0;
  uint64_t maxRss = 0;      // bytes of resident memory
  uint64_t maxRssHard = 0;  // bytes
  Millis maxLifetime{0};
  Millis maxLifetimeJitter{0};

  bool operator==(const RecycleLimits&) const = default;
};

// cpu_affinity: where the master pins its workers (nginx's
// worker_cpu_affinity). kAuto: worker i on the i-th CPU this process may
// use, round robin; kList: worker i on cpus[i % size].
struct CpuAffinity {
  enum class Mode { kNone, kAuto, kList };
  Mode mode = Mode::kNone;
  std::vector<unsigned> cpus;  // kList

  bool operator==(const CpuAffinity&) const = default;
};

// steering: which workers the reuseport program (steering/) sends new
// connections to. A worker is out of rotation while its heartbeat is older
// than stale_after or its accept queue is longer than max_queue (back in once
// the queue is down to half of it); with everyone out, all take their share.
struct SteeringConfig {
  bool enabled = true;  // off: plain SO_REUSEPORT
  Millis staleAfter{250};
  uint32_t maxQueue = 256;

  bool operator==(const SteeringConfig&) const = default;
};

struct Config {
  // The keys the workers run with (contract/worker_setting_table.cc), with
  // the contract's defaults; those the master runs with too (name, log.*,
  // profile.dir) are in fields of their own below, copied into it for each
  // generation.
  WorkerSettings worker;
  std::string name = WorkerSettings{}.name;
  std::vector<std::string> listen = {"0.0.0.0:8888"};
  unsigned workers = 0;  // 0 = auto: one per usable core
  unsigned maxWorkers = 64;
  Millis workerTimeout{10'000};
  // After worker_timeout, how long a stalled worker has to write its stacks
  // to the log (stackDumpSignal) before it is killed; 0 = kill at once.
  Millis hangDumpGrace{1'000};
  RecycleLimits recycle;
  CpuAffinity cpuAffinity;
  SteeringConfig steering;
  std::string pidFile;  // empty = /run/<name>.pid as root, else /tmp/<name>.pid
  std::string logFile;  // empty = stderr
  std::string logLevel = WorkerSettings{}.logLevel;
  std::string user;
  std::string group;
  std::string metricsListen = "127.0.0.1:8889";
  bool metricsAllowRemote = false;  // required for a non-loopback metrics.listen
  std::string metricsNamespace = "tcp_server";
  // The agent check for a load balancer (master/agent/agent_port.h); empty =
  // off. Like metrics.listen, a non-loopback address needs allow_remote.
  std::string agentListen;
  bool agentAllowRemote = false;
  // With the agent on, how long a graceful stop (QUIT) answers `drain` while
  // the workers still accept, so that the balancer has stopped sending new
  // connections before the listeners close: longer than its agent-inter.
  Millis agentDrainDelay{2000};
  ProfileConfig profile;

  // Defaults that depend on other keys or on the machine, resolved.
  unsigned effectiveWorkers() const;
  std::string effectivePidFile() const;
  std::string effectiveProfileDir() const;
};

// Command-line values that override the file.
struct ConfigOverrides {
  std::vector<std::string> listen;
  std::optional<unsigned> workers;
  std::optional<std::string> metricsListen;
  std::optional<std::string> pidFile;
  std::optional<std::string> name;
  std::optional<std::string> logFile;
};

// Reads `path` (empty = defaults only), applies `overrides`, validates.
Config loadConfig(const std::string& path, const ConfigOverrides& overrides = {});

unsigned usableCores();
// The CPUs this process may run on (sched_getaffinity), in order.
std::vector<unsigned> usableCpus();
// The CPU each worker index is pinned to, in order (empty: none).
std::vector<int> workerCpus(const CpuAffinity& affinity);

}  // namespace tcpfork
