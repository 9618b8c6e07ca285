#pragma once
// The Supervisor's table: one row per worker process, or per index waiting to
// be started again, each in one state. A row's state changes only through
// transition(), along the edges listed below and no others; edgeExists() is
// the same list, and test/process_table_test.cc holds it to this one, pair
// by pair. The usual life:
//
//            spawned               its slot says serving           not wanted
//   new -----------------> starting ---------------------> serving ------------> draining
//    |                       ^
//    | spawn failed     due  |
//    v                       |
//   backoff, fatal ----------+
//
// Every edge:
//
//   new, backoff, fatal -- spawned (new: a row just made for a wanted index;
//                          backoff, fatal: once due) --> starting
//   new, backoff, fatal -- spawn failed (no free slot, fork or exec) --> backoff
//   starting -- its slot says serving --> serving
//
//   A worker of a wanted row exits (crashed, or killed as hung); only
//   reconcile() spawns, so an exit only sets when the index may start again:
//   starting, serving, hung -- due at once (after a stable uptime of 10 s, or
//                              the first short-lived exit), or after a
//                              growing delay (a crash loop) --> backoff
//   starting, serving -- exited with the fatal code --> fatal (never a hung
//                        one: its status is the master's own SIGKILL)
//   starting, serving -- retired itself (kExitRetiredItself: its handler
//                        module stopped it): due at once, no crash; after the
//                        fifth within 10 s, and while each successor retires
//                        within 10 s of its start, a growing delay --> backoff
//
//   starting, serving -- heartbeat stalled for worker_timeout, or (serving
//                        only) no accept while connections wait and its loop
//                        runs: SIGKILL --> hung
//   serving -- past max_rss_hard: SIGKILL --> killed
//   serving -- past a recycling limit (max_requests, max_rss, max_lifetime):
//              marked recycling, no longer the row of its index, so a
//              successor starts on the same sockets; once the successor
//              serves it is not wanted, and drains as below (QUIT)
//   starting, serving -- not wanted (reload done, TTOU, stop): QUIT, USR2
//                        or TERM --> draining
//   draining -- fast stop: TERM, an earlier deadline --> draining
//   draining -- drain deadline passed, or its heartbeat stalled: SIGKILL --> killed
//   (a stalled heartbeat, or accepting stalled, is first answered with the
//   stack dump signal; the SIGKILL follows hang_dump_grace later, unless it
//   beats or accepts again meanwhile)
//   starting, hung -- its reload abandoned before it served, or not wanted
//                     while hung: SIGKILL --> killed
//   backoff, fatal -- not wanted --> gone
//   starting, serving, draining, killed, hung -- exited while leaving or not
//                     wanted, or during a reload as one of the previous
//                     generation --> gone
//
// gone: the row is removed by the call that made it gone; no edge leaves it,
// and none enters new.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "master/config/config.h"
#include "stats/layout.h"

namespace tcpfork {

using ProcessClock = std::chrono::steady_clock;

// One generation of workers: how many, on which addresses, as whom, and
// what each runs with (the contract); derived from the Config.
struct GenerationSettings {
  std::string binary;
  std::vector<std::string> listen;
  unsigned count = 1;
  Millis workerTimeout{0};
  Millis hangDumpGrace{0};
  RecycleLimits recycle;
  std::vector<int> cpus;  // worker i runs on cpus[i % size]; empty: anywhere
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  WorkerSettings worker;
};

struct Generation {
  uint64_t number = 0;
  std::shared_ptr<const GenerationSettings> settings;
};

// kNew: a row about to be spawned for the first time; kGone: a row about to
// be removed. Neither outlives the call that made it.
enum class ProcessState { kNew, kStarting, kServing, kDraining, kKilled, kHung, kBackoff, kFatal, kGone };

std::string_view processStateName(ProcessState state);

struct ProcessRow {
  ProcessState state = ProcessState::kNew;
  Generation generation;
  unsigned index = 0;
  pid_t pid = 0;  // 0 in backoff and fatal
  uint32_t slot = 0;
  ProcessClock::time_point startedAt;
  // backoff, fatal: when to start again; draining: when to SIGKILL.
  std::optional<ProcessClock::time_point> deadline;
  unsigned crashes = 0;     // consecutive short-lived exits of this index
  // When its last few processes retired themselves (kExitRetiredItself), at
  // most the last 10 s of them: a run of them backs off as crashes do.
  std::vector<ProcessClock::time_point> retirements;
  std::string lastFailure;  // why its last start or process failed
  // Its own draw of the recycling limits, made when it is spawned (0 and
  // none: no limit).
  uint64_t maxRequests = 0;
  std::optional<ProcessClock::time_point> retireAt;
  // Why it is being replaced, once it is past a limit (see the diagram).
  std::optional<stats::RecycleReason> recycling;
  // Its heartbeat stalled: asked for a stack dump, it is killed at this
  // time; stackDumps is its slot's count of dumps written when asked.
  std::optional<ProcessClock::time_point> killAt;
  uint64_t stackDumps = 0;
  // Past max_rss_hard: asked for its heap profile, it is killed at this time.
  std::optional<ProcessClock::time_point> rssKillAt;
  // Requests it had received and answered when last looked at, and when that
  // sum last moved: a worker whose loop is late but whose requests still
  // complete is busy, not hung (lateButBusy: said so once).
  uint64_t progress = 0;
  std::optional<ProcessClock::time_point> progressAt;
  bool lateButBusy = false;
  // checkAcceptProgress: its accept counters when last seen, since when
  // connections have waited on its sockets with none taken, and when it is
  // killed for that (after its stack dump). hangCause: why a hung row was
  // killed, when not for its heartbeat.
  uint64_t acceptProgress = 0;
  std::optional<ProcessClock::time_point> acceptStalledSince;
  std::optional<ProcessClock::time_point> acceptKillAt;
  std::string hangCause;
};

// A process of ours runs (or has not been reaped yet).
inline bool live(const ProcessRow& row) {
  using enum ProcessState;
  return row.state == kStarting || row.state == kServing || row.state == kDraining || row.state == kKilled ||
         row.state == kHung;
}

// What a row's process is doing as /metrics, /status and the status page
// show it (tcp_server_workers{state}): a starting or serving row by its
// worker's own word in `slot` (stats::shownState: "stalled" when serving
// with a heartbeat older than `staleAfterMs`); a row told to go "draining",
// a hung one "stalled", one waiting to start again "backoff" or "fatal".
std::string_view shownState(const ProcessRow& row, const stats::Slot& slot, uint64_t staleAfterMs);

struct ShownWorker {
  pid_t pid = 0;  // 0: an index waiting to start again (backoff, fatal)
  std::string_view state;  // shownState()'s
};

// Whether the list above has the edge.
bool edgeExists(ProcessState from, ProcessState to);

// The one place a row changes state. An edge the diagram lacks is a bug, not
// a worker's fault: it is logged as one (every integration test fails on that
// line) and taken anyway, so that the table keeps following the processes: a
// move refused would leave, say, a reaped worker's row live, its pid signalled
// after another process may have taken it.
void transition(ProcessRow& row, ProcessState to, std::optional<ProcessClock::time_point> deadline = std::nullopt);

}  // namespace tcpfork
