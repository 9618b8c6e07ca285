#include "worker/heap_profiler.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <gperftools/malloc_extension.h>
#include <unistd.h>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <vector>

#include "base/unique_fd.h"
#include "worker/profile_symbols.h"

namespace tcpfork {
namespace {

// tcmalloc's MallocExtension::instance(), if tcmalloc is this process's allocator.
MallocExtension* tcmalloc() {
  using Instance = MallocExtension* (*)();
  static auto instance = reinterpret_cast<Instance>(::dlsym(RTLD_DEFAULT, "_ZN15MallocExtension8instanceEv"));
  return instance ? instance() : nullptr;
}

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:%Y%m%dT%H%M%S}.{:03}", fmt::localtime(std::chrono::system_clock::to_time_t(now)), ms);
}

// The stack addresses of a heap sample ("... @ 0x1 0x2 ..." lines).
std::vector<uint64_t> heapAddresses(const std::string& text) {
  std::vector<uint64_t> out;
  size_t at = 0;
  while ((at = text.find(" 0x", at)) != std::string::npos) {
    at += 3;
    size_t end = text.find_first_not_of("0123456789abcdefABCDEF", at);
    size_t lineStart = text.rfind('\n', at);
    size_t marker = text.find(" @ ", lineStart == std::string::npos ? 0 : lineStart);
    if (marker != std::string::npos && marker < at) out.push_back(std::strtoull(text.c_str() + at, nullptr, 16));
    at = end == std::string::npos ? text.size() : end;
  }
  return out;
}

void writeFile(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throw std::system_error(errno, std::generic_category(), "open(" + path + ")");
  for (size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "write(" + path + ")");
    done += size_t(n);
  }
}

}  // namespace

HeapProfiler::HeapProfiler(ProfileOptions options) : options_(std::move(options)) {}

std::optional<std::string> HeapProfiler::unavailable() const {
  if (!tcmalloc()) return "this worker allocates with the system allocator (a sanitizer build), not tcmalloc";
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
  tcmalloc()->GetHeapSample(&text);
  std::string finalPath = fmt::format("{}/{}-worker{}-{}-{}-{}.heap", options_.dir, options_.name, options_.index,
                                      ::getpid(), timestamp(), ++written_);
  std::string tmpPath = finalPath + ".tmp";
  try {
    writeSymbolTable(heapAddresses(text), finalPath + ".sym");
    writeFile(tmpPath, text);
    if (::rename(tmpPath.c_str(), finalPath.c_str()) != 0) {
      throw std::system_error(errno, std::generic_category(), "rename(" + tmpPath + ", " + finalPath + ")");
    }
  } catch (const std::exception& e) {
    ::unlink(tmpPath.c_str());
    spdlog::error("{}: heap profile not written: {}", why, e.what());
    return std::nullopt;
  }
  spdlog::info("{}: heap profile written to {}", why, finalPath);
  return finalPath;
}

}  // namespace tcpfork
