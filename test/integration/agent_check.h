#pragma once
// The agent check as a load balancer asks it (master/agent/agent_port.h):
// connect, read the one line until the master closes.
#include <chrono>
#include <string>

namespace tcpfork::test {

// What the agent at `address` ("127.0.0.1:P") answered, the newline
// included; empty when the connect failed or no end came within `timeout`.
std::string agentCheck(const std::string& address, std::chrono::milliseconds timeout = std::chrono::seconds(2));

// The agent port a master logs at start ("agent check on ADDRESS:P"); 0 when absent.
int agentPortInLog(const std::string& log);

}  // namespace tcpfork::test
