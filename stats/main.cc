// tcpfork-stats: reads a running instance's shared-memory stats segment
// (read-only, no HTTP) and shows a live per-worker table, like varnishstat or
// top. --once prints one snapshot; --json prints the master's /status
// document less the fields only the master knows.

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "base/version.h"
#include "stats/process_info.h"
#include "stats/segment.h"
#include "stats/snapshot.h"
#include "stats/status_json.h"

using namespace tcpfork::stats;

namespace {

std::atomic<bool> gStop{false};  // set by SIGINT/SIGTERM
void onStop(int) { gStop.store(true); }

std::string human(double v) {
  if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e4) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

std::string duration(double seconds) {
  if (seconds >= 86400) return fmt::format("{:.1f}d", seconds / 86400);
  if (seconds >= 3600) return fmt::format("{:.1f}h", seconds / 3600);
  if (seconds >= 60) return fmt::format("{:.1f}m", seconds / 60);
  return fmt::format("{:.0f}s", seconds);
}

// A heartbeat's age: under a second it is the loop's tick (100 ms) or less,
// so whole milliseconds; a stalled worker's climbs in tenths of a second.
std::string age(uint64_t ms) {
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) return fmt::format("{:.1f}s", double(ms) / 1000.0);
  return duration(double(ms) / 1000.0);
}

std::string latency(uint64_t ns) {
  if (ns == 0) return "-";
  if (ns >= 1'000'000) return fmt::format("{:.1f}ms", ns / 1e6);
  return fmt::format("{:.0f}us", ns / 1e3);
}

// A serving worker that sheds by queueing delay (its overloaded flag) reads
// "overloaded"; any other state (stalled, draining, starting) is shown as
// such: it says more, and a stalled worker's flag is as old as its heartbeat.
std::string_view stateColumn(const WorkerView& w, uint64_t staleAfterMs) {
  std::string_view state = shownState(w.state, w.heartbeatAgeMs, staleAfterMs);
  return w.overloaded && state == "serving" ? std::string_view("overloaded") : state;
}

struct Previous {
  Snapshot snapshot;
  std::map<pid_t, double> cpu;
  std::chrono::steady_clock::time_point at;
  bool valid = false;
};

