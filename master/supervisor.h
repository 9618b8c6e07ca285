#pragma once
// Supervisor: the master's table of worker processes. Owned by the Master and
// driven only from its loop: it spawns workers, reaps them, restarts the ones
// that die (at once, then with exponential backoff while they keep dying),
// kills the ones whose heartbeat stalls, runs reloads as generations (the new
// one must serve before the old one is told to drain) and scales up and down.
//
// Two numbers per worker: its index (which listeners it serves, 0..count-1)
// and its stats slot (where it publishes; an old and a new generation's
// worker for one index each have their own slot while both run).

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "master/config.h"
#include "master/listeners.h"
#include "stats/segment.h"

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

  // Generation 1. Throws when a listener cannot be bound.
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
  unsigned reclaimOrphanSlots();
  // Writes our generation into the segment header (again, after a new
  // master from a failed binary upgrade wrote its own).
  void storeGeneration();
  // A reload is waiting for its new generation to serve.
  bool switching() const { return switch_.has_value(); }
  // Stops everything: SIGQUIT (graceful) or SIGTERM; no more restarts.
  void stopAll(bool graceful);
  void killAll();
  // Sends `signal` to the workers that serve or drain; returns how many.
  unsigned signalReady(int signal) const;

  bool allServing() const;
  unsigned servingCount() const;
  // Indices waiting to be restarted: after crashes, and after the worker's
  // fatal exit code (kExitFatal).
  unsigned backingOff() const;
  unsigned fatal() const;
  bool noneRunning() const;
  unsigned count() const { return settings_.count; }
  uint64_t generation() const { return generation_; }
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
  struct Process {
    pid_t pid = 0;
    unsigned index = 0;
    uint32_t slot = 0;
    uint64_t generation = 0;
    Clock::time_point startedAt;
    std::optional<Clock::time_point> killAt;  // drain deadline, for retiring processes
    bool hung = false;
  };
  struct IndexState {
    std::optional<Process> process;
    unsigned crashes = 0;  // consecutive short-lived exits
    std::optional<Clock::time_point> respawnAt;
    std::string lastFailure;  // why its last start or process failed, for a failed reload's message
    bool fatal = false;       // its last process exited with kExitFatal
  };
  struct PendingSwitch {
    Clock::time_point deadline;
    GenerationSettings previousSettings;
    std::vector<IndexState> previous;  // the generation still serving
  };

  void spawn(unsigned index);
  bool serving(const Process& p) const;
  uint32_t allocateSlot();
  bool ownsSlot(uint32_t slot) const;
  // Adds one to a shared header counter (restarts, reloads), under HeaderLock.
  void countInHeader(uint64_t stats::Header::*field);
  void releaseSlot(uint32_t slot);
  void retire(Process p, int signal, Millis grace);
  unsigned freeSlots() const;
  int leavingSignal(const Process& p, unsigned keptCount, const std::vector<std::string>& from,
                    const std::vector<std::string>& kept) const;
  void checkHeartbeat(Process& p);
  void finishSwitch();
  void abandonSwitch();
  // Why each index of the current generation does not serve, for a log line.
  std::string notServingReasons() const;

  stats::StatsSegment& segment_;
  Listeners& listeners_;
  unsigned maxWorkers_;
  GenerationSettings settings_;
  uint64_t generation_ = 0;
  std::vector<IndexState> current_;
  std::vector<Process> retiring_;
  std::optional<PendingSwitch> switch_;
  bool stopping_ = false;
  uint64_t restarts_ = 0;
  uint64_t reloads_ = 0;
};

// "exit status 2", "killed by SIGKILL".
std::string describeExit(int status);

}  // namespace tcpfork
