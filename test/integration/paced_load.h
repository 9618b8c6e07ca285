#pragma once
// PacedLoad: open-loop load on a server from a few connections, each with a
// thread of its own that sends a burst of Submits every few milliseconds on
// a fixed schedule (whether or not the acks have come) and reads every ack,
// checking that each carries the ID of the next request on its connection.
// For the overload tests: it tells the busy acks (255) from the served ones
// (0) and times the served ones from their burst's scheduled send, as a
// user with a deadline sees them.

#include <chrono>
#include <memory>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace tcpfork::test {

struct PacedLoadResult {
  uint64_t sent = 0;
  uint64_t ok = 0;        // result 0
  uint64_t busy = 0;      // result 255
  uint64_t other = 0;     // any other result
  uint64_t misordered = 0;  // an ack whose ID or command was not the next request's
  uint64_t missing = 0;   // requests without an ack when the connection ended
  std::string problem;    // the first thing that went wrong (a connection error, a bad ack)
  // IDs (formatId numbers) of the requests acked 0 and 255.
  std::vector<uint64_t> okIds;
  std::vector<uint64_t> busyIds;
  // Latency of each served (0) ack, from its burst's scheduled send, sorted.
  std::vector<uint64_t> okLatencyNs;
  std::vector<uint64_t> busyLatencyNs;

  // The q-quantile (0..1) of `sorted`; 0 when empty.
  static uint64_t quantile(const std::vector<uint64_t>& sorted, double q);
  std::string summary() const;
};

class PacedLoad {
 public:
  // `rate` requests/s over all `connections`, for `duration`, then at most
  // `drain` more to collect the acks owed; each request's payload is
  // `payload`; connection c numbers its requests from
  // (c + 1) * 10,000,000 + `idBase`.
  PacedLoad(int port, unsigned connections, double rate, std::chrono::milliseconds duration,
            std::chrono::milliseconds drain, std::string payload = "paced", uint64_t idBase = 0);
  ~PacedLoad();
  PacedLoad(const PacedLoad&) = delete;
  PacedLoad& operator=(const PacedLoad&) = delete;

  // Waits for every connection to have sent and collected its acks, and
  // sums what they saw.
  PacedLoadResult finish();

 private:
  struct Connection;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<std::thread> threads_;
};

}  // namespace tcpfork::test
