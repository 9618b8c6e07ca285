#pragma once
// Config: everything the master runs with. Every key has a default, so no
// file is needed; a YAML file overrides defaults and command-line flags
// override the file. loadConfig() rejects unknown keys and bad values with
// ConfigError("FILE:LINE: key: why").

#include <chrono>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "contract/worker_settings.h"

namespace tcpfork {

using Millis = std::chrono::milliseconds;

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

struct Config {
  // The keys the workers run with (max_connections, max_frame_bytes,
  // output_high_water, idle_timeout, drain_timeout, profile.duration), with
  // the contract's defaults; name, log and profile.dir are the master's too
  // and are copied into it for each generation.
  WorkerSettings worker;
  std::string name = WorkerSettings{}.name;
  std::vector<std::string> listen = {"0.0.0.0:8888"};
  unsigned workers = 0;  // 0 = auto: one per usable core
  unsigned maxWorkers = 64;
  Millis workerTimeout{10'000};
  std::string pidFile;  // empty = /run/<name>.pid as root, else /tmp/<name>.pid
  std::string logFile;  // empty = stderr
  std::string logLevel = WorkerSettings{}.logLevel;
  std::string user;
  std::string group;
  std::string metricsListen = "127.0.0.1:8889";
  bool metricsAllowRemote = false;  // required for a non-loopback metrics.listen
  std::string metricsNamespace = "tcp_server";
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
};

// Reads `path` (empty = defaults only), applies `overrides`, validates.
Config loadConfig(const std::string& path, const ConfigOverrides& overrides = {});

// "250ms", "30s", "5m", "1h"; a bare number is seconds. Throws std::invalid_argument.
Millis parseDuration(const std::string& text);
// The inverse, in the largest unit that is exact: "250ms", "10s", "24h".
std::string formatDuration(Millis duration);

unsigned usableCores();

}  // namespace tcpfork
