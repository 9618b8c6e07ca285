#include "master/supervise/process_table.h"

#include <spdlog/spdlog.h>

#include "stats/heartbeat.h"
#include "stats/snapshot.h"

namespace tcpfork {

std::string_view processStateName(ProcessState state) {
  switch (state) {
    case ProcessState::kNew: return "new";
    case ProcessState::kStarting: return "starting";
    case ProcessState::kServing: return "serving";
    case ProcessState::kDraining: return "draining";
    case ProcessState::kKilled: return "killed";
    case ProcessState::kHung: return "hung";
    case ProcessState::kBackoff: return "backoff";
    case ProcessState::kFatal: return "fatal";
    case ProcessState::kGone: return "gone";
  }
  return "?";
}

std::string_view shownState(const ProcessRow& row, const stats::Slot& slot, uint64_t staleAfterMs) {
  using enum ProcessState;
  switch (row.state) {
    case kStarting:
    case kServing: {
      // Until the worker has written its pid and state there, it starts.
      auto state = stats::WorkerState(stats::load(slot.state));
      if (stats::load(slot.pid) != uint64_t(row.pid) || state == stats::WorkerState::kEmpty) return "starting";
      return stats::shownState(state, stats::silentForMs(slot), staleAfterMs);
    }
    case kDraining:
    case kKilled: return "draining";
    case kHung: return stats::kStalledState;
    case kBackoff: return "backoff";
    case kFatal: return "fatal";
    case kNew:
    case kGone: break;  // neither outlives the call that made it
  }
  return processStateName(row.state);
}

bool edgeExists(ProcessState from, ProcessState to) {
  auto bit = [](ProcessState s) { return 1u << unsigned(s); };
  using enum ProcessState;
  unsigned next = 0;
  switch (from) {
    case kNew: next = bit(kStarting) | bit(kBackoff); break;
    case kBackoff:
    case kFatal: next = bit(kStarting) | bit(kBackoff) | bit(kGone); break;
    case kStarting:
      next = bit(kServing) | bit(kDraining) | bit(kKilled) | bit(kHung) | bit(kBackoff) | bit(kFatal) | bit(kGone);
      break;
    case kServing: next = bit(kDraining) | bit(kKilled) | bit(kHung) | bit(kBackoff) | bit(kFatal) | bit(kGone); break;
    case kHung: next = bit(kBackoff) | bit(kKilled) | bit(kGone); break;
    case kDraining: next = bit(kDraining) | bit(kKilled) | bit(kGone); break;
    case kKilled: next = bit(kGone); break;
    case kGone: break;
  }
  return next & bit(to);
}

void transition(ProcessRow& row, ProcessState to, std::optional<ProcessClock::time_point> deadline) {
  if (!edgeExists(row.state, to)) {
    spdlog::error("supervisor: worker {} (pid {}, generation {}) moved {} -> {}, an edge the state diagram lacks",
                  row.index, row.pid, row.generation.number, processStateName(row.state), processStateName(to));
  }
  spdlog::debug("worker {} (pid {}, generation {}): {} -> {}", row.index, row.pid, row.generation.number,
                processStateName(row.state), processStateName(to));
  row.state = to;
  row.deadline = deadline;
}

}  // namespace tcpfork
