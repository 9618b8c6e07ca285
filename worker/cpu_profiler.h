#pragma once
// CpuProfiler: gperftools' CPU profiler in this worker, started and stopped
// from the worker loop (SIGTRAP toggles it; it stops by itself after its
// duration). Owned by the Worker.
//
// A profile is written to "<final>.tmp" and renamed to
//   <dir>/<name>-worker<index>-<pid>-<YYYYmmddTHHMMSS.mmm>.prof
// only once complete, so a worker killed mid-profile leaves a .tmp (which the
// master removes), never a truncated .prof. Before that rename, the functions
// its addresses fall in are written to "<final>.sym" (worker/profile_symbols.h)
// for the master's /debug/pprof/symbol, and its folded stacks to
// "<final>.folded" (worker/folded_stacks.h) for format=folded. The master creates the directory
// (0700, owned by the user workers run as) and takes nothing in it on trust:
// see master/profiling/profile_dir.h.

#include <chrono>
#include <string>

#include "base/event_ptr.h"
#include "stats/layout.h"

namespace tcpfork {

struct ProfileOptions {
  std::string dir;   // empty: profiling unavailable
  std::string name;  // instance name, for file names
  uint64_t index = 0;
  std::chrono::milliseconds duration{60'000};
};

// Local time to the millisecond, as profile file names carry it:
// YYYYmmddTHHMMSS.mmm.
std::string profileTimestamp();

class CpuProfiler {
 public:
  CpuProfiler(event_base* base, ProfileOptions options, stats::Slot& slot);
  ~CpuProfiler();
  CpuProfiler(const CpuProfiler&) = delete;
  CpuProfiler& operator=(const CpuProfiler&) = delete;

  // SIGTRAP: stop if running, else start for the master's requested length
  // (if it set one) or the configured duration.
  void toggle();
  void start(std::chrono::milliseconds duration);
  void stop();
  bool running() const { return !tmpPath_.empty(); }

 private:
  static void onDeadline(evutil_socket_t fd, short what, void* self);

  ProfileOptions options_;
  stats::Slot& slot_;
  EventPtr deadline_;
  std::string tmpPath_;
  std::string finalPath_;
};

}  // namespace tcpfork
