#include "worker/heap_profiler.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <gperftools/malloc_extension.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <vector>

#include "worker/folded_stacks.h"
#include "worker/profile_symbols.h"

namespace tcpfork {
namespace {

// A sanitizer build (TCPFORK_SYSTEM_ALLOCATOR) compiles no call into
// MallocExtension at all: the sanitizers replace malloc, tcmalloc is not
// linked, and UBSan's vptr check on a virtual call would need its typeinfo.
#ifdef TCPFORK_SYSTEM_ALLOCATOR
bool usingTcmalloc() { return false; }
bool returnFreedPagesAtOnce() { return false; }
bool heapSample(std::string&) { return false; }
#else
// tcmalloc's MallocExtension::instance(), if tcmalloc is this process's allocator.
MallocExtension* tcmalloc() {
  using Instance = MallocExtension* (*)();
  static auto instance = reinterpret_cast<Instance>(::dlsym(RTLD_DEFAULT, "_ZN15MallocExtension8instanceEv"));
  return instance ? instance() : nullptr;
}
bool usingTcmalloc() { return tcmalloc() != nullptr; }
bool returnFreedPagesAtOnce() {
  MallocExtension* allocator = tcmalloc();
  return allocator && allocator->SetNumericProperty("tcmalloc.aggressive_memory_decommit", 1);
}
bool heapSample(std::string& text) {
  MallocExtension* allocator = tcmalloc();
  if (!allocator) return false;
  allocator->GetHeapSample(&text);
  return true;
}
#endif

}  // namespace

HeapProfiler::HeapProfiler(ProfileOptions options) : options_(std::move(options)) {
  // tcmalloc keeps freed pages for reuse unless told to return them at once:
  // a worker shedding parked frames under max_buffered_bytes would then hold
  // the memory it freed, and its RSS stay past the budget the limit promises
  // (Limits.ParkedLargeFramesAreShedBiggestFirstWithinTheBudget).
  if (usingTcmalloc() && !returnFreedPagesAtOnce()) {
    spdlog::warn("tcmalloc: cannot set tcmalloc.aggressive_memory_decommit; freed memory may stay resident");
  }
}

std::optional<std::string> HeapProfiler::unavailable() const {
  if (!usingTcmalloc()) return "this worker allocates with the system allocator (a sanitizer build), not tcmalloc";
  const char* sample = std::getenv("TCMALLOC_SAMPLE_PARAMETER");
  if (!sample || std::strtoull(sample, nullptr, 10) == 0) return "heap sampling is off (profile.heap_sample: 0)";
  if (options_.dir.empty()) return "no profile directory configured";
  return std::nullopt;
}

std::optional<std::string> HeapProfiler::write(const char* why) {
  if (auto reason = unavailable()) {
    spdlog::warn("{}: no heap profile: {}", why, *reason);
    return std::nullopt;
  }
  std::string text;
  if (!heapSample(text)) return std::nullopt;
  std::string finalPath = fmt::format("{}/{}-worker{}-{}-{}-{}.heap", options_.dir, options_.name, options_.index,
                                      ::getpid(), profileTimestamp(), ++written_);
  try {
    auto stacks = heapSampleStacks(text);
    writeSymbolTable(addressesOf(stacks), finalPath + ".sym");
    writeFoldedStacks(stacks, true, finalPath + ".folded");
    writeTextFile(finalPath, text);
  } catch (const std::exception& e) {
    spdlog::error("{}: heap profile not written: {}", why, e.what());
    return std::nullopt;
  }
  spdlog::info("{}: heap profile written to {}", why, finalPath);
  return finalPath;
}

}  // namespace tcpfork
