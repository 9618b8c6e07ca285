#include "test/integration/agent_check.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>

#include "base/socket.h"

namespace tcpfork::test {

std::string agentCheck(const std::string& address, std::chrono::milliseconds timeout) {
  UniqueFd fd;
  try {
    fd = connectTcp(parseAddress(address));
  } catch (const std::exception&) {
    return "";
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string line;
  char buf[256];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, int(left.count())) <= 0) continue;
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      line.append(buf, size_t(n));
      continue;
    }
    return n == 0 ? line : "";
  }
}

int agentPortInLog(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"(agent check on [0-9.]+:(\d+))"))) return 0;
  return std::stoi(m[1]);
}

}  // namespace tcpfork::test
