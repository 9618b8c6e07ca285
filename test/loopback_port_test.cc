// The fixture's loopback ports are held from the moment the kernel chooses
// one: no other socket can take the port before the server meant to.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/socket.h"
#include "test/integration/loopback_port.h"

namespace tcpfork::test {
namespace {

UniqueFd tcpSocket(bool reuseAddress) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int on = 1;
  if (fd && reuseAddress) ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  return fd;
}

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

// 0, or the errno of bind(2) to 127.0.0.1:`port`.
int bindError(int fd, int port) {
  sockaddr_in address = loopback(port);
  return ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
}

int connectError(int port) {
  UniqueFd fd = tcpSocket(false);
  sockaddr_in address = loopback(port);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 ? 0 : errno;
}

// Ports the kernel picks for binds to port 0 while all of them stay bound.
std::vector<int> portsPickedByTheKernel(size_t n) {
  std::vector<UniqueFd> held;
  std::vector<int> ports;
  for (size_t i = 0; i < n; ++i) {
    UniqueFd fd = tcpSocket(true);
    if (bindError(fd.get(), 0) != 0) break;
    ports.push_back(localAddress(fd.get()).port());
    held.push_back(std::move(fd));
  }
  return ports;
}

TEST(LoopbackPort, AListeningPortAcceptsAndIsNobodyElses) {
  BoundPort port = listeningLoopbackPort();
  ASSERT_TRUE(port.fd);
  EXPECT_EQ(connectError(port.port), 0);
  EXPECT_EQ(bindError(tcpSocket(false).get(), port.port), EADDRINUSE);
  EXPECT_EQ(bindError(tcpSocket(true).get(), port.port), EADDRINUSE);
}

TEST(LoopbackPort, AReservedPortRefusesConnectsAndIsGivenToNobodyElse) {
  BoundPort port = reservedLoopbackPort();
  ASSERT_TRUE(port.fd);
  EXPECT_EQ(connectError(port.port), ECONNREFUSED) << "nobody listens there";
  EXPECT_EQ(bindError(tcpSocket(false).get(), port.port), EADDRINUSE);
  std::vector<int> picked = portsPickedByTheKernel(500);
  EXPECT_EQ(picked.size(), 500u) << "a bind to port 0 failed: " << std::strerror(errno);
  for (int p : picked) ASSERT_NE(p, port.port) << "the kernel gave a bind to port 0 the reserved port";
}

// As systemd-socket-activate does with the port it is given.
TEST(LoopbackPort, AServerThatSetsSoReuseaddrListensOnAReservedPort) {
  BoundPort port = reservedLoopbackPort();
  UniqueFd server = tcpSocket(true);
  ASSERT_EQ(bindError(server.get(), port.port), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(server.get(), 8), 0) << std::strerror(errno);
  EXPECT_EQ(connectError(port.port), 0);
}

}  // namespace
}  // namespace tcpfork::test
