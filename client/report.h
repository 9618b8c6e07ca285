#pragma once
// How the bench shows what it measured: a progress line per second, a final
// text report and a JSON document (the same numbers, for scripts).

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "client/bench_options.h"
#include "client/histogram.h"

namespace tcpfork::client {

struct Progress {
  uint64_t sent = 0;
  uint64_t acked = 0;
  uint64_t busy = 0;
  uint64_t errors = 0;
  HistogramSnapshot latencyNs;
};

void printProgressLine(FILE* out, double elapsedSeconds, const Progress& now, const Progress& previous);
void printReport(FILE* out, const BenchOptions& options, const BenchResult& result);
nlohmann::json toJson(const BenchOptions& options, const BenchResult& result);
// "812 us", "1.54 ms", "2.10 s".
std::string formatNanos(uint64_t ns);

}  // namespace tcpfork::client
