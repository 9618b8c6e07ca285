#pragma once
// Who the workers run as, and where the master's binaries are: resolved once
// at start on the master and kept for its life (a reload cannot change
// them: the profile directory belongs to that user).

#include <sys/types.h>

#include <optional>
#include <string>

#include "master/config/config.h"

namespace tcpfork {

struct Identity {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};

// `user`/`group` as ids when we are root and can switch to them; warns once
// and returns none when not root. Throws ConfigError for an unknown name.
Identity resolveIdentity(const Config& config);

// This executable's path at start (/proc/self/exe): what USR2 runs again.
std::string selfPath();
// The tcpfork-worker binary beside `self`; throws std::system_error when it
// is not there or not executable.
std::string workerBinaryBeside(const std::string& self);

}  // namespace tcpfork
