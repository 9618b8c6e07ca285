#pragma once
// Folded stacks of a profile this worker wrote, named here (the worker has
// every file it maps; the master opens none): one line per distinct stack,
// "root;caller;...;leaf COUNT", the form FlameGraph and speedscope read and
// the status page's flame graph draws. Written beside the profile as
// "<profile>.folded" (through "<...>.tmp" and a rename); the master serves
// it for format=folded with ProfileDir's bounds.

#include <cstdint>
#include <string>
#include <vector>

namespace tcpfork {

// One sampled stack: its addresses, innermost first, and its weight.
struct WeightedStack {
  std::vector<uint64_t> frames;
  uint64_t weight = 0;
};

// The samples of a CPU profile gperftools' profiler wrote in this process
// (its binary format, native words); weight = samples. Throws
// std::runtime_error naming the file when it is not one.
std::vector<WeightedStack> cpuProfileStacks(const std::string& path);
// The in-use allocations of a tcmalloc heap sample ("heap profile: ... @
// heap_v2/PERIOD" text); weight = estimated bytes in use, scaled for the
// sampling as the pprof tools scale it.
std::vector<WeightedStack> heapSampleStacks(const std::string& text);

// The distinct addresses of `stacks`.
std::vector<uint64_t> addressesOf(const std::vector<WeightedStack>& stacks);

// Writes `stacks` folded to `path`. `dropAllocator`: leave out the
// allocator's own frames at the top of each stack (heap profiles).
void writeFoldedStacks(const std::vector<WeightedStack>& stacks, bool dropAllocator, const std::string& path);

}  // namespace tcpfork
