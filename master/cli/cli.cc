#include "master/cli/cli.h"

#include <CLI/CLI.hpp>

#include <cstdlib>

#include "base/version.h"
#include "master/signal_table.h"

namespace tcpfork {

CliOptions parseCli(int argc, char** argv) {
  CliOptions o;
  CLI::App app{"tcpfork: prefork TCP server for the length-prefixed request/ack protocol.\n"
               "Runs in the foreground (systemd style) unless -d; signals, config keys and files: man tcpfork(8)."};
  app.set_version_flag("-v,--version", versionLine("tcpfork"));
  app.add_option("-c,--config", o.configPath, "YAML config file (default: built-in defaults)")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", o.overrides.listen, "ADDR:PORT to serve (repeatable; overrides listen)");
  std::optional<unsigned> workers;
  app.add_option("--workers", o.overrides.workers, "worker processes (overrides workers)")
      ->check(CLI::Range(1u, 4096u));
  app.add_option("--metrics-listen", o.overrides.metricsListen, "admin/metrics ADDR:PORT (overrides metrics.listen)");
  app.add_option("--pid-file", o.overrides.pidFile, "pidfile path (overrides pid_file)");
  app.add_option("--name", o.overrides.name, "instance name (overrides name)");
  app.add_option("--log-file", o.overrides.logFile, "log file path (overrides log.file; -d without one logs to journald)");
  app.add_flag("-d,--daemon", o.daemonize, "detach and run in the background");
  app.add_flag("-t,--test", o.testConfig, "check the configuration and exit 0 (valid) or 1");
  app.add_option("-s,--signal", o.signal, "signal the running master: reload, stop, quit, reopen, profile, upgrade")
      ->check(CLI::IsMember(actionNames()));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  return o;
}

}  // namespace tcpfork
