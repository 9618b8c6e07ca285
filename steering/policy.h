#pragma once
// Which workers take new connections: the steering decision, made by the
// master every tick from what it sees of each worker index (its heartbeat,
// its listeners' accept queue), and written into the reuseport program's map
// (reuseport_steering.h). Pure: no sockets, no clock.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace tcpfork::steering {

struct PolicySettings {
  uint64_t staleAfterMs = 250;
  uint32_t maxQueue = 256;
};

// One worker index as the master sees it this tick.
struct WorkerView {
  unsigned index = 0;
  // A worker of this index serves (started, not leaving), and the age of the
  // freshest heartbeat among those that do.
  bool serving = false;
  uint64_t heartbeatAgeMs = 0;
  // The deepest accept queue among the index's listeners.
  uint32_t acceptQueue = 0;
  // Its serving worker holds max_connections already: a new connection sent
  // to it would be closed at once (connections_rejected).
  bool full = false;
  // Every serving worker of the index says, in its slot, that it sheds by
  // queueing delay (overload.target): a new connection's requests would wait
  // as long as those it already has, or be answered busy.
  bool overloaded = false;
};

enum class Exclusion : uint8_t { kNone, kNotServing, kStale, kQueue, kFull, kOverloaded };
inline constexpr Exclusion kCountedExclusions[] = {Exclusion::kStale, Exclusion::kQueue, Exclusion::kFull,
                                                   Exclusion::kOverloaded};
// "stale", "queue", "full", "overloaded", "not_serving"
std::string_view exclusionName(Exclusion why);

struct Decision {
  std::vector<unsigned> eligible;  // ascending
  std::vector<Exclusion> why;      // per view, in the order given
  bool everyoneOut = false;        // none qualified: eligible holds them all
};

// `previous` is the last decision's `why` for the same views (or empty):
// a worker out for its queue comes back only once the queue is down to half
// of max_queue, so that it does not flap at the limit.
// An overloaded worker is out only while another one that qualifies is not
// overloaded: with all of them overloaded, moving new connections between
// them would only move the wait. It needs no hysteresis of its own: the
// worker's flag already holds for at least overload.interval.
Decision decide(const std::vector<WorkerView>& views, const PolicySettings& settings,
                const std::vector<Exclusion>& previous);

}  // namespace tcpfork::steering
