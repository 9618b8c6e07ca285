#pragma once
// The `tcpfork` command line (the contract scripts and docs rely on):
//   tcpfork [-c FILE] [--listen ADDR:PORT]... [--workers N] [--metrics-listen ADDR:PORT]
//           [--pid-file PATH] [--name NAME] [--log-file PATH] [-d] [-t]
//           [-s reload|stop|quit|reopen|profile|upgrade]

#include <string>

#include "master/config/config.h"

namespace tcpfork {

struct CliOptions {
  std::string configPath;
  ConfigOverrides overrides;
  bool daemonize = false;
  bool testConfig = false;
  std::string signal;  // -s
};

// Parses argv; on --help, --version or a usage error prints and exits.
// The -s names and their signals are in master/signal_table.h.
CliOptions parseCli(int argc, char** argv);

}  // namespace tcpfork
