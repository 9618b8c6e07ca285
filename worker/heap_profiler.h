#pragma once
// HeapProfiler: writes the worker's sampled in-use heap (tcmalloc's heap
// sample: every allocation live now among those tcmalloc sampled, one per
// profile.heap_sample bytes allocated on average, with the stack that made
// it) to the profile directory, on SIGURG or before a max_rss recycle:
//   <dir>/<name>-worker<index>-<pid>-<YYYYmmddTHHMMSS.mmm>-<n>.heap
// in gperftools' heap profile text, which google-pprof and `go tool pprof`
// read, written to "<final>.tmp" and renamed once complete, after the symbol
// table of its addresses ("<final>.sym", worker/profile_symbols.h) and its
// folded stacks ("<final>.folded", worker/folded_stacks.h).
//
// Where tcmalloc is not the allocator (worker/allocator.h), every write says
// that heap profiles are unavailable. Owned by the Worker.

#include <optional>
#include <string>

#include "worker/cpu_profiler.h"

namespace tcpfork {

class HeapProfiler {
 public:
  explicit HeapProfiler(ProfileOptions options);

  // Why heap profiles cannot be written here, or nullopt when they can.
  std::optional<std::string> unavailable() const;
  // Writes one profile and logs its path with `why`; the path, or nullopt
  // (logged) when it could not.
  std::optional<std::string> write(const char* why);

 private:
  ProfileOptions options_;
  unsigned written_ = 0;
};

}  // namespace tcpfork
