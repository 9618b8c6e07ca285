#include "test/integration/tcp_sockets.h"

#include <cstdio>
#include <fstream>
#include <string>

namespace tcpfork::test {

std::vector<TcpSocket> tcpSocketsOnPort(int port) {
  std::vector<TcpSocket> sockets;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    unsigned localPort = 0, remotePort = 0, state = 0;
    unsigned long long tx = 0, rx = 0;
    // "sl local_address rem_address st tx_queue:rx_queue ...", addresses as hex IP:port.
    if (std::sscanf(line.c_str(), " %*u: %*8X:%4X %*8X:%4X %2X %llX:%llX", &localPort, &remotePort, &state, &tx,
                    &rx) != 5) {
      continue;
    }
    if (int(localPort) == port) sockets.push_back({int(localPort), int(remotePort), state, tx, rx});
  }
  return sockets;
}

std::optional<TcpSocket> serverEnd(int serverPort, int clientPort) {
  for (const TcpSocket& s : tcpSocketsOnPort(serverPort)) {
    if (s.remotePort == clientPort) return s;
  }
  return std::nullopt;
}

}  // namespace tcpfork::test
