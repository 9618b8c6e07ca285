#include "master/profiling/auto_profiler.h"

#include <signal.h>

#include <spdlog/spdlog.h>

#include <fstream>
#include <string>

#include "stats/process_info.h"
#include "stats/slot_allocator.h"
#include "stats/snapshot.h"

namespace tcpfork {
namespace {

uint64_t memTotalBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  while (in >> key >> kib) {
    if (key == "MemTotal:") return kib * 1024;
    in.ignore(256, '\n');
  }
  return 0;
}

}  // namespace

AutoProfiler::AutoProfiler(stats::StatsSegment& segment, AutoProfileConfig config)
    : segment_(segment), config_(config), memTotalBytes_(memTotalBytes()) {}

void AutoProfiler::sample(uint64_t generation, const std::function<bool(unsigned, pid_t)>& ours) {
  auto now = Clock::now();
  stats::Snapshot snapshot = stats::takeSnapshot(segment_);
  for (const auto& w : snapshot.workers) {
    if (w.state != stats::WorkerState::kServing || w.generation != generation) continue;
    auto info = stats::readProcessInfo(w.pid);
    if (!info) continue;
    Track& track = tracks_[w.index];
    if (track.pid != w.pid) {  // a new process for this index: no delta yet
      track = Track{w.pid, info->cpuSeconds, now, 0};
      continue;
    }
    double seconds = std::chrono::duration<double>(now - track.at).count();
    double cpuPercent = seconds > 0 ? (info->cpuSeconds - track.cpuSeconds) / seconds * 100 : 0;
    double memPercent = memTotalBytes_ ? double(info->residentBytes) / double(memTotalBytes_) * 100 : 0;
    track.cpuSeconds = info->cpuSeconds;
    track.at = now;
    bool over = cpuPercent > config_.threshold || memPercent > config_.threshold;
    track.over = over ? track.over + 1 : 0;
    if (track.over < config_.consecutive || w.profiling) continue;
    auto last = lastProfile_.find(w.index);
    if (last != lastProfile_.end() && now - last->second < config_.cooldown) continue;

    stats::store(segment_.slot(w.slot).profileRequestMs, 0);  // the configured duration
    if (!ours(w.index, w.pid)) {
      spdlog::warn("auto-profiling: slot {} names pid {}, which is not the worker of index {}; not signalling it",
                   w.slot, w.pid, w.index);
      continue;
    }
    if (::kill(w.pid, SIGTRAP) != 0) continue;
    lastProfile_[w.index] = now;
    track.over = 0;
    stats::addToHeader(segment_.header(), &stats::Header::autoProfiles);
    spdlog::info("auto-profiling worker {} (pid {}): CPU {:.0f}%, memory {:.1f}% against threshold {}% for {} "
                 "samples; not again for {} s",
                 w.index, w.pid, cpuPercent, memPercent, config_.threshold, config_.consecutive,
                 config_.cooldown.count() / 1000);
  }
}

}  // namespace tcpfork
