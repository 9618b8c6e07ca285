#include "worker/options.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <map>

#include "base/version.h"

namespace tcpfork {
namespace {

// "250ms", "30s", "2m"; a bare number is seconds.
CLI::AsNumberWithUnit durationUnits() {
  return CLI::AsNumberWithUnit(std::map<std::string, double>{{"ms", 0.001}, {"s", 1.0}, {"m", 60.0}},
                               CLI::AsNumberWithUnit::CASE_SENSITIVE, "DURATION");
}

std::chrono::milliseconds toMillis(double seconds) {
  return std::chrono::milliseconds(std::llround(seconds * 1000.0));
}

}  // namespace

WorkerOptions parseWorkerOptions(int argc, char** argv) {
  WorkerOptions options;
  double idleSeconds = options.limits.idleTimeout.count() / 1000.0;
  double drainSeconds = options.drainTimeout.count() / 1000.0;
  double profileSeconds = options.profileDuration.count() / 1000.0;

  CLI::App app{"tcpfork-worker: one libevent loop serving the tcpfork protocol.\n"
               "Normally started by the tcpfork master; --listen runs it standalone."};
  app.set_version_flag("--version", versionLine("tcpfork-worker"));
  auto* listen = app.add_option("--listen", options.listen, "ADDR:PORT to bind (standalone mode)");
  auto* fd = app.add_option("--listen-fd", options.listenFds, "inherited listening socket (repeatable)")
                 ->check(CLI::NonNegativeNumber);
  listen->excludes(fd);
  app.add_option("--max-connections", options.maxConnections, "close new connections beyond this many")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-frame-bytes", options.limits.maxFrameBytes, "largest frame accepted (totalLength)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{protocol::kMinRequestFrameBytes}, size_t{0x7fffffff}));
  app.add_option("--idle-timeout", idleSeconds, "close a connection silent this long (0 = never)")
      ->capture_default_str()
      ->transform(durationUnits())
      ->check(CLI::NonNegativeNumber);
  app.add_option("--drain-timeout", drainSeconds, "graceful stop (SIGQUIT) closes what is left after this")
      ->capture_default_str()
      ->transform(durationUnits())
      ->check(CLI::NonNegativeNumber);
  app.add_option("--output-high-water", options.limits.outputHighWater,
                 "stop reading a connection with more unsent bytes than this")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--log-level", options.logLevel, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--log-file", options.logFile, "append logs here (reopened on SIGUSR1)");
  app.add_option("--role", options.role, "name shown in log lines")->capture_default_str();
  auto* stats = app.add_option("--stats-name", options.statsName, "shared-memory stats segment to publish into");
  app.add_option("--slot", options.slot, "this worker's slot in the stats segment")
      ->needs(stats)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--generation", options.generation, "reload generation this worker belongs to");
  app.add_option("--index", options.index, "worker index (which listeners it serves)");
  app.add_option("--name", options.name, "instance name (profile file names)")->capture_default_str();
  app.add_option("--profile-dir", options.profileDir, "where SIGTRAP writes CPU profiles");
  app.add_option("--profile-duration", profileSeconds, "a CPU profile stops by itself after this")
      ->capture_default_str()
      ->transform(durationUnits())
      ->check(CLI::PositiveNumber);
  app.add_flag("--no-stats", options.noStats, "count nothing (to measure what stats cost)");
  app.add_option("--parent-pid", options.parentPid, "exit when this process (the master) is gone");

  try {
    app.parse(argc, argv);
    if (options.listen.empty() && options.listenFds.empty()) {
      throw CLI::RequiredError("one of --listen or --listen-fd");
    }
    if (stats->count() > 0 && options.slot < 0) throw CLI::RequiredError("--slot (with --stats-name)");
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  options.limits.idleTimeout = toMillis(idleSeconds);
  options.drainTimeout = toMillis(drainSeconds);
  options.profileDuration = toMillis(profileSeconds);
  options.limits.outputLowWater = options.limits.outputHighWater / 2;
  return options;
}

}  // namespace tcpfork
