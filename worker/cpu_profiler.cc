#include "worker/cpu_profiler.h"

#include <gperftools/profiler.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "worker/folded_stacks.h"
#include "worker/profile_symbols.h"

namespace tcpfork {

std::string profileTimestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:%Y%m%dT%H%M%S}.{:03}", fmt::localtime(std::chrono::system_clock::to_time_t(now)), ms);
}

CpuProfiler::CpuProfiler(event_base* base, ProfileOptions options, stats::Slot& slot)
    : options_(std::move(options)), slot_(slot), deadline_(evtimer_new(base, &CpuProfiler::onDeadline, this)) {
  if (!deadline_) throw std::system_error(ENOMEM, std::generic_category(), "evtimer_new(profile deadline)");
}

CpuProfiler::~CpuProfiler() {
  if (running()) stop();
}

void CpuProfiler::toggle() {
  if (running()) {
    stop();
    return;
  }
  uint64_t requested = stats::load(slot_.profileRequestMs);
  start(requested > 0 ? std::chrono::milliseconds(requested) : options_.duration);
}

void CpuProfiler::start(std::chrono::milliseconds duration) {
  if (options_.dir.empty()) {
    spdlog::warn("SIGTRAP: no profile directory configured; not profiling");
    return;
  }
  struct stat st {};
  if (::lstat(options_.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    spdlog::error("SIGTRAP: profile directory {} is missing or not a directory; not profiling", options_.dir);
    return;
  }
  // The sequence number keeps two profiles of one millisecond apart.
  finalPath_ = fmt::format("{}/{}-worker{}-{}-{}-{}.prof", options_.dir, options_.name, options_.index, ::getpid(),
                           profileTimestamp(), stats::load(slot_.profilesWritten) + 1);
  tmpPath_ = finalPath_ + ".tmp";
  if (!ProfilerStart(tmpPath_.c_str())) {
    spdlog::error("ProfilerStart({}) failed", tmpPath_);
    tmpPath_.clear();
    return;
  }
  stats::store(slot_.profiling, 1);
  timeval tv = toTimeval(duration);
  evtimer_add(deadline_.get(), &tv);
  spdlog::info("CPU profiling started for {} ms; SIGTRAP again stops it", duration.count());
}

void CpuProfiler::stop() {
  if (!running()) return;
  evtimer_del(deadline_.get());
  ProfilerStop();
  // Before the profile gets its final name: the master serves the two together.
  try {
    auto stacks = cpuProfileStacks(tmpPath_);
    size_t functions = writeSymbolTable(addressesOf(stacks), finalPath_ + ".sym");
    writeFoldedStacks(stacks, false, finalPath_ + ".folded");
    spdlog::debug("CPU profile: {} functions named in {}.sym", functions, finalPath_);
  } catch (const std::exception& e) {
    spdlog::warn("CPU profile: no symbol table or folded stacks beside it: {}", e.what());
  }
  if (::rename(tmpPath_.c_str(), finalPath_.c_str()) != 0) {
    spdlog::error("rename({}, {}): {}", tmpPath_, finalPath_, std::strerror(errno));
  } else {
    spdlog::info("CPU profile written to {}", finalPath_);
    stats::add(slot_.profilesWritten, 1);
  }
  // Cleared only once the file has its final name: the master takes the
  // cleared flag to mean the profile is there to report and serve.
  stats::store(slot_.profiling, 0);
  tmpPath_.clear();
}

void CpuProfiler::onDeadline(evutil_socket_t, short, void* self) { static_cast<CpuProfiler*>(self)->stop(); }

}  // namespace tcpfork
