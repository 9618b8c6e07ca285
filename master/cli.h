#pragma once
// The `tcpfork` command line (the contract scripts and docs rely on):
//   tcpfork [-c FILE] [--listen ADDR:PORT]... [--workers N] [--metrics-listen ADDR:PORT]
//           [--pid-file PATH] [--name NAME] [-d] [-t] [-s reload|stop|quit|reopen|profile|upgrade]

#include <string>

#include "master/config.h"

namespace tcpfork {

struct CliOptions {
  std::string configPath;
  ConfigOverrides overrides;
  bool daemonize = false;
  bool testConfig = false;
  std::string signal;  // -s
};

// Parses argv; on --help, --version or a usage error prints and exits.
CliOptions parseCli(int argc, char** argv);

// The signal `-s NAME` sends; 0 for an unknown name.
int signalForAction(const std::string& action);

}  // namespace tcpfork
