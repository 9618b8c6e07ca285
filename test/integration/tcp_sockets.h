#pragma once
// The kernel's view of this machine's IPv4 TCP sockets (/proc/net/tcp), for
// tests that check what a server has accepted, read or left queued.

#include <cstdint>
#include <optional>
#include <vector>

namespace tcpfork::test {

struct TcpSocket {
  int localPort = 0;
  int remotePort = 0;
  unsigned state = 0;    // TCP_ESTABLISHED 0x01, TCP_LISTEN 0x0A, ...
  uint64_t txQueue = 0;  // sent and not yet acknowledged by the peer
  uint64_t rxQueue = 0;  // received and not yet read; a listener's: its accept queue
};

// The sockets whose local port is `port` (a server's listener and the server
// ends of its connections), read once.
std::vector<TcpSocket> tcpSocketsOnPort(int port);

// The server end of the loopback connection from `clientPort` to
// `serverPort`; nullopt when the kernel has none.
std::optional<TcpSocket> serverEnd(int serverPort, int clientPort);

}  // namespace tcpfork::test
