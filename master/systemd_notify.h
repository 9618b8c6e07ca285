#pragma once
// SystemdNotify: the master's side of the sd_notify protocol (libsystemd).
// Under a Type=notify unit it tells systemd READY=1 once every worker serves,
// RELOADING=1 ... READY=1 around a reload, STOPPING=1 on shutdown, a STATUS=
// line, and WATCHDOG=1 keep-alives from the master's loop (so a wedged loop
// gets the service restarted). Without NOTIFY_SOCKET every call is a no-op.
// Owned by the Master; used on its loop.

#include <sys/types.h>

#include <chrono>
#include <string>

namespace tcpfork {

class SystemdNotify {
 public:
  SystemdNotify();

  bool enabled() const { return enabled_; }
  // `mainPid`: a master started by a binary upgrade names itself, so that
  // systemd follows it when the old master exits (needs NotifyAccess=all).
  void ready(pid_t mainPid = 0);
  void reloading();
  void stopping();
  void status(const std::string& text);
  // Sends WATCHDOG=1 when systemd asked for it (WatchdogSec=) and half its
  // interval has passed since the last one; call it from a periodic timer.
  void watchdogTick();

 private:
  void send(const std::string& message);

  bool enabled_ = false;
  std::chrono::microseconds watchdogInterval_{0};
  std::chrono::steady_clock::time_point lastWatchdog_;
};

}  // namespace tcpfork
