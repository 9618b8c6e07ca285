// A step of the wall clock, as an NTP step or a VM resume makes one, seen
// through a clock the test controls: the master and its workers run with
// test/clock_step/clock_step.c preloaded, which moves their CLOCK_REALTIME
// (and the kernel's receive stamps of what arrives after) by an hour, a
// moment after they start. The host's clock is never touched.
//
// Before, requests in flight across a forward step were counted an hour
// long (+Inf, and 692,240 s added to the histogram's sum), and a backward
// step made worker uptimes negative and the master's 0 or an hour, for good.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "test/integration/http_get.h"
#include "test/integration/process.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

// The environment of the master started while it lives (its workers inherit
// it); the test process's own clock stays as it is.
class SteppedClock {
 public:
  SteppedClock(int stepSeconds, int afterMs) {
    set("LD_PRELOAD", std::string(TCPFORK_TEST_MODULE_DIR) + "/clock_step.so");
    set("TCPFORK_TEST_CLOCK_STEP_S", std::to_string(stepSeconds));
    set("TCPFORK_TEST_CLOCK_STEP_AFTER_MS", std::to_string(afterMs));
    // Under AddressSanitizer: a preloaded library comes before its runtime.
    const char* asan = ::getenv("ASAN_OPTIONS");
    set("ASAN_OPTIONS", std::string(asan ? asan : "") + (asan && *asan ? ":" : "") + "verify_asan_link_order=0");
  }
  // Once the master has started: nothing else the test runs is stepped.
  void restore() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
    saved_.clear();
  }
  ~SteppedClock() { restore(); }

 private:
  void set(const std::string& name, const std::string& value) {
    const char* old = ::getenv(name.c_str());
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// The largest finite bucket of a histogram and its +Inf bucket, from a scrape.
std::pair<double, double> topBuckets(const std::string& scrape, const std::string& histogram) {
  double largestLe = -1, largest = -1, inf = -1;
  std::istringstream lines(scrape);
  std::string line;
  const std::string prefix = histogram + "_bucket{le=\"";
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    std::string le = line.substr(prefix.size(), line.find('"', prefix.size()) - prefix.size());
    double value = std::stod(line.substr(line.rfind(' ') + 1));
    if (le == "+Inf") {
      inf = value;
    } else if (std::stod(le) > largestLe) {
      largestLe = std::stod(le);
      largest = value;
    }
  }
  return {largest, inf};
}

TEST(ClockStep, RequestsInFlightAcrossAForwardStepKeepTheirTrueDuration) {
  SteppedClock clock(3600, 1500);
  RunningMaster master(1);
  clock.restore();
  ToolRun run = runClient({"bench", "--addr", addr(master.port()), "-c", "8", "-w", "256", "-d", "4", "-q"}, true);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(master.waitForLog("was stepped by +3600", 5s)) << master.log();
  std::string scrape = master.scrape();
  const std::string histogram = "tcp_server_request_duration_seconds";
  auto [largest, inf] = topBuckets(scrape, histogram);
  EXPECT_GT(inf, 100'000) << scrape;
  EXPECT_EQ(largest, inf) << "requests counted past the largest bucket (hours long)";
  double sum = metricValue(scrape, histogram + "_sum");
  double count = metricValue(scrape, histogram + "_count");
  EXPECT_LT(sum / count, 1.0) << "mean request duration " << sum / count << " s";
}

TEST(ClockStep, UptimesStayTrueAcrossABackwardStep) {
  SteppedClock clock(-3600, 1000);
  RunningMaster master(2);
  clock.restore();
  // Until both the master and its workers have been stepped (1 s after each
  // started) and then some.
  nlohmann::json status;
  bool up = waitUntil(
      [&] {
        HttpResponse r = httpGet(master.metricsPort(), "/status");
        if (r.status != 200) return false;
        status = nlohmann::json::parse(r.body);
        return status["master_uptime_s"].get<double>() >= 2.5;
      },
      20s);
  EXPECT_TRUE(up) << "master_uptime_s stayed at " << status.dump();
  EXPECT_LT(status["master_uptime_s"].get<double>(), 600) << status.dump();
  ASSERT_EQ(status["workers"].size(), 2u) << status.dump();
  for (const auto& w : status["workers"]) {
    EXPECT_GE(w["uptime_s"].get<double>(), 1.0) << status.dump();
    EXPECT_LT(w["uptime_s"].get<double>(), 600) << status.dump();
  }
  // tcpfork-stats, which computed its uptime column the same way.
  ToolRun stats = runTool("tcpfork-stats", {"--name", master.name(), "--once"}, 10s);
  EXPECT_EQ(stats.exitCode, 0) << stats.output;
  EXPECT_EQ(stats.output.find("-59m"), std::string::npos) << stats.output;
}

}  // namespace
}  // namespace tcpfork::test
