#pragma once
// RunningWorker: a real tcpfork-worker on an ephemeral loopback port, handed
// its listening socket the way the master does (--listen-fd), and known ready
// once a request on it has been acked.

#include <string>
#include <vector>

#include "test/integration/process.h"

namespace tcpfork::test {

class RunningWorker {
 public:
  explicit RunningWorker(const std::vector<std::string>& extraArgs = {});

  int port() const { return port_; }
  ChildProcess& process() { return process_; }
  std::string log() const { return readFile(logPath_); }

 private:
  UniqueFd listener_;
  int port_;
  std::string logPath_;
  ChildProcess process_;
};

}  // namespace tcpfork::test
