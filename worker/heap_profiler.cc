#include "worker/heap_profiler.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <vector>

#include "worker/allocator.h"
#include "worker/folded_stacks.h"
#include "worker/profile_symbols.h"

namespace tcpfork {

HeapProfiler::HeapProfiler(ProfileOptions options) : options_(std::move(options)) {}

std::optional<std::string> HeapProfiler::unavailable() const {
  if (!allocator::usingTcmalloc()) {
    return "this worker allocates with the system allocator (a sanitizer build or tcpfork-worker-glibc), not tcmalloc";
  }
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
  if (!allocator::heapSample(text)) return std::nullopt;
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
