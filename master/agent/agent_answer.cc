#include "master/agent/agent_answer.h"

#include <fmt/format.h>

#include <algorithm>

namespace tcpfork {

std::string_view agentAnswerName(AgentAnswerKind kind) {
  switch (kind) {
    case AgentAnswerKind::kUp: return "up";
    case AgentAnswerKind::kDrain: return "drain";
    case AgentAnswerKind::kDown: return "down";
  }
  return "down";
}

AgentAnswer agentAnswer(const AgentView& v) {
  using enum AgentAnswerKind;
  // A fast stop cuts connections at once: nothing to drain.
  if (v.stoppingFast) return {kDown, "down #fast stop\n"};
  if (v.draining) return {kDrain, "drain\n"};
  if (v.serving == 0) {
    if (v.stalled > 0) return {kDown, fmt::format("down #{} of {} workers stalled\n", v.stalled, v.configured)};
    if (v.starting) return {kDown, "down #starting\n"};
    return {kDown, fmt::format("down #0 of {} workers serving\n", v.configured)};
  }
  // HAProxy reads "0%" as weight 0, which is drain; a host with a worker that
  // still serves (if only to shed) keeps a share.
  unsigned configured = std::max(v.configured, v.serving);
  unsigned percent = std::clamp(v.available * 100 / configured, 1u, 100u);
  return {kUp, fmt::format("up ready {}%\n", percent)};
}

}  // namespace tcpfork
