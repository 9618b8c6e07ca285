#pragma once
// What the worker asks of its allocator: gperftools' tcmalloc, which the
// tcpfork-worker binary links for heap profiles (worker/heap_profiler.h).
// It is found at run time: tcpfork-worker-glibc and sanitizer builds (whose
// sanitizers replace malloc) run on the system allocator, and there every
// call says so or does nothing.

#include <cstddef>
#include <string>

namespace tcpfork::allocator {

// Whether tcmalloc is this process's allocator.
bool usingTcmalloc();

// tcmalloc's sampled in-use heap, in gperftools' heap profile text, into
// `text`; false when tcmalloc is not the allocator.
bool heapSample(std::string& text);

// Gives free pages back to the kernel (madvise) until at most `keep` bytes
// of them stay resident, so that RSS shows what the worker holds, not what
// it held; returns the bytes given back (0 on the system allocator, which
// returns large blocks itself).
size_t releaseFreePagesOver(size_t keep);

// On: every page freed goes back to the kernel at once (and every free page
// now), as glibc's malloc does for large blocks; off: tcmalloc keeps them for
// reuse. Nothing on the system allocator.
void returnFreedPagesAtOnce(bool on);

}  // namespace tcpfork::allocator
