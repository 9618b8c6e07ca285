#pragma once
// Supervisor: the master's table of worker processes. Owned by the Master and
// driven only from its loop. What should run is one desired set, N workers
// (indices 0..N-1) of the current generation G, plus during a reload the
// previous generation, which keeps serving until every worker of G serves.
// Each tick reconciles the table against that set (as gunicorn's
// manage_workers and nginx's ngx_processes[] do): it starts what is missing,
// tells what is no longer wanted to drain, and kills what hangs.
//
// One row per worker process, or per index waiting to be started again. A
// row's state changes only in transition(), along these edges:
//
//                       spawned          its slot says serving
//   (wanted, no row) ------------> starting ----------------> serving
//        |                          ^  |  |                    |  |
//        | spawn failed       due   |  |  +-- exited: once ----+  |
//        v                          |  |      restarts at once |  |
//     backoff <---------------------+  |                       |  |
//     fatal   <-- exited: crash loop --+-----------------------+  |
//        ^        or the fatal code    |                          |
//        |                             +-- heartbeat stalled -----+
//        +------ exited ------ hung <--+   (SIGKILL)
//
//   starting, serving -- not wanted (reload done, TTOU, stop): QUIT, USR2
//                        or TERM --> draining
//   starting -- its reload abandoned before it served: SIGKILL --> killed
//   draining -- drain deadline passed, or its heartbeat stalled --> killed
//   draining, killed, or any row no longer wanted -- exited --> removed
//
// A worker's index says which listeners it serves; its stats slot is where
// it publishes (an old and a new generation's worker for one index each have
// their own slot while both run).

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "master/config.h"
#include "master/listeners.h"
#include "stats/segment.h"
#include "stats/slot_allocator.h"

namespace tcpfork {

// One generation of workers: how many, on which addresses, as whom, and
// what each runs with (the contract); derived from the Config.
struct GenerationSettings {
  std::string binary;
  std::vector<std::string> listen;
  unsigned count = 1;
  Millis workerTimeout{0};
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  WorkerSettings worker;
};

class Supervisor {
 public:
  using Clock = std::chrono::steady_clock;

  Supervisor(stats::StatsSegment& segment, Listeners& listeners, unsigned maxWorkers);

  // Generation 1 (or the next of a predecessor's, after a binary upgrade).
  // Throws when a listener cannot be bound.
  void start(const GenerationSettings& settings);
  // Starts the next generation; the current one keeps serving until every new
  // worker serves, and keeps serving for good if they do not within
  // worker_timeout. Returns false (with `why`) when it cannot start.
  bool reload(const GenerationSettings& settings, std::string& why);
  // One worker more (+1) or fewer (-1).
  void scale(int delta);
  void onChildExit(pid_t pid, int status);
  // Periodic: heartbeats, due restarts, reload progress, drain deadlines.
  void tick();
  // Frees the slots of a dead master that shared the segment; returns how many.
  unsigned reclaimOrphanSlots() { return slots_.reclaimOrphans(); }
  // Writes our generation into the segment header (again, after a new
  // master from a failed binary upgrade wrote its own).
  void storeGeneration();
  // A reload is waiting for its new generation to serve.
  bool switching() const { return previous_.has_value(); }
  // Stops everything: SIGQUIT (graceful) or SIGTERM; no more restarts.
  void stopAll(bool graceful);
  void killAll();
  // Sends `signal` to the workers that serve or drain; returns how many.
  unsigned signalReady(int signal) const;

  bool allServing() const { return servingCount() == count() && count() > 0; }
  unsigned servingCount() const;
  // Indices waiting to be restarted after crashes (backoff), and after the
  // worker's fatal exit code (fatal).
  unsigned backingOff() const;
  unsigned fatal() const;
  bool noneRunning() const;
  unsigned count() const { return current_.settings->count; }
  uint64_t generation() const { return current_.number; }
  uint64_t restarts() const { return restarts_; }
  uint64_t reloads() const { return reloads_; }
  std::vector<pid_t> pids() const;
  struct WorkerRef {
    pid_t pid;
    uint32_t slot;
  };
  // The current process serving worker `index`, if it serves.
  std::optional<WorkerRef> servingWorker(unsigned index) const;

 private:
  // kNew: a row about to be spawned for the first time; kGone: a row about
  // to be removed. Neither outlives the call that made it.
  enum class State { kNew, kStarting, kServing, kDraining, kKilled, kHung, kBackoff, kFatal, kGone };
  static std::string_view stateName(State state);
  static bool edgeExists(State from, State to);

  struct Generation {
    uint64_t number = 0;
    std::shared_ptr<const GenerationSettings> settings;
  };
  struct Row {
    State state = State::kNew;
    Generation generation;
    unsigned index = 0;
    pid_t pid = 0;  // 0 in backoff and fatal
    uint32_t slot = 0;
    Clock::time_point startedAt;
    // backoff, fatal: when to start again; draining, killed: when to SIGKILL.
    std::optional<Clock::time_point> deadline;
    unsigned crashes = 0;     // consecutive short-lived exits of this index
    std::string lastFailure;  // why its last start or process failed
  };

  // The one place a row changes state; refuses an edge the diagram lacks.
  void transition(Row& row, State to, std::optional<Clock::time_point> deadline = std::nullopt);
  // Starts what is missing, drains what is no longer wanted, finishes or
  // abandons a reload.
  void reconcile();
  bool wanted(const Row& row) const;
  // A process of ours runs (or has not been reaped yet).
  static bool live(const Row& row) {
    return row.state == State::kStarting || row.state == State::kServing || row.state == State::kDraining ||
           row.state == State::kKilled || row.state == State::kHung;
  }
  bool serving(const Row& row) const;
  // The row that stands for index `index` of the current generation, if any.
  Row* currentRow(unsigned index);
  const Row* currentRow(unsigned index) const;
  void spawn(Row& row);
  void startMissing();
  void retire(Row& row);
  // A leaving worker drains with SIGQUIT when its sockets stay open in the
  // current generation, with SIGUSR2 when they are being dropped.
  int leavingSignal(const Row& row) const;
  void checkHeartbeat(Row& row);
  // After its process exited: restart at once, back off, or wait as fatal.
  void afterCrash(Row& row, int status);
  void finishSwitch();
  void abandonSwitch();
  // Why each index of the current generation does not serve, for a log line.
  std::string notServingReasons() const;
  void removeGone();

  stats::StatsSegment& segment_;
  stats::SlotAllocator slots_;
  Listeners& listeners_;
  unsigned maxWorkers_;
  Generation current_;
  // During a reload: the generation still serving, and until when the new
  // one may take to serve.
  std::optional<Generation> previous_;
  Clock::time_point switchDeadline_;
  std::vector<Row> rows_;
  bool stopping_ = false;
  bool fastStop_ = false;
  uint64_t restarts_ = 0;
  uint64_t reloads_ = 0;
};

// "exit status 2", "killed by SIGKILL".
std::string describeExit(int status);

}  // namespace tcpfork
