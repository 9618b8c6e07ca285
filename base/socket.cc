#include "base/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <fmt/format.h>

namespace tcpfork {
namespace {

[[noreturn]] void throwErrno(std::string_view call, const SocketAddress* address = nullptr) {
  int saved = errno;
  std::string what = address ? fmt::format("{}({})", call, address->toString()) : std::string(call);
  throw std::system_error(saved, std::generic_category(), what);
}

}  // namespace

int SocketAddress::port() const {
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

std::string SocketAddress::toString() const {
  char host[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, host, sizeof host);
    return fmt::format("[{}]:{}", host, port());
  }
  inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, host, sizeof host);
  return fmt::format("{}:{}", host, port());
}

SocketAddress parseAddress(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    throw std::invalid_argument(fmt::format("address '{}' has no ':PORT'", text));
  }
  std::string_view host = text.substr(0, colon);
  std::string_view portText = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    throw std::invalid_argument(fmt::format("address '{}': write IPv6 hosts as [HOST]:PORT", text));
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (portText.empty() || ec != std::errc() || end != portText.data() + portText.size() || port > 65535) {
    throw std::invalid_argument(fmt::format("address '{}': port '{}' is not a number 0-65535", text, portText));
  }
  if (host.empty()) host = "0.0.0.0";

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  if (host != "localhost") hints.ai_flags |= AI_NUMERICHOST;
  addrinfo* result = nullptr;
  std::string hostString(host);
  std::string portString = std::to_string(port);
  if (int rc = getaddrinfo(hostString.c_str(), portString.c_str(), &hints, &result); rc != 0) {
    throw std::invalid_argument(fmt::format("address '{}': {}", text, gai_strerror(rc)));
  }
  SocketAddress address;
  std::memcpy(&address.storage, result->ai_addr, result->ai_addrlen);
  address.length = result->ai_addrlen;
  freeaddrinfo(result);
  return address;
}

UniqueFd listenTcp(const SocketAddress& address, const ListenOptions& options) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throwErrno("socket", &address);
  int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    throwErrno("setsockopt(SO_REUSEADDR)", &address);
  }
  if (options.reusePort && ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0) {
    throwErrno("setsockopt(SO_REUSEPORT)", &address);
  }
  if (address.family() == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) {
    throwErrno("setsockopt(IPV6_V6ONLY)", &address);
  }
  if (::bind(fd.get(), address.get(), address.length) != 0) throwErrno("bind", &address);
  if (::listen(fd.get(), options.backlog) != 0) throwErrno("listen", &address);
  return fd;
}

UniqueFd connectTcp(const SocketAddress& address) {
  UniqueFd fd(::socket(address.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throwErrno("socket", &address);
  int rc;
  do {
    rc = ::connect(fd.get(), address.get(), address.length);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) throwErrno("connect", &address);
  setNoDelay(fd.get());
  return fd;
}

SocketAddress localAddress(int fd) {
  SocketAddress address;
  address.length = sizeof address.storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0) {
    throwErrno("getsockname");
  }
  return address;
}

std::string peerName(int fd) {
  SocketAddress peer;
  peer.length = sizeof peer.storage;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) != 0) return "?";
  return peer.toString();
}

bool socketReady(int fd, short events) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, 0) > 0 && p.revents != 0;
}

bool isLoopback(const SocketAddress& address) {
  if (address.family() == AF_INET) {
    auto ip = ntohl(reinterpret_cast<const sockaddr_in*>(&address.storage)->sin_addr.s_addr);
    return (ip >> 24) == 127;
  }
  const in6_addr& ip = reinterpret_cast<const sockaddr_in6*>(&address.storage)->sin6_addr;
  if (IN6_IS_ADDR_LOOPBACK(&ip)) return true;
  return IN6_IS_ADDR_V4MAPPED(&ip) && ip.s6_addr[12] == 127;
}

void setNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) throwErrno("fcntl(O_NONBLOCK)");
}

void setNoDelay(int fd) {
  int on = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) != 0) throwErrno("setsockopt(TCP_NODELAY)");
}

}  // namespace tcpfork

namespace tcpfork {

std::optional<AcceptQueue> acceptQueue(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0 || info.tcpi_state != TCP_LISTEN) return {};
  return AcceptQueue{info.tcpi_unacked, info.tcpi_sacked};
}

}  // namespace tcpfork
