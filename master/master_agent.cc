// The Master's part in the agent check (master/agent/): what it knows of its
// workers and its own life, gathered for agentAnswer() at each check.
#include "master/master.h"

#include <unistd.h>

#include "stats/heartbeat.h"
#include "stats/snapshot.h"

namespace tcpfork {

AgentView Master::agentView() const {
  AgentView v;
  v.configured = supervisor_.count();
  uint64_t staleAfterMs = stats::load(segment_.header().staleAfterMs);
  for (unsigned i = 0; i < v.configured; ++i) {
    auto worker = supervisor_.servingWorker(i);
    if (!worker) continue;
    const stats::Slot& slot = segment_.slot(worker->slot);
    // The rule /metrics and /healthz apply (Supervisor::freshCount).
    if (stats::shownState(stats::WorkerState::kServing, stats::silentForMs(slot), staleAfterMs) ==
        stats::kStalledState) {
      ++v.stalled;
      continue;
    }
    ++v.serving;
    if (stats::load(slot.overloaded) == 0) ++v.available;
  }
  v.starting = lifecycle_.phase() == Lifecycle::Phase::kStarting;
  v.stoppingFast = lifecycle_.stoppingFast();
  // A binary upgrade drains the host from USR2 until the old master exits:
  // the old master says so, and the new one as long as the master it
  // replaces (its parent until it exits) runs. Both share the agent socket,
  // so the balancer hears one answer whichever of them accepts.
  bool predecessorRuns = start_.upgradeFrom && ::getppid() == start_.upgradeFrom;
  bool quitAnnounced = evtimer_pending(quitDelay_.get(), nullptr) != 0;
  v.draining = quitAnnounced || lifecycle_.phase() == Lifecycle::Phase::kStoppingGracefully ||
               lifecycle_.upgrade() != Lifecycle::Upgrade::kNone || predecessorRuns;
  return v;
}

}  // namespace tcpfork
