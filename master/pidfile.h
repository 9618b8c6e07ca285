#pragma once
// Pidfile: the master's pid on disk, held under an exclusive flock for the
// master's whole life. A second master on the same path fails to take the
// lock and refuses to start; a file left by a dead master is unlocked and
// simply taken over. Owned by the Master; removed on clean exit.

#include <sys/types.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "base/unique_fd.h"

namespace tcpfork {

class PidfileError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Pidfile {
 public:
  // Locks `path` (never following a symlink) and writes our pid into it.
  // Throws PidfileError naming the running master when the lock is held.
  explicit Pidfile(std::string path);
  ~Pidfile();
  Pidfile(const Pidfile&) = delete;
  Pidfile& operator=(const Pidfile&) = delete;

  const std::string& path() const { return path_; }
  // Rewrites the pid (after daemonizing changed it).
  void write(pid_t pid);
  // Renames the file, keeping the lock (binary upgrade: "<path>.oldbin").
  // Throws PidfileError.
  void moveTo(const std::string& path);

 private:
  std::string path_;
  UniqueFd fd_;
};

// The pid of the master that holds `path` locked. Throws PidfileError saying
// why there is none (no file, unreadable, not locked = stale).
pid_t runningMasterPid(const std::string& path);

}  // namespace tcpfork
