#pragma once
// spawnProcess: fork + exec with a chosen set of inherited fds, a clean
// signal state, death-with-parent and optional privilege drop. Between fork
// and exec the child makes only async-signal-safe calls. Exec failures are
// reported back through a close-on-exec pipe, so the caller learns at once.

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace tcpfork {

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0] is the binary path
  std::vector<int> inheritFds;    // stay open in the child under the same numbers
  std::optional<uid_t> uid;       // drop to these before exec
  std::optional<gid_t> gid;
  bool dieWithParent = true;      // PR_SET_PDEATHSIG(SIGTERM)
  std::vector<std::string> env;   // "NAME=value" set (or replaced) in the child's environment
};

// Returns the child's pid. Throws std::system_error when fork fails or the
// child could not exec (with the child's errno and the binary's path).
pid_t spawnProcess(const SpawnRequest& request);

}  // namespace tcpfork
