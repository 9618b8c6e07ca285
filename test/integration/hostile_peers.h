#pragma once
// What the hostile-client tests need beside the fixture: a well-behaved
// bystander (the real bench) that must see full service, a sampler of the
// workers' peak RSS, many non-blocking client connections driven by one poll
// loop, and a scoped descriptor limit. All of it lives in the test process.

#include <sys/resource.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <span>
#include <thread>
#include <vector>

#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {

// tcpfork-client bench in open loop (steady, light load, so a stall shows as
// latency and missing acks rather than as a lower offered rate), started
// before the hostile traffic and stopped after it.
class Bystander {
 public:
  static constexpr unsigned kConnections = 4;
  static constexpr unsigned kRate = 5000;  // requests/s over all its connections

  // Returns once the master counts the bystander's connections (nothing else may be open).
  explicit Bystander(const RunningMaster& master);
  // SIGINT: it stops sending, collects what it is owed and reports (the JSON).
  nlohmann::json stop();

 private:
  BackgroundClient bench_;
};

// Full service: every request acked, no wrong ack, no failed connect, no
// connection closed by the server, and at least a tenth of the offered rate
// (a floor generous enough for a loaded 2-core machine: it catches a
// bystander left unserved, not a slow one).
void expectFullService(const nlohmann::json& report);
// "sent 1234 acked 1234 errors 0 ... p99 1.2 ms max 3.4 ms" for the log.
std::string summary(const nlohmann::json& report);

// Samples the RSS of `pids` every 10 ms on its own thread until destroyed;
// peak() is the highest single-process value seen.
class RssPeak {
 public:
  explicit RssPeak(std::set<pid_t> pids);
  ~RssPeak();
  size_t peak() const { return peak_.load(); }

 private:
  std::atomic<size_t> peak_{0};
  std::jthread sampler_;
};

// Raises this process's soft descriptor limit to its hard limit for one test
// (children started meanwhile inherit it) and puts it back after. A hard
// limit below what the test needs is raised too where the process may
// (CAP_SYS_RESOURCE, which root usually holds).
class DescriptorLimit {
 public:
  DescriptorLimit() = default;
  ~DescriptorLimit();
  DescriptorLimit(const DescriptorLimit&) = delete;
  DescriptorLimit& operator=(const DescriptorLimit&) = delete;
  // False when the hard limit is below `needed` and could not be raised.
  bool raiseFor(rlim_t needed);
  rlim_t hard() const { return saved_.rlim_max; }

 private:
  rlimit saved_{};
  bool raised_ = false;
};

// One non-blocking client connection driven by runPeers(): it sends `first`;
// once that is out and `awaitBytes` have arrived it sends `second`; once
// everything is out it half-closes when `shutWrite`. It stops sending when the
// server closes, and keeps every byte it received.
struct ScriptedPeer {
  std::vector<std::byte> first;
  size_t awaitBytes = 0;
  std::vector<std::byte> second;
  bool shutWrite = false;

  UniqueFd fd;
  size_t sent = 0;  // of first, then of second
  bool onSecond = false;
  std::vector<std::byte> received;
  bool closed = false;  // EOF or reset seen
  bool reset = false;
  std::chrono::steady_clock::duration closedAfter{};  // since runPeers() started
};

// Connects every peer (blocking connects), then drives them all until each has
// seen the server close or `timeout` passes. Returns how many saw the close.
size_t runPeers(std::vector<ScriptedPeer>& peers, int port, std::chrono::milliseconds timeout);

// A blocking loopback connect to `port` with SO_RCVBUF set first when
// `receiveBuffer` > 0 (which also stops the kernel growing it). Throws
// std::system_error with the errno.
UniqueFd connectLoopback(int port, int receiveBuffer = 0);

// `count` Submits with consecutive ids from `firstId`, and their acks.
std::vector<std::byte> submits(uint64_t firstId, size_t count, std::string_view payload = "hello");
std::vector<std::byte> submitAcks(uint64_t firstId, size_t count);

}  // namespace tcpfork::test
