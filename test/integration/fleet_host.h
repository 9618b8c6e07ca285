#pragma once
// FleetHost: one host of a test fleet, a tcpfork master on its own loopback
// address 127.0.0.N with reserved service, metrics and agent ports, so that
// it comes back on the same addresses after a restart or a binary upgrade.
// Its masters are the test's children, or after a binary upgrade its
// adoptees (the test process must be a subreaper, PR_SET_CHILD_SUBREAPER);
// every one is killed by pid with its workers when the host is destroyed.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "test/integration/loopback_port.h"
#include "test/integration/process.h"

namespace tcpfork::test {

class FleetHost {
 public:
  FleetHost(int n, unsigned workers);
  ~FleetHost() { kill(); }
  FleetHost(const FleetHost&) = delete;
  FleetHost& operator=(const FleetHost&) = delete;

  // Whether the three ports could be reserved on 127.0.0.N.
  bool reserved() const { return service_.port && metrics_.port && agent_.port; }
  std::string serviceAddress() const { return ip_ + ":" + std::to_string(service_.port); }
  std::string metricsAddress() const { return ip_ + ":" + std::to_string(metrics_.port); }
  std::string agentAddress() const { return ip_ + ":" + std::to_string(agent_.port); }
  int agentPort() const { return agent_.port; }
  pid_t masterPid() const { return pid_; }
  const std::string& name() const { return name_; }
  std::string log() const { return readFile(logPath_); }
  std::set<pid_t> workers() const;

  // Starts a master and waits until it is ready.
  ::testing::AssertionResult start();
  // QUIT, and waits until the master has exited.
  ::testing::AssertionResult quit();
  // USR2; once the new master serves, QUIT to the old one and waits until it
  // has exited.
  ::testing::AssertionResult upgrade();
  // SIGKILL to the master and every worker, as a crash of the machine would.
  void kill();

 private:
  bool reap(pid_t pid, std::chrono::milliseconds timeout);

  std::string ip_;
  std::string name_;
  std::string configPath_;
  std::string pidFile_;
  std::string logPath_;
  BoundPort service_;
  BoundPort metrics_;
  BoundPort agent_;
  std::vector<std::unique_ptr<ChildProcess>> children_;
  std::set<pid_t> adopted_;
  pid_t pid_ = 0;
};

}  // namespace tcpfork::test
