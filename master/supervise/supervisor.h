#pragma once
// Supervisor: the master's table of worker processes. Owned by the Master and
// driven only from its loop. What should run is one desired set, N workers
// (indices 0..N-1) of the current generation G, plus during a reload the
// previous generation, which keeps serving until every worker of G serves.
// reconcile() brings the table to that set (as gunicorn's manage_workers and
// nginx's ngx_processes[] do): it starts what is missing, the only code that
// starts a process, and tells what is no longer wanted to drain. It runs at
// every tick, which also kills what hangs, and right after every change to
// the set or the table, so that nothing waits for a tick: an exit (a crash
// only decides when its index may start again), a reload, TTIN or TTOU, a
// stop.
//
// One row per worker process, or per index waiting to be started again; the
// rows and the states they move through are drawn in process_table.h.
//
// A worker's index says which listeners it serves; its stats slot is where
// it publishes (an old and a new generation's worker for one index each have
// their own slot while both run).

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "master/config/config.h"
#include "master/lifecycle.h"
#include "master/supervise/listeners.h"
#include "master/supervise/process_table.h"
#include "stats/segment.h"
#include "stats/slot_allocator.h"

namespace tcpfork {

class Supervisor {
 public:
  using Clock = ProcessClock;

  // During a reload two generations run at once, each of up to max_workers
  // processes with a stats slot of its own.
  static constexpr uint32_t kSlotsPerWorker = 2;

  // `lifecycle` says whether, and how, the master stops. The segment's size
  // says max_workers (kSlotsPerWorker slots each).
  Supervisor(stats::StatsSegment& segment, Listeners& listeners, const Lifecycle& lifecycle);

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
  // Once the Lifecycle stops: every worker told to go, SIGQUIT when it stops
  // gracefully, SIGTERM (those already draining too) when fast; nothing is
  // started again.
  void stopAll();
  void killAll();
  // Sends `signal` to the workers that serve or drain; returns how many.
  unsigned signalReady(int signal) const;

  bool allServing() const { return servingCount() == count() && count() > 0; }
  unsigned servingCount() const;
  // Of those, the ones shown as serving (shownWorkers): a serving worker
  // whose heartbeat is older than steering.stale_after is "stalled", as
  // /metrics, /status and tcpfork-stats say, and /healthz and systemd's
  // STATUS count it so too.
  unsigned freshCount() const;
  // The table as /metrics and /status show it (tcp_server_workers{state}):
  // every live process of either generation, and the current generation's
  // indices waiting to start again. A serving worker whose heartbeat is older
  // than the header's staleAfterMs (steering.stale_after) is stalled.
  std::vector<ShownWorker> shownWorkers() const;
  bool noneRunning() const;
  unsigned count() const { return current_.settings->count; }
  // The most workers a generation may have: fixed by the segment, which a
  // master started by a binary upgrade inherits.
  unsigned maxWorkers() const { return segment_.slotCount() / kSlotsPerWorker; }
  uint64_t generation() const { return current_.number; }
  // Counted in the segment's header (stats/layout.h), where they outlive this
  // master across binary upgrades.
  uint64_t restarts() const;
  uint64_t reloads() const;
  // Reloads that left the running generation serving: refused before a new
  // generation started (the Master tells, countFailedReload), or abandoned
  // because it did not serve.
  uint64_t reloadsFailed() const { return reloadsFailed_; }
  void countFailedReload() { ++reloadsFailed_; }
  std::vector<pid_t> pids() const;
  struct WorkerRef {
    pid_t pid;
    uint32_t slot;
  };
  // The current process serving worker `index`, if it serves.
  std::optional<WorkerRef> servingWorker(unsigned index) const;
  // The stats slots of every process that serves listener index `index`, of
  // either generation during a reload (steering reads their heartbeats).
  std::vector<uint32_t> servingSlots(unsigned index) const;

 private:
  using State = ProcessState;
  using Row = ProcessRow;

  // Starts what is missing (the only caller of spawn), drains what is no
  // longer wanted, finishes or abandons a reload.
  void reconcile();
  bool wanted(const Row& row) const;
  // Whether the worker's own slot says it serves (the pid checked too).
  bool slotSaysServing(const Row& row) const;
  // The current row of `index` if it is kServing and its slot agrees (or,
  // while its successor starts, the row being recycled).
  const Row* servingRow(unsigned index) const;
  // The row that stands for index `index` of the current generation, if any.
  Row* currentRow(unsigned index);
  const Row* currentRow(unsigned index) const;
  void spawn(Row& row);
  void startMissing();
  void retire(Row& row);
  // A leaving worker drains with SIGQUIT when its sockets stay open in the
  // current generation, with SIGUSR2 when they are being dropped.
  int leavingSignal(const Row& row) const;
  // Limits (supervisor_limits.cc). A heartbeat silent for worker_timeout:
  // the stack dump signal, then SIGKILL hang_dump_grace later. Recycling:
  // each process draws its own limits when spawned; past one, it is marked
  // recycling (or, past max_rss_hard, killed).
  void checkHeartbeat(Row& row, Clock::time_point now);
  // A serving worker whose loop runs (fresh heartbeat) but that takes no
  // connection from its sockets for worker_timeout while some wait there:
  // the same stack dump, then SIGKILL, logged as such.
  void checkAcceptProgress(Row& row, Clock::time_point now);
  void drawLimits(Row& row);
  void checkLimits(Row& row, Clock::time_point now);
  // The current generation's row of `index` being recycled, if any.
  const Row* recyclingRow(unsigned index) const;
  // A row of the same generation and index as `row`, not recycling, serves.
  bool successorServes(const Row& row) const;
  // After its process exited: when the index may start again, as a backoff
  // due now (the first exit in a row), later (a crash loop), or as fatal.
  // `reason`: what the worker wrote in its slot before exiting (may be empty).
  void afterCrash(Row& row, int status, const std::string& reason);
  // It exited with kExitRetiredItself: replaced at once, unless it is one
  // of a run (see process_table.h).
  void afterRetiredItself(Row& row, const std::string& reason);
  void finishSwitch();
  // The new generation goes; `why` it failed starts the log line.
  void abandonSwitch(const std::string& why);
  // Why each index of the current generation does not serve, for a log line.
  std::string notServingReasons() const;
  void removeGone();

  stats::StatsSegment& segment_;
  stats::SlotAllocator slots_;
  Listeners& listeners_;
  const Lifecycle& lifecycle_;
  Generation current_;
  // During a reload: the generation still serving, and until when the new
  // one may take to serve.
  std::optional<Generation> previous_;
  Clock::time_point switchDeadline_;
  std::vector<Row> rows_;
  uint64_t reloadsFailed_ = 0;
  std::mt19937_64 jitter_{std::random_device{}()};  // draws each worker's limits
};

// "exit status 2", "killed by SIGKILL".
std::string describeExit(int status);
// "0.1s", "2.0s": the delays and timeouts in the Supervisor's log lines.
std::string describeSeconds(Millis ms);

}  // namespace tcpfork
