#pragma once
// daemonize: detach the way init systems and operators expect: fork, setsid,
// fork again, chdir /, stdin from /dev/null, stdout/stderr to the log file,
// or without one to journald (a daemon never logs to /dev/null: with
// neither, it does not start, and says to set log.file). The original
// process stays until the daemon reports back through a pipe, so
// `tcpfork -d` exits 0 only once the server serves, and prints the daemon's
// error and exits 1 when it does not.

#include <string>

namespace tcpfork {

// Returns in the daemon only, with the write end of the readiness pipe (to
// hand to the Master, or to reportDaemonFailure).
int daemonize(const std::string& logFile);

// From the daemon, before it is ready: tells the waiting parent why it failed.
void reportDaemonFailure(int readyFd, const std::string& message);

}  // namespace tcpfork
