#pragma once
// Loopback ports for the servers a test starts, never free between the
// kernel choosing one and its server using it. Probing for a free port,
// closing the probe and passing the number on races every other process on
// the machine: any of them may take the port in between (a connect's
// ephemeral port, another test's listener). A server that binds port 0 and
// says which port it got (RunningMaster reads its log) needs none of this.

#include "base/unique_fd.h"

namespace tcpfork::test {

// A socket bound to a loopback port the kernel chose, and that port.
struct BoundPort {
  UniqueFd fd;
  int port = 0;
};

// Listening, without SO_REUSEPORT: hand `fd` to the process that serves the
// port (a child inherits it), as systemd hands its sockets over.
BoundPort listeningLoopbackPort(int backlog = 128);

// Bound with SO_REUSEADDR and never listening, for a server that can only be
// told a port to bind itself (systemd-socket-activate's -l), or for a port no
// server listens on. While `fd` lives, connects to the port are refused and
// the kernel gives the port to nobody else: neither a bind to port 0 nor a
// connect's ephemeral port picks a port a socket is bound to. A server that
// sets SO_REUSEADDR too may still bind and listen on it.
BoundPort reservedLoopbackPort();

}  // namespace tcpfork::test
