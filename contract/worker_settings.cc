#include "contract/worker_settings.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <sstream>

#include "base/version.h"

namespace tcpfork {
namespace {

using Millis = std::chrono::milliseconds;

std::string ms(Millis d) { return fmt::format("{}ms", d.count()); }

// "250ms", "30s", "2m"; a bare number is seconds.
CLI::AsNumberWithUnit durationUnits() {
  return CLI::AsNumberWithUnit(std::map<std::string, double>{{"ms", 0.001}, {"s", 1.0}, {"m", 60.0}},
                               CLI::AsNumberWithUnit::CASE_SENSITIVE, "DURATION");
}

Millis toMillis(double seconds) { return Millis(std::llround(seconds * 1000.0)); }

}  // namespace

std::vector<std::string> toArgv(const WorkerArgs& a) {
  const WorkerSettings& s = a.settings;
  std::vector<std::string> argv = {
      "--role", a.role,
      "--index", std::to_string(a.index),
      "--generation", std::to_string(a.generation),
      "--max-connections", std::to_string(s.maxConnections),
      "--max-frame-bytes", std::to_string(s.limits.maxFrameBytes),
      "--output-high-water", std::to_string(s.limits.outputHighWater),
      "--max-buffered-bytes", std::to_string(s.maxBufferedBytes),
      "--idle-timeout", ms(s.limits.idleTimeout),
      "--drain-timeout", ms(s.drainTimeout),
      "--log-level", s.logLevel,
      "--name", s.name,
      "--profile-duration", ms(s.profileDuration)};
  auto optional = [&](const char* flag, const std::string& value) {
    if (!value.empty()) argv.insert(argv.end(), {flag, value});
  };
  if (s.rlimitNofile > 0) argv.insert(argv.end(), {"--rlimit-nofile", std::to_string(s.rlimitNofile)});
  if (a.cpu >= 0) argv.insert(argv.end(), {"--cpu", std::to_string(a.cpu)});
  optional("--log-file", s.logFile);
  optional("--profile-dir", s.profileDir);
  if (!s.handler.module.empty()) {
    argv.insert(argv.end(), {"--handler-module", s.handler.module, "--handler-config", s.handler.configJson,
                             "--handler-max-pending", std::to_string(s.handler.maxPending),
                             "--handler-pending-timeout", ms(s.handler.pendingTimeout)});
  }
  if (a.statsFd >= 0) argv.insert(argv.end(), {"--stats-fd", std::to_string(a.statsFd), "--slot", std::to_string(a.slot)});
  if (a.parentPid > 0) argv.insert(argv.end(), {"--parent-pid", std::to_string(a.parentPid)});
  for (int fd : a.listenFds) argv.insert(argv.end(), {"--listen-fd", std::to_string(fd)});
  optional("--listen", a.listen);
  if (a.noStats) argv.push_back("--no-stats");
  if (a.checkHandler) argv.push_back("--check-handler");
  return argv;
}

WorkerArgs parseWorkerArgs(const std::vector<std::string>& argv) {
  WorkerArgs a;
  WorkerSettings& s = a.settings;
  double idleSeconds = s.limits.idleTimeout.count() / 1000.0;
  double drainSeconds = s.drainTimeout.count() / 1000.0;
  double profileSeconds = s.profileDuration.count() / 1000.0;
  double pendingSeconds = s.handler.pendingTimeout.count() / 1000.0;

  CLI::App app{"tcpfork-worker: one libevent loop serving the tcpfork protocol.\n"
               "Normally started by the tcpfork master; --listen runs it standalone."};
  app.set_version_flag("--version", versionLine("tcpfork-worker"));
  auto* listen = app.add_option("--listen", a.listen, "ADDR:PORT to bind (standalone mode)");
  auto* fd = app.add_option("--listen-fd", a.listenFds, "inherited listening socket (repeatable)")
                 ->check(CLI::NonNegativeNumber);
  listen->excludes(fd);
  app.add_option("--max-connections", s.maxConnections, "close new connections beyond this many")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-frame-bytes", s.limits.maxFrameBytes, "largest frame accepted (totalLength)")
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
  app.add_option("--output-high-water", s.limits.outputHighWater,
                 "stop reading a connection with more unsent bytes than this")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-buffered-bytes", s.maxBufferedBytes,
                 "close the connections holding the most once all of them hold more than this (unfinished frames "
                 "and unsent acks)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--rlimit-nofile", s.rlimitNofile, "set RLIMIT_NOFILE (soft and hard) to this before serving")
      ->check(CLI::PositiveNumber);
  app.add_option("--cpu", a.cpu, "run on this CPU only (sched_setaffinity)")->check(CLI::NonNegativeNumber);
  app.add_option("--log-level", s.logLevel, "trace, debug, info, warn, error")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--log-file", s.logFile, "append logs here (reopened on SIGUSR1)");
  app.add_option("--role", a.role, "name shown in log lines")->capture_default_str();
  auto* stats = app.add_option("--stats-fd", a.statsFd, "inherited stats segment (a sealed memfd) to publish into")
                    ->check(CLI::NonNegativeNumber);
  app.add_option("--slot", a.slot, "this worker's slot in the stats segment")
      ->needs(stats)
      ->check(CLI::NonNegativeNumber);
  app.add_option("--generation", a.generation, "reload generation this worker belongs to");
  app.add_option("--index", a.index, "worker index (which listeners it serves)");
  app.add_option("--name", s.name, "instance name (profile file names)")->capture_default_str();
  app.add_option("--profile-dir", s.profileDir, "where SIGTRAP writes CPU profiles");
  app.add_option("--profile-duration", profileSeconds, "a CPU profile stops by itself after this")
      ->capture_default_str()
      ->transform(durationUnits())
      ->check(CLI::PositiveNumber);
  auto* module = app.add_option("--handler-module", s.handler.module, "handler module (.so) to load; none = ack all");
  app.add_option("--handler-config", s.handler.configJson, "the module's config, JSON text, given to its init")
      ->needs(module)
      ->capture_default_str();
  app.add_option("--handler-max-pending", s.handler.maxPending,
                 "stop reading a connection with more requests than this awaiting the module")
      ->needs(module)
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--handler-pending-timeout", pendingSeconds,
                 "close a connection whose pending requests have none completed for this long (0 = never)")
      ->needs(module)
      ->transform(durationUnits())
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--check-handler", a.checkHandler, "load the handler module, run its init and destroy, and exit")
      ->needs(module);
  app.add_flag("--no-stats", a.noStats, "count nothing (to measure what stats cost)");
  app.add_option("--parent-pid", a.parentPid, "exit when this process (the master) is gone");

  try {
    // CLI11 takes the arguments reversed, without argv[0].
    std::vector<std::string> reversed(argv.rbegin(), argv.rend() - (argv.empty() ? 0 : 1));
    app.parse(reversed);
    if (a.listen.empty() && a.listenFds.empty() && !a.checkHandler) throw CLI::RequiredError("one of --listen or --listen-fd");
    if (stats->count() > 0 && a.slot < 0) throw CLI::RequiredError("--slot (with --stats-fd)");
  } catch (const CLI::ParseError& e) {
    std::ostringstream out;
    std::ostringstream err;
    int code = app.exit(e, out, err);
    throw WorkerArgsError(out.str(), err.str(), code);
  }
  s.limits.idleTimeout = toMillis(idleSeconds);
  s.drainTimeout = toMillis(drainSeconds);
  s.profileDuration = toMillis(profileSeconds);
  s.handler.pendingTimeout = toMillis(pendingSeconds);
  return a;
}

}  // namespace tcpfork
