#pragma once
// Master: the `tcpfork` daemon's one event loop. Built in main(); owns the
// pidfile, the stats segment, the listeners and the Supervisor. Signals are
// loop events (evsignal); the handlers only run between loop iterations:
//   HUP reload   TERM/INT fast stop   QUIT graceful stop   USR1 reopen logs
//   TTIN/TTOU one worker more/fewer   TRAP forwarded to workers (profiling)
//   USR2 binary upgrade               CHLD reap and restart
// What each signal leads to, and when the master is ready, reloads, hands
// over to a new master or stops, is the Lifecycle's to say (lifecycle.h).

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_ptr.h"
#include "master/agent/agent_port.h"
#include "master/admin/admin_http.h"
#include "master/profiling/auto_profiler.h"
#include "master/binary_upgrade.h"
#include "master/config/config.h"
#include "master/supervise/connection_steering.h"
#include "master/identity.h"
#include "master/lifecycle.h"
#include "master/supervise/listeners.h"
#include "master/admin/metrics_collector.h"
#include "master/periodic.h"
#include "master/pidfile.h"
#include "master/profiling/pprof_endpoint.h"
#include "master/profiling/profile_dir.h"
#include "master/supervise/supervisor.h"
#include "master/systemd_notify.h"
#include "stats/segment.h"

namespace tcpfork {

// How this master came to be: the readiness pipe of `tcpfork -d` or of the
// master it upgrades, and what that master handed over.
struct StartContext {
  // Gets "READY\n" once every worker serves (or why not), then is closed.
  int readyFd = -1;
  // Set when started by a binary upgrade: the old master's pid, its admin
  // HTTP socket, its stats segment and its lock on the instance name (the
  // listeners come through the environment, see Listeners).
  pid_t upgradeFrom = 0;
  int adminFd = -1;
  int statsFd = -1;
  int statsLockFd = -1;
  int agentFd = -1;  // the agent check's socket, when agent.listen is set
};

class Master {
 public:
  Master(Config config, std::string configPath, ConfigOverrides overrides, StartContext start);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Serves until told to stop; returns the exit status.
  int run();

 private:
  static void onSignal(evutil_socket_t signal, short what, void* self);
  static void onTick(evutil_socket_t fd, short what, void* self);
  static void onQuit(evutil_socket_t fd, short what, void* self);
  void addPeriodicJobs();
  static void onAutoProfile(evutil_socket_t fd, short what, void* self);
  void armAutoProfiler();
  void logFinishedProfiles();
  void reap();
  // Tells the Lifecycle, then does what it says (act); returns that.
  Lifecycle::Actions handle(Lifecycle::EventKind kind);
  void act(Lifecycle::Actions actions);
  // Reads the config and starts the next generation; false when refused.
  bool readConfigAndSwitch();
  // Starts the new master of a binary upgrade; false when it cannot.
  bool startUpgrade();
  void sayWhyNoUpgrade() const;
  void onUpgradeReady(pid_t pid);
  void onUpgradeFailed(const std::string& why);
  void reclaimService();
  // steering.stale_after into the segment's header, where every reader of
  // worker states finds it (Header::staleAfterMs).
  void publishStaleAfter();
  void reclaimPidfile();
  void becomeReady();
  void stopWorkers();
  void publishStatus();
  // "N of M workers serving", and how many of the rest are stalled: /healthz and systemd's STATUS.
  std::string servingText() const;
  std::vector<std::string> upgradeArgv() const;
  // What the agent check answers from (master_agent.cc).
  AgentView agentView() const;
  void reopenLogs();
  GenerationSettings settingsFrom(const Config& config) const;

  Config config_;
  std::string configPath_;
  ConfigOverrides overrides_;
  EventBasePtr base_;  // first: destroyed last
  StartContext start_;
  Identity identity_;    // resolved once: user and group change only on restart
  std::string selfExe_;  // this binary's path at start: what USR2 runs again
  // Before anything shared: a second master stops here. A master started by
  // a binary upgrade takes it only once it serves. Where it belongs is
  // config_.effectivePidFile(); where it is now (there, or .oldbin) is its
  // own path().
  std::optional<Pidfile> pidfile_;
  stats::StatsSegment segment_;
  Lifecycle lifecycle_;  // before the Supervisor, which asks it
  Listeners listeners_;
  Supervisor supervisor_;
  ConnectionSteering steering_;
  MetricsCollector collector_;
  ProfileDir profileDir_;
  AutoProfiler autoProfiler_;
  EventPtr autoProfileTimer_;
  std::unique_ptr<AdminHttp> admin_;
  std::unique_ptr<PprofEndpoint> pprof_;
  std::unique_ptr<AgentPort> agent_;  // agent.listen; null when off
  std::map<pid_t, uint64_t> profilesReported_;  // per worker pid, profiles already logged
  std::vector<EventPtr> signalEvents_;
  EventPtr tick_;
  // SIGQUIT, acted on after every other signal of its batch (see onSignal).
  EventPtr quit_;
  // Pending from a QUIT until agent.drain_delay has passed: the agent says
  // drain while the workers still accept; then the graceful stop begins.
  EventPtr quitDelay_;
  Periodic periodic_;
  BinaryUpgrade upgrade_;
  SystemdNotify notify_;
  uint64_t lastRequests_ = 0;  // for the status line's rate
};

}  // namespace tcpfork
