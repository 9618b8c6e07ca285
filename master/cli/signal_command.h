#pragma once
// `tcpfork -s ACTION`: finds the running master of the instance the command
// line names (master/cli/master_finder.h) and sends it ACTION's signal; for
// `upgrade`, waits for the new master to serve and prints both pids.
//
// A config that no longer loads does not stop an operator from stopping the
// server that runs with it: the error is printed, the master is found by the
// config file it runs with, and stop, quit, reopen and profile are sent.
// reload and upgrade are not: the master (or the new one) would refuse the
// file and serve on, so the command says so and exits 1 instead.

#include "master/cli/cli.h"

namespace tcpfork {

// The process's exit status: 0 sent (and, for upgrade, the new master
// serves), 1 otherwise, with the reason on stderr.
int sendSignal(const CliOptions& cli);

}  // namespace tcpfork
