#include "master/supervise/process_table.h"

#include <spdlog/spdlog.h>

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
    case kHung: next = bit(kBackoff) | bit(kFatal) | bit(kKilled) | bit(kGone); break;
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
