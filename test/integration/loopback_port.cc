#include "test/integration/loopback_port.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>

#include "base/socket.h"

namespace tcpfork::test {

BoundPort listeningLoopbackPort(int backlog) {
  UniqueFd fd = listenTcp(parseAddress("127.0.0.1:0"), {.backlog = backlog, .reusePort = false});
  int port = localAddress(fd.get()).port();
  return {std::move(fd), port};
}

BoundPort reservedLoopbackPort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw std::system_error(errno, std::generic_category(), "socket()");
  int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    throw std::system_error(errno, std::generic_category(), "setsockopt(SO_REUSEADDR)");
  }
  sockaddr_in loopback{};
  loopback.sin_family = AF_INET;
  loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&loopback), sizeof loopback) != 0) {
    throw std::system_error(errno, std::generic_category(), "bind(127.0.0.1:0)");
  }
  int port = localAddress(fd.get()).port();
  return {std::move(fd), port};
}

}  // namespace tcpfork::test
