#pragma once
// BinaryUpgrade: the old master's side of a binary upgrade (SIGUSR2, nginx's
// model). It starts the new `tcpfork` binary as a child master that inherits
// the listening sockets, the admin socket and the stats segment, and waits
// on a pipe for its word: "READY" once every new worker serves, or why it
// could not start. Both masters then serve side by side until the old one is
// told QUIT. If the new master fails, before or after it was ready, the old
// one is told so and takes everything back. Owned by the Master; on its loop.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

#include "base/event_ptr.h"
#include "base/unique_fd.h"
#include "master/supervise/spawn.h"

namespace tcpfork {

class BinaryUpgrade {
 public:
  // Environment entries the new master reads (and unsets) at start.
  static constexpr const char* kFromEnv = "TCPFORK_UPGRADE_FROM";    // old master's pid
  static constexpr const char* kReadyFdEnv = "TCPFORK_READY_FD";     // where to say READY
  static constexpr const char* kAdminFdEnv = "TCPFORK_ADMIN_FD";     // the admin HTTP socket
  static constexpr const char* kAgentFdEnv = "TCPFORK_AGENT_FD";     // the agent check's socket
  static constexpr const char* kStatsFdEnv = "TCPFORK_STATS_FD";     // the stats segment (memfd)
  static constexpr const char* kStatsLockFdEnv = "TCPFORK_STATS_LOCK_FD";  // the name's lock (SegmentLocator)

  struct Callbacks {
    std::function<void(pid_t)> ready;                    // the new master serves
    std::function<void(const std::string& why)> failed;  // it never did, or died since
  };

  BinaryUpgrade(event_base* base, Callbacks callbacks);
  ~BinaryUpgrade();
  BinaryUpgrade(const BinaryUpgrade&) = delete;
  BinaryUpgrade& operator=(const BinaryUpgrade&) = delete;

  // Starts the new master. `request` carries its argv, the inherited fds and
  // handover environment; the readiness pipe is added here. Throws
  // std::system_error when it cannot be started at all. A new master that
  // has not said READY within `timeout` is killed and counts as failed.
  void start(SpawnRequest request, std::chrono::milliseconds timeout);
  // Whether it is starting or serves is the Lifecycle's to say (it hears
  // both callbacks); this is its process.
  bool active() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // From the master's reap loop: true when `pid` was the new master.
  bool onChildExit(pid_t pid, int status);
  // Kills a new master that is still starting and reports the upgrade failed.
  void abort(const std::string& why) {
    if (active() && !ready_) fail(why);
  }

 private:
  static void onReadable(evutil_socket_t fd, short what, void* self);
  static void onTimeout(evutil_socket_t fd, short what, void* self);
  void fail(const std::string& why);

  event_base* base_;
  Callbacks callbacks_;
  pid_t pid_ = 0;
  pid_t killed_ = 0;  // a failed new master we killed, not reaped yet
  bool ready_ = false;  // it said READY: no timeout, and no second ready()
  UniqueFd pipe_;
  EventPtr pipeEvent_;
  EventPtr timer_;
  std::chrono::milliseconds timeout_{0};
  std::string message_;
};

}  // namespace tcpfork
