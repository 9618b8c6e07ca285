#pragma once
// The agent check's answer: what this master tells a load balancer (HAProxy's
// `agent-check`) about taking new connections, from what it knows of its
// workers and its own life. Pure: the Master gathers an AgentView on its loop,
// AgentPort writes the line.
//
//   up ready N%    N: the share of configured workers that may take new
//                  connections now (serving, heartbeat fresh, not shedding
//                  load), at least 1% while any serves
//   drain          a graceful stop (QUIT) or a binary upgrade is under way:
//                  the balancer sends nothing new while owed acks are flushed
//   down #reason   no worker can serve, or a fast stop
//
// No `maxconn:`: the balancer's queue would hold connections a worker could
// take (each takes up to max_connections, and a full one is steered around),
// and a connect storm would then fail at the balancer's queue timeout.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace tcpfork {

struct AgentView {
  unsigned configured = 0;  // workers the master keeps running
  unsigned serving = 0;     // serving with a fresh heartbeat
  unsigned available = 0;   // of those, not shedding load (overloaded)
  unsigned stalled = 0;     // serving, but the heartbeat is older than steering.stale_after
  bool starting = false;    // the master has not served yet
  bool draining = false;    // graceful stop, or a binary upgrade under way on this host
  bool stoppingFast = false;
};

enum class AgentAnswerKind : unsigned { kUp, kDrain, kDown };
inline constexpr size_t kAgentAnswerKinds = 3;
// "up", "drain", "down": the label of agent_checks_total{answer}.
std::string_view agentAnswerName(AgentAnswerKind kind);

struct AgentAnswer {
  AgentAnswerKind kind = AgentAnswerKind::kDown;
  std::string line;  // what the balancer reads, "\n" included
};

AgentAnswer agentAnswer(const AgentView& view);

// Answers given, by kind (AgentAnswerKind's order).
using AgentCounts = std::array<uint64_t, kAgentAnswerKinds>;

}  // namespace tcpfork
