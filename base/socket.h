#pragma once
// Plain socket helpers shared by the master, the worker, the client and the
// baseline server: address parsing, listening and connecting sockets.
// Errors throw std::system_error / std::invalid_argument naming the call and
// the address.

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/unique_fd.h"

namespace tcpfork {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  int port() const;
  // "127.0.0.1:8888" or "[::1]:8888".
  std::string toString() const;
};

// Parses "HOST:PORT", "[IPV6]:PORT" or ":PORT" (all IPv4 addresses). HOST is
// numeric or "localhost". Throws std::invalid_argument with the reason.
SocketAddress parseAddress(std::string_view text);

struct ListenOptions {
  int backlog = 4096;
  bool reusePort = true;
};

// A non-blocking, close-on-exec listening TCP socket bound to `address`.
UniqueFd listenTcp(const SocketAddress& address, const ListenOptions& options = {});

// Blocking connect; the socket is close-on-exec with TCP_NODELAY set.
UniqueFd connectTcp(const SocketAddress& address);

SocketAddress localAddress(int fd);
// The peer's "ADDRESS:PORT" for a log line, or "?" when it is gone.
std::string peerName(int fd);
// Whether poll() reports any of `events` on `fd` right now (without waiting).
bool socketReady(int fd, short events);
// 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104.
bool isLoopback(const SocketAddress& address);
void setNonBlocking(int fd);

// A listening socket's accept queue (TCP_INFO: for a listener the kernel
// reports the queue in tcpi_unacked and its limit, the backlog, in
// tcpi_sacked). Empty when `fd` is not a listening TCP socket.
struct AcceptQueue {
  uint32_t length = 0;
  uint32_t limit = 0;
};
std::optional<AcceptQueue> acceptQueue(int fd);
void setNoDelay(int fd);

}  // namespace tcpfork
