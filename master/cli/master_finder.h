#pragma once
// findMaster: the running master of an instance, for `tcpfork -s`, however
// it was started. In order:
//   1. the pidfile the config names (or --pid-file);
//   2. the instance's locator, /dev/shm/<name>.stats, which names its master
//      and the pidfile it holds: a master started with another --pid-file
//      (the systemd unit's) is found there;
//   3. every instance's locator, for the one whose master runs with this
//      config file: when the config no longer loads, so its name is unknown,
//      or the master was started with another --name.
// A pid is believed only when that process holds the instance's locator
// open. Only masters of that name do (each takes it at start, a binary
// upgrade's new master inherits it, workers never get it), so a stale
// pidfile's recycled pid, another instance's pidfile or a file a user wrote
// is never signalled.

#include <sys/types.h>

#include <optional>
#include <stdexcept>
#include <string>

namespace tcpfork {

class MasterNotFound : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct MasterQuery {
  std::optional<std::string> name;     // unknown when the config does not load
  std::optional<std::string> pidFile;  // the config's or --pid-file
  std::string configPath;              // absolute; empty: started without -c
};

struct FoundMaster {
  pid_t pid = 0;
  std::string name;
  // The pidfile it holds, for `-s upgrade` to follow (empty: unknown).
  std::string pidFile;
  // How it was found, when not through the pidfile the operator expects:
  // worth a line of output ("through /dev/shm/x.stats: its pidfile is ...").
  std::string foundThrough;
};

// Throws MasterNotFound saying where it looked and why each place failed.
FoundMaster findMaster(const MasterQuery& query);

}  // namespace tcpfork
