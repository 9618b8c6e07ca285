#include "master/systemd_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstring>

namespace tcpfork {

SystemdNotify::SystemdNotify() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket && *socket;
  uint64_t usec = 0;
  // 0: keep WATCHDOG_* set for a master we start on a binary upgrade.
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0) watchdogInterval_ = std::chrono::microseconds(usec);
}

void SystemdNotify::send(const std::string& message) {
  if (!enabled_) return;
  // 0: the environment stays, so the master a binary upgrade starts can notify too.
  int rc = sd_notify(0, message.c_str());
  if (rc < 0) spdlog::warn("sd_notify({}): {}", message.substr(0, message.find('\n')), std::strerror(-rc));
}

void SystemdNotify::ready(pid_t mainPid) {
  send(mainPid > 0 ? fmt::format("MAINPID={}\nREADY=1", mainPid) : "READY=1");
}

void SystemdNotify::reloading() {
  // MONOTONIC_USEC lets systemd (Type=notify-reload, 253+) match this reload.
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000));
}

void SystemdNotify::stopping() { send("STOPPING=1"); }

void SystemdNotify::status(const std::string& text) { send("STATUS=" + text); }

void SystemdNotify::watchdogTick() {
  if (!enabled_ || watchdogInterval_.count() == 0) return;
  auto now = std::chrono::steady_clock::now();
  if (now - lastWatchdog_ < watchdogInterval_ / 2) return;
  lastWatchdog_ = now;
  send("WATCHDOG=1");
}

}  // namespace tcpfork
