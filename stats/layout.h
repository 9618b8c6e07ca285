#pragma once
// The shared-memory stats layout: one Header, then one Slot per worker
// process. Plain integers only (trivially copyable, no pointers), accessed
// through relaxed std::atomic_ref. Readers tolerate a slightly torn view
// across fields; no field is ever torn itself.
//
// Writers. A Slot's fields are written by its worker while the worker runs
// (its loop thread; stackDumps by its stack dump thread), and by nobody else
// then, with two exceptions written by the master:
// ownerPid, and profileRequestMs (read by the worker only when a SIGTRAP
// arrives). The master also writes a slot while no worker uses it: it stamps
// the heartbeat when it claims the slot before the spawn, and zeroes the
// slot when it folds an exited worker's counts into the retired totals
// (stats/slot_allocator.h). The Header is written by masters only, under
// HeaderLock (one master, or two during a binary upgrade).
//
// Any change to these structs changes kLayoutVersion (below): attaching checks
// magic, version and size and refuses a mismatch by name.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "protocol/frame.h"
#include "stats/fields.h"
#include "stats/histogram.h"
#include "stats/metrics.h"

namespace tcpfork::stats {

inline constexpr uint64_t kMagic = 0x544350464f524b31;  // "TCPFORK1"
// The version adds 1000 per counter beyond revision 5's 8, so a change that
// only adds counters to metrics.h, or only removes some, changes it by itself.
// One that keeps their number but moves their indices (a counter replaced,
// the enum reordered) does not, nor does a change to a histogram's buckets:
// bump the revision for those, as for any change to the structs below.
// 6: handler module counters; 7: exitReason; 8: histograms; 9: recycles; 10: staleAfterMs;
// 11: queueDelay, overloaded
inline constexpr uint32_t kLayoutRevision = 11;
inline constexpr uint32_t kLayoutVersion = kLayoutRevision + 1000 * (uint32_t(kCounterCount) - 8);

enum class WorkerState : uint64_t {
  kEmpty = 0,     // slot unused
  kStarting = 1,  // spawned, loop not running yet
  kServing = 2,   // accepting and serving
  kDraining = 3,  // graceful stop: no new connections
};

constexpr std::string_view workerStateName(WorkerState state) {
  switch (state) {
    case WorkerState::kEmpty: return "empty";
    case WorkerState::kStarting: return "starting";
    case WorkerState::kServing: return "serving";
    case WorkerState::kDraining: return "draining";
  }
  return "unknown";
}

// A counter a handler module declared (tcpfork_host_api.counter), exported
// as <namespace>_handler_<name>_total. A worker writes name and help during
// its module's init, before it publishes the count of them with a release
// store (handlerCounterCount); readers load that count with acquire first.
inline constexpr size_t kHandlerCounters = 16;           // per worker, as the ABI says
inline constexpr size_t kRetiredHandlerCounters = 256;   // distinct names in a segment's life
inline constexpr size_t kHandlerCounterNameBytes = 56;   // [a-z][a-z0-9_]{0,47}, NUL-padded
inline constexpr size_t kHandlerCounterHelpBytes = 136;  // longer help is cut

// Why `name` cannot be a module counter's, or nullptr when it can. A worker
// refuses such a declaration; a reader skips a counter that breaks the rule,
// since the workers' user can write anything into the segment.
constexpr const char* handlerCounterNameProblem(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 48 && name[0] >= 'a' && name[0] <= 'z';
  for (char c : name) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  if (!ok) return "a name is [a-z][a-z0-9_]{0,47}";
  // <namespace>_handler_completions_dropped_total and
  // <namespace>_handler_invalid_results_total are tcpfork's own.
  if (name == "completions_dropped" || name == "invalid_results") return "the name is taken by tcpfork's own counter";
  return nullptr;
}

inline constexpr size_t kExitReasonBytes = 512;

struct HandlerCounter {
  char name[kHandlerCounterNameBytes];
  char help[kHandlerCounterHelpBytes];
  uint64_t value;
};

// Everything that only grows: a worker's counts, and the retired totals of
// the workers that have exited.
struct Totals {
  uint64_t counters[kCounterCount];
  uint64_t protocolErrors[protocol::kDecodeErrorCount];
  Histogram<kRequestBoundsNs> requestDuration;
  Histogram<kHandlerBoundsNs> handlerDuration;
  Histogram<kQueueDelayBoundsNs> queueDelay;
};

struct alignas(64) Slot {
  uint64_t pid;
  uint64_t state;          // WorkerState
  uint64_t generation;
  uint64_t workerIndex;    // which listeners (0..workers-1) it serves
  uint64_t startedAtUnixMs;
  uint64_t heartbeatMonotonicMs;  // CLOCK_MONOTONIC, advanced by the worker loop
  uint64_t connectionsCurrent;
  uint64_t profiling;      // 1 while its CPU profiler runs
  // Complete profile files written: the master reports each one, however
  // fast SIGTRAPs toggle the profiler between two of its looks at `profiling`.
  uint64_t profilesWritten;
  // The master that allocated this slot (0 = free). Two masters share the
  // segment during a binary upgrade; each allocates only free slots.
  uint64_t ownerPid;
  // 1 while the worker sheds by queueing delay (overload.target), else 0.
  uint64_t overloaded;
  // This process's loop only: it is not folded into the retired totals.
  Histogram<kLoopLagBoundsNs> loopLag;
  alignas(64) Totals totals;
  uint64_t handlerCounterCount;
  HandlerCounter handlerCounters[kHandlerCounters];
  // Stack dumps this worker has written to its log (its dump thread counts
  // them), so the master can tell a hung worker that answered from one too
  // far gone to (stopped).
  uint64_t stackDumps;
  // Why the worker is about to exit with kExitFatal (NUL-terminated, cut to
  // fit), for the master's log and a failed reload's reasons: a handler
  // module's init message, for one.
  char exitReason[kExitReasonBytes];
  // Written by the master only: a profile length (ms) for the next SIGTRAP,
  // for /debug/pprof/profile?seconds=N. 0 = the configured duration.
  alignas(64) uint64_t profileRequestMs;
};

struct alignas(64) Header {
  uint64_t magic;
  uint32_t layoutVersion;
  uint32_t slotCount;
  uint64_t segmentBytes;
  uint64_t masterPid;
  uint64_t generation;
  uint64_t workerRestarts;
  uint64_t reloads;
  // Odd while the master folds an exited worker into `retired`; readers
  // outside the master retry until they see one even value on both sides.
  uint64_t foldSequence;
  uint64_t autoProfiles;  // profiles started by the master's auto-profiler
  // Workers the master replaced for a limit, by reason (kRecycleReasons).
  uint64_t recycledRequests;
  uint64_t recycledRss;
  uint64_t recycledRssHard;
  uint64_t recycledLifetime;
  // Pid of the master writing the header now (0 = none): see HeaderLock.
  uint64_t writerPid;
  // The master's steering.stale_after: a serving worker whose heartbeat is
  // older is shown as stalled (stats/snapshot.h, shownState), by the master
  // and by tcpfork-stats alike. 0: never.
  uint64_t staleAfterMs;
  // Folded in by the master when a worker exits, before its slot is reused,
  // so that exported counters never go down.
  alignas(64) Totals retired;
  // The module counters of exited workers, by name (a fold adds to the entry
  // of the same name, or takes the next free one).
  uint64_t retiredHandlerCount;
  HandlerCounter retiredHandler[kRetiredHandlerCounters];
};

// Why the master replaced a serving worker (worker_recycles_total{reason}):
// a graceful limit (a successor serves first) or max_rss_hard (killed).
enum class RecycleReason : uint8_t { kRequests, kRss, kRssHard, kLifetime };
struct RecycleReasonInfo {
  RecycleReason id;
  std::string_view name;  // the metric's reason label
  uint64_t Header::*field;
};
inline constexpr std::array<RecycleReasonInfo, 4> kRecycleReasons = {{
    {RecycleReason::kRequests, "requests", &Header::recycledRequests},
    {RecycleReason::kRss, "rss", &Header::recycledRss},
    {RecycleReason::kRssHard, "rss_hard", &Header::recycledRssHard},
    {RecycleReason::kLifetime, "lifetime", &Header::recycledLifetime},
}};
constexpr const RecycleReasonInfo& recycleReason(RecycleReason r) { return kRecycleReasons[size_t(r)]; }

static_assert(std::is_trivially_copyable_v<Slot> && std::is_trivially_copyable_v<Header>);
static_assert(sizeof(Totals) % sizeof(uint64_t) == 0);
static_assert(sizeof(Slot) % 64 == 0, "each slot owns whole cache lines");

constexpr size_t segmentBytes(uint32_t slotCount) { return sizeof(Header) + size_t{slotCount} * sizeof(Slot); }

}  // namespace tcpfork::stats
