#pragma once
// Snapshot: a consistent copy of the stats segment, and the sums everything
// downstream needs (master exporter, /status, tcpfork-stats). Reading never
// writes the segment. foldIntoRetired() is the one master-side write: it moves
// an exited worker's counts into the header's retired totals.

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "stats/layout.h"
#include "stats/segment.h"

namespace tcpfork::stats {

struct TotalsView {
  std::array<uint64_t, kCounterCount> counters{};
  std::array<uint64_t, protocol::kDecodeErrorCount> protocolErrors{};
  HistogramView<kRequestBoundsNs> requestDuration;
  HistogramView<kHandlerBoundsNs> handlerDuration;
  HistogramView<kQueueDelayBoundsNs> queueDelay;

  TotalsView& operator+=(const TotalsView& other);
  uint64_t counter(Counter c) const { return counters[index(c)]; }
  // What was counted since `before` (tcpfork-stats' interval view).
  TotalsView since(const TotalsView& before) const;
  uint64_t protocolErrorTotal() const;
};

struct HandlerCounterView {
  std::string name;
  std::string help;
  uint64_t value = 0;
};

// Sums the counters of the same name (workers of different generations may
// run different modules, with different counters).
std::map<std::string, HandlerCounterView> sumByName(const std::vector<HandlerCounterView>& counters);

struct WorkerView {
  uint32_t slot = 0;
  pid_t pid = 0;
  WorkerState state = WorkerState::kEmpty;
  uint64_t generation = 0;
  uint64_t index = 0;
  uint64_t startedAtUnixMs = 0;
  uint64_t heartbeatMonotonicMs = 0;
  // How long the loop had gone without a beat when the snapshot was taken.
  uint64_t heartbeatAgeMs = 0;
  uint64_t connectionsCurrent = 0;
  bool profiling = false;
  uint64_t profilesWritten = 0;
  bool overloaded = false;
  TotalsView totals;
  HistogramView<kLoopLagBoundsNs> loopLag;
  std::vector<HandlerCounterView> handlerCounters;
};

// The state readers show for a worker (tcp_server_workers{state}, /status,
// tcpfork-stats): its own word, except that a serving worker whose heartbeat
// is older than `staleAfterMs` is "stalled" (steering takes it out of
// rotation at the same age). 0: never stalled.
inline constexpr std::string_view kStalledState = "stalled";
std::string_view shownState(WorkerState state, uint64_t heartbeatAgeMs, uint64_t staleAfterMs);

struct Snapshot {
  pid_t masterPid = 0;
  uint64_t generation = 0;
  uint64_t staleAfterMs = 0;  // Header::staleAfterMs
  uint64_t workerRestarts = 0;
  uint64_t reloads = 0;
  uint64_t autoProfiles = 0;
  std::array<uint64_t, kRecycleReasons.size()> recycles{};  // by RecycleReason
  TotalsView retired;
  std::vector<HandlerCounterView> retiredHandlerCounters;
  std::vector<WorkerView> workers;  // occupied slots only

  // Retired plus every live worker: what the exported counters show.
  TotalsView total() const;
  // The same for module counters, by name.
  std::map<std::string, HandlerCounterView> handlerTotals() const;
  uint64_t connected() const;
};

TotalsView readTotals(const Totals& totals);
Snapshot takeSnapshot(const StatsSegment& segment);

// Master only, under HeaderLock, once `slot`'s worker has exited: adds its
// counts to the retired totals and empties (frees) the slot. Returns the
// names of module counters that found no room in the retired table (their
// counts are lost; the caller logs them).
std::vector<std::string> foldIntoRetired(Header& header, Slot& slot);

}  // namespace tcpfork::stats