void printTable(const std::string& name, const Snapshot& s, Previous& previous) {
  auto now = std::chrono::steady_clock::now();
  double dt = previous.valid ? std::chrono::duration<double>(now - previous.at).count() : 0;
  TotalsView total = s.total();
  TotalsView totalDelta = previous.valid ? total.since(previous.snapshot.total()) : TotalsView{};
  auto rate = [&](uint64_t delta) { return dt > 0 ? human(double(delta) / dt) : std::string("-"); };

  // Per-worker rate columns: the counters kCounters gives a column.
  std::vector<const CounterInfo*> columns;
  for (const auto& info : kCounters) {
    if (!info.column.empty()) columns.push_back(&info);
  }
  auto rateColumns = [&](auto&& cell) {
    std::string out;
    for (const CounterInfo* c : columns) out += fmt::format(" {:>9}", cell(c->id));
    return out;
  };

  fmt::print("tcpfork '{}'  master pid {}  generation {}  restarts {}  reloads {}  connections {}\n", name,
             s.masterPid, s.generation, s.workerRestarts, s.reloads, s.connected());
  std::string headings;
  for (const CounterInfo* c : columns) headings += fmt::format(" {:>9}", c->column);
  fmt::print("{:>3} {:>4} {:>8} {:<10} {:>7} {:>7} {:>7}{} {:>7} {:>8} {:>6} {:>8}\n", "idx", "gen", "pid", "state",
             "uptime", "beat", "conns", headings, "errors", "p99", "cpu%", "rss");
  std::vector<WorkerView> workers = s.workers;
  std::sort(workers.begin(), workers.end(),
            [](const auto& a, const auto& b) { return std::tie(a.generation, a.index) < std::tie(b.generation, b.index); });
  std::map<pid_t, double> cpu;
  for (const auto& w : workers) {
    TotalsView delta;
    bool haveDelta = false;
    for (const auto& p : previous.snapshot.workers) {
      if (previous.valid && p.pid == w.pid && p.slot == w.slot) {
        delta = w.totals.since(p.totals);
        haveDelta = true;
      }
    }
    auto info = readProcessInfo(w.pid);
    std::string cpuText = "-";
    if (info) {
      cpu[w.pid] = info->cpuSeconds;
      if (auto it = previous.cpu.find(w.pid); it != previous.cpu.end() && dt > 0) {
        cpuText = fmt::format("{:.0f}", (info->cpuSeconds - it->second) / dt * 100);
      }
    }
    auto deltaRate = [&](Counter c) { return haveDelta ? rate(delta.counter(c)) : std::string("-"); };
    fmt::print("{:>3} {:>4} {:>8} {:<10} {:>7} {:>7} {:>7}{} {:>7} {:>8} {:>6} {:>8}\n", w.index, w.generation, w.pid,
               stateColumn(w, s.staleAfterMs),
               info ? duration(info->uptimeSeconds) : std::string("-"),
               age(w.heartbeatAgeMs), w.connectionsCurrent, rateColumns(deltaRate), w.totals.protocolErrorTotal(),
               latency(haveDelta ? delta.requestDuration.quantileNs(0.99) : w.totals.requestDuration.quantileNs(0.99)), cpuText,
               info ? human(double(info->residentBytes)) : std::string("-"));
  }
  fmt::print("{:>3} {:>4} {:>8} {:<10} {:>7} {:>7} {:>7}{} {:>7} {:>8}\n", "all", "", "", "", "", "", s.connected(),
             rateColumns([&](Counter c) { return rate(totalDelta.counter(c)); }), total.protocolErrorTotal(),
             latency(previous.valid ? totalDelta.requestDuration.quantileNs(0.99)
                                    : total.requestDuration.quantileNs(0.99)));
  std::string totals;
  for (const auto& info : kCounters) {
    totals += fmt::format("{} {} {}", totals.empty() ? "" : ",", total.counter(info.id), info.key);
  }
  fmt::print("totals:{}\n", totals);
  // A handler module's own counters, when it has declared any.
  std::string handler;
  for (const auto& [name, c] : s.handlerTotals()) {
    handler += fmt::format("{} {} {}", handler.empty() ? "" : ",", c.value, name);
  }
  if (!handler.empty()) fmt::print("handler:{}\n", handler);
  previous = {s, cpu, now, true};
}

}  // namespace

int main(int argc, char** argv) {
  std::string name = "tcpfork";
  bool once = false;
  bool json = false;
  double interval = 1.0;
  CLI::App app{"tcpfork-stats: live per-worker statistics of a running tcpfork, from shared memory"};
  app.set_version_flag("--version", tcpfork::versionLine("tcpfork-stats"));
  app.add_option("--name", name, "instance name (the master's `name`)")->capture_default_str();
  app.add_flag("--once", once, "print one snapshot and exit");
  app.add_flag("--json", json, "JSON (the master's /status document) instead of a table");
  app.add_option("-i,--interval", interval, "seconds between refreshes")->capture_default_str()->check(
      CLI::Range(0.1, 3600.0));
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGINT, onStop);
  std::signal(SIGTERM, onStop);
  try {
    StatsSegment segment = StatsSegment::openReadOnly(name);
    bool tty = ::isatty(STDOUT_FILENO);
    Previous previous;
    while (true) {
      Snapshot s = takeSnapshot(segment);
      if (s.masterPid <= 0 || (::kill(s.masterPid, 0) != 0 && errno != EPERM)) {
        fmt::print(stderr, "tcpfork-stats: the master of '{}' (pid {}) is no longer running\n", name, s.masterPid);
        return 1;
      }
      if (json) {
        fmt::print("{}\n", snapshotJson(s).dump(once ? 2 : -1));
      } else {
        if (tty && !once) fmt::print("\x1b[H\x1b[2J");
        printTable(name, s, previous);
        if (!tty && !once) fmt::print("\n");
      }
      std::fflush(stdout);
      if (once) return 0;
      auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval);
      while (!gStop.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (gStop.load()) return 0;
    }
  } catch (const SegmentError& e) {
    fmt::print(stderr, "tcpfork-stats: {}\n", e.what());
    return 1;
  }
}
