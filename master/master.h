#pragma once
// Master: the `tcpfork` daemon's one event loop. Built in main(); owns the
// pidfile, the stats segment, the listeners and the Supervisor. Signals are
// loop events (evsignal); the handlers only run between loop iterations:
//   HUP reload   TERM/INT fast stop   QUIT graceful stop   USR1 reopen logs
//   TTIN/TTOU one worker more/fewer   TRAP forwarded to workers (profiling)
//   CHLD reap and restart

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/event_ptr.h"
#include "master/admin_http.h"
#include "master/auto_profiler.h"
#include "master/config.h"
#include "master/listeners.h"
#include "master/metrics_collector.h"
#include "master/pidfile.h"
#include "master/pprof_endpoint.h"
#include "master/profile_dir.h"
#include "master/supervisor.h"
#include "stats/segment.h"

namespace tcpfork {

class Master {
 public:
  // `readyFd` (or -1) gets "READY\n" once every worker serves, then is closed:
  // how `tcpfork -d` learns that the daemon it started is up.
  Master(Config config, std::string configPath, ConfigOverrides overrides, int readyFd);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Serves until told to stop; returns the exit status.
  int run();

 private:
  static void onSignal(evutil_socket_t signal, short what, void* self);
  static void onTick(evutil_socket_t fd, short what, void* self);
  static void onAutoProfile(evutil_socket_t fd, short what, void* self);
  void armAutoProfiler();
  void logFinishedProfiles();
  void reap();
  void reload();
  void reopenLogs();
  void beginStop(bool graceful);
  WorkerSettings settingsFrom(const Config& config) const;

  Config config_;
  std::string configPath_;
  ConfigOverrides overrides_;
  EventBasePtr base_;  // first: destroyed last
  Pidfile pidfile_;    // before anything shared: a second master stops here
  stats::StatsSegment segment_;
  Listeners listeners_;
  Supervisor supervisor_;
  MetricsCollector collector_;
  ProfileDir profileDir_;
  AutoProfiler autoProfiler_;
  EventPtr autoProfileTimer_;
  std::unique_ptr<AdminHttp> admin_;
  std::unique_ptr<PprofEndpoint> pprof_;
  std::map<pid_t, bool> profiling_;  // last seen profiling state, to log finished profiles
  std::vector<EventPtr> signalEvents_;
  EventPtr tick_;
  int readyFd_;
  bool announcedReady_ = false;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stopDeadline_;
};

// The tcpfork-worker binary installed beside this executable.
std::string workerBinaryPath();

}  // namespace tcpfork
