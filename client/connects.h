#pragma once
// `tcpfork-client connects`: a connect storm. Each of --concurrency threads
// opens a connection, sends one Submit, waits for its ack, checks it and
// closes, over and over for --duration; what it reports is what a new client
// feels: the time from connect() to the first ack, and every connect that
// failed (refused, reset, or answered by nobody within --timeout).

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "client/histogram.h"

namespace tcpfork::client {

struct ConnectsOptions {
  std::string addr = "127.0.0.1:8888";
  unsigned concurrency = 8;
  double durationSeconds = 5;
  double timeoutSeconds = 10;  // per connection, connect to ack
  unsigned slowMs = 100;       // a connection acked later than this counts as slow
  std::string jsonPath;
  bool progress = true;
};

struct ConnectsResult {
  double seconds = 0;
  uint64_t acked = 0;
  uint64_t connectFailed = 0;  // connect() itself failed
  uint64_t reset = 0;          // connected, then closed or reset before the ack
  uint64_t unanswered = 0;     // connected, no ack within the timeout
  uint64_t wrongAcks = 0;
  uint64_t slow = 0;           // acked, later than slowMs
  std::map<std::string, uint64_t> errors;  // by what failed: "connect: Connection refused"
  HistogramSnapshot latencyUs;             // connect() to ack, acked connections only

  uint64_t failed() const { return connectFailed + reset + unanswered; }
};

ConnectsResult runConnects(const ConnectsOptions& options, const std::atomic<bool>& stop);
void printConnects(FILE* out, const ConnectsOptions& options, const ConnectsResult& result);
nlohmann::json connectsJson(const ConnectsOptions& options, const ConnectsResult& result);

}  // namespace tcpfork::client
