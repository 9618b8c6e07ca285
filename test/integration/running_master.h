#pragma once
// RunningMaster: a real `tcpfork` master with its own config file, pidfile,
// log and stats segment name, serving on an ephemeral loopback port; ready
// once it logs that every worker serves. Killed (by pid) with its workers
// when the test ends.

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "test/integration/process.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {

// Pids of the workers in the stats segment `name`, in whatever state; empty
// when the segment is gone.
std::set<pid_t> workerPids(const std::string& name);

// SIGKILLs `master`, then by pid the workers its stats segment `name` listed
// (they die with it by PDEATHSIG, but one a test stopped keeps that SIGTERM
// pending forever), and removes the segment, which a killed master cannot.
void killMasterAndWorkers(ChildProcess& master, const std::string& name);

// Instance `name`'s stats segment as a worker maps it: read-write, through
// the descriptor of the master that holds it (/proc/PID/fd/N); invalid, with
// errno set, when that cannot be opened.
UniqueFd openSegmentAsAWorker(const std::string& name);

// Sum of "requests=N" over the workers' exit lines in a master's log: what
// the server read, so what a client must have had acked.
uint64_t requestsReadByWorkers(const std::string& log);

class RunningMaster;

// The ports a master logs once it serves ("workers on 127.0.0.1:P",
// "metrics on http://127.0.0.1:M/metrics"). Throws, quoting the log, when
// either is missing.
struct LoggedPorts {
  int listen = 0;
  int metrics = 0;
};
LoggedPorts portsInLog(const std::string& log);

// A bench run across reloads or recycles, checked once the master has
// stopped gracefully (QUIT): the run finished, no connect failed or was
// reset, no ack was wrong, and the client got exactly the acks for the
// requests the workers read (what a draining worker had not read is the
// client's to resend).
void stopAndExpectNothingLost(RunningMaster& master, const ToolRun& run);

class RunningMaster {
 public:
  // `extraYaml` is appended to a config that sets name, listen, pid_file and workers.
  explicit RunningMaster(unsigned workers = 2, const std::string& extraYaml = "",
                         const std::vector<std::string>& extraArgs = {});
  ~RunningMaster();

  int port() const { return port_; }
  int metricsPort() const { return metricsPort_; }
  // GET /metrics, as text (empty when the scrape failed).
  std::string scrape() const;
  // One series' value from a fresh scrape (-1 when absent).
  double metric(const std::string& series) const;
  const std::string& name() const { return name_; }
  const std::string& configPath() const { return configPath_; }
  const std::string& pidFile() const { return pidFile_; }
  ChildProcess& process() { return process_; }
  std::string log() const { return readFile(logPath_); }
  // Waits until `text` appears in the log at least `times` times.
  bool waitForLog(const std::string& text, std::chrono::milliseconds timeout, size_t times = 1) const;

  // Pids of workers in state "serving", read from the stats segment.
  std::set<pid_t> servingPids() const;
  uint64_t generation() const;
  // Waits until exactly `count` workers of the current generation serve.
  bool waitServing(size_t count, std::chrono::milliseconds timeout) const;
  // One request, one ack, on a new connection.
  // One Submit on a fresh connection, acked with the matching SubmitAck; on
  // failure, says what went wrong.
  ::testing::AssertionResult roundTrip(uint64_t id) const;

  void writeConfig(const std::string& yaml) const;
  // With `profileDir`, also sets profile.dir (tests keep profiles out of /tmp/<name>_profile).
  static std::string baseYaml(const std::string& name, const std::string& pidFile, unsigned workers,
                              const std::string& profileDir = "");
  const std::string& profileDir() const { return profileDir_; }

 private:
  std::string name_;
  std::string configPath_;
  std::string pidFile_;
  std::string logPath_;
  std::string profileDir_;
  ChildProcess process_;
  int port_ = 0;
  int metricsPort_ = 0;
};

}  // namespace tcpfork::test
