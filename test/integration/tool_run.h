#pragma once
// Running the project's command-line tools from tests: to completion, or a
// bench in the background while the test does something to the server.

#include <nlohmann/json.hpp>

#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "test/integration/process.h"

namespace tcpfork::test {

struct ToolRun {
  int exitCode = -1;  // 128 + signal when killed; -1 when it did not finish
  std::string output;  // stdout and stderr
  nlohmann::json report;  // the --json report, when asked for
};

// Runs build/bin/`tool` with `args` and waits (bounded) for it.
ToolRun runTool(const std::string& tool, const std::vector<std::string>& args, std::chrono::milliseconds timeout = 60s);

// tcpfork-client with `args`; with `json`, adds --json and parses the report.
ToolRun runClient(const std::vector<std::string>& args, bool json = false);

// tcpfork-client bench (or another subcommand: connects) started now,
// collected by finish().
class BackgroundClient {
 public:
  explicit BackgroundClient(const std::vector<std::string>& args, const std::string& subcommand = "bench");
  ToolRun finish(std::chrono::milliseconds timeout = 60s);
  // SIGINT: the bench stops sending, collects owed acks and reports.
  void interrupt() { process_->signal(SIGINT); }

 private:
  std::string logPath_;
  std::string jsonPath_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace tcpfork::test

namespace tcpfork::test {

// Runs any command (argv[0] an absolute path) and waits (bounded) for it.
ToolRun runCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 60s);

}  // namespace tcpfork::test
