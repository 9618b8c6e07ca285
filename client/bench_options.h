#pragma once
// What `tcpfork-client bench` was asked to do, and what it measured.

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "client/histogram.h"

namespace tcpfork::client {

struct BenchOptions {
  std::string addr = "127.0.0.1:8888";
  unsigned connections = 100;
  unsigned window = 1;            // requests in flight per connection
  double durationSeconds = 10;    // sending stops after this, or once `requests` are sent
  uint64_t requests = 0;          // total to send; 0 = no limit
  size_t payloadBytes = 16;
  unsigned threads = 1;
  double rate = 0;                // requests/s over all connections; 0 = closed loop
  double drainSeconds = 5;        // how long to wait for owed acks after sending stops
  std::string jsonPath;
  bool progress = true;
};

// Every way an ack can be wrong. Names are the JSON keys. A result of 255
// (busy) is not among them: it is counted apart, as an answer.
enum class AckError : uint8_t { kMalformed, kWrongCommand, kWrongId, kNonZeroResult };
inline constexpr size_t kAckErrorCount = 4;
constexpr std::string_view ackErrorName(AckError e) {
  constexpr std::array<std::string_view, kAckErrorCount> kNames = {"malformed_frame", "wrong_command", "wrong_id",
                                                                   "nonzero_result"};
  return kNames[static_cast<size_t>(e)];
}

struct BenchResult {
  double elapsedSeconds = 0;        // whole run, draining included
  double measuredSeconds = 0;       // the span throughput is measured over
  uint64_t measuredAcks = 0;        // acks received in that span
  uint64_t measuredOk = 0;          // of those, result 0
  uint64_t sent = 0;
  uint64_t acked = 0;
  uint64_t busy = 0;                // acks with result 255, not errors
  std::array<uint64_t, kAckErrorCount> errors{};
  uint64_t connectsFailed = 0;
  // Of those, connects the server reset after the handshake completed, before
  // connect() returned (a listening socket closed with the connection queued).
  uint64_t connectsReset = 0;
  uint64_t connectionsClosedByServer = 0;
  uint64_t unackedOnClosedConnections = 0;
  uint64_t unackedAtEnd = 0;
  HistogramSnapshot latencyAdmittedNs;  // acks with a result other than 255
  HistogramSnapshot latencyBusyNs;      // acks with result 255

  // Every ack.
  HistogramSnapshot latencyNs() const {
    HistogramSnapshot all = latencyAdmittedNs;
    return all += latencyBusyNs;
  }

  uint64_t totalErrors() const {
    uint64_t n = 0;
    for (uint64_t e : errors) n += e;
    return n;
  }
  double acksPerSecond() const { return measuredSeconds > 0 ? measuredAcks / measuredSeconds : 0; }
  // Result-0 acks per second: what the server did, not what it turned away.
  double goodputPerSecond() const { return measuredSeconds > 0 ? measuredOk / measuredSeconds : 0; }
};

}  // namespace tcpfork::client
