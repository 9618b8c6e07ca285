#include "test/integration/running_master.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>

#include "stats/segment.h"
#include "stats/segment_locator.h"
#include "test/integration/http_get.h"

namespace tcpfork::test {

uint64_t requestsReadByWorkers(const std::string& log) {
  uint64_t total = 0;
  std::regex line(R"(stopped: accepted=\d+ rejected=\d+ requests=(\d+))");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it) {
    total += std::stoull((*it)[1]);
  }
  return total;
}
void stopAndExpectNothingLost(RunningMaster& master, const ToolRun& run) {
  ASSERT_EQ(run.exitCode, 0) << run.output;
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(15s).has_value());
  EXPECT_EQ(run.report["connects_failed"], 0);
  EXPECT_EQ(run.report["connects_reset"], 0);
  EXPECT_EQ(run.report["errors_total"], 0);
  EXPECT_EQ(run.report["acked"].get<uint64_t>(), requestsReadByWorkers(master.log())) << master.log();
}

namespace {

// A key may appear once: extra YAML with its own `metrics:` map replaces ours
// (it must then set metrics.listen itself).
std::string withoutOwnMetrics(std::string base, const std::string& extraYaml) {
  const std::string own = "metrics:\n  listen: 127.0.0.1:0\n";
  if (extraYaml.find("metrics:") != std::string::npos) base.erase(base.find(own), own.size());
  return base;
}

}  // namespace

std::string RunningMaster::baseYaml(const std::string& name, const std::string& pidFile, unsigned workers,
                                    const std::string& profileDir) {
  std::string yaml = "name: " + name + "\nlisten: 127.0.0.1:0\npid_file: " + pidFile +
                     "\nworkers: " + std::to_string(workers) + "\nmetrics:\n  listen: 127.0.0.1:0\n";
  if (!profileDir.empty()) yaml += "profile:\n  dir: " + profileDir + "\n";
  return yaml;
}

void RunningMaster::writeConfig(const std::string& yaml) const {
  std::ofstream out(configPath_, std::ios::trunc);
  out << yaml;
}

RunningMaster::RunningMaster(unsigned workers, const std::string& extraYaml, const std::vector<std::string>& extraArgs)
    : name_(uniqueName()),
      configPath_(tempPath("tcpfork.yaml")),
      pidFile_(tempPath("tcpfork.pid")),
      logPath_(tempPath("master.log")),
      profileDir_(tempPath("profiles")),
      process_((writeConfig(withoutOwnMetrics(baseYaml(name_, pidFile_, workers,
                                                       extraYaml.find("profile:") == std::string::npos ? profileDir_ : ""),
                                              extraYaml) +
                            extraYaml),
                [&] {
                  std::vector<std::string> argv = {binary("tcpfork"), "-c", configPath_};
                  argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
                  return argv;
                }()),
               {}, logPath_) {
  if (!waitForLog("ready:", 15s) || !process_.running()) {
    throw std::runtime_error("tcpfork master did not become ready; its log:\n" + log());
  }
  LoggedPorts ports = portsInLog(log());
  port_ = ports.listen;
  metricsPort_ = ports.metrics;
}

LoggedPorts portsInLog(const std::string& log) {
  std::smatch m;
  LoggedPorts ports;
  if (!std::regex_search(log, m, std::regex(R"(workers on 127\.0\.0\.1:(\d+))"))) {
    throw std::runtime_error("no listening port in the master's log:\n" + log);
  }
  ports.listen = std::stoi(m[1]);
  if (!std::regex_search(log, m, std::regex(R"(metrics on http://127\.0\.0\.1:(\d+)/metrics)"))) {
    throw std::runtime_error("no metrics address in the master's log:\n" + log);
  }
  ports.metrics = std::stoi(m[1]);
  return ports;
}

std::string RunningMaster::scrape() const {
  HttpResponse r = httpGet(metricsPort_, "/metrics");
  return r.status == 200 ? r.body : std::string();
}

double RunningMaster::metric(const std::string& series) const { return metricValue(scrape(), series); }

std::set<pid_t> workerPids(const std::string& name) {
  std::set<pid_t> pids;
  try {
    auto segment = stats::StatsSegment::openReadOnly(name);
    for (uint32_t i = 0; i < segment.slotCount(); ++i) {
      const auto& slot = segment.slot(i);
      auto pid = pid_t(stats::load(slot.pid));
      if (pid > 0 && stats::load(slot.state) != uint64_t(stats::WorkerState::kEmpty)) pids.insert(pid);
    }
  } catch (const std::exception&) {
  }
  return pids;
}

void killMasterAndWorkers(ChildProcess& master, const std::string& name) {
  std::set<pid_t> workers = workerPids(name);
  master.signal(SIGKILL);
  master.waitExit(5s);
  for (pid_t pid : workers) ::kill(pid, SIGKILL);
  stats::StatsSegment::remove(name);
}

UniqueFd openSegmentAsAWorker(const std::string& name) {
  stats::SegmentLocator::Where where = stats::SegmentLocator::find(name);
  return UniqueFd(
      ::open(("/proc/" + std::to_string(where.pid) + "/fd/" + std::to_string(where.fd)).c_str(), O_RDWR | O_CLOEXEC));
}

RunningMaster::~RunningMaster() {
  // Every test that runs a master also checks the supervisor's state machine:
  // a transition its diagram lacks is logged as a bug.
  EXPECT_EQ(count(log(), "an edge the state diagram lacks"), 0u) << log();
  // Draining workers too: a test may have SIGSTOPped one.
  killMasterAndWorkers(process_, name_);
  std::error_code ec;
  std::filesystem::remove_all(profileDir_, ec);
}

bool RunningMaster::waitForLog(const std::string& text, std::chrono::milliseconds timeout, size_t times) const {
  return waitUntil([&] { return count(log(), text) >= times; }, timeout);
}

std::set<pid_t> RunningMaster::servingPids() const {
  std::set<pid_t> pids;
  auto segment = stats::StatsSegment::openReadOnly(name_);
  for (uint32_t i = 0; i < segment.slotCount(); ++i) {
    const auto& slot = segment.slot(i);
    if (stats::load(slot.state) == uint64_t(stats::WorkerState::kServing)) pids.insert(pid_t(stats::load(slot.pid)));
  }
  return pids;
}

uint64_t RunningMaster::generation() const {
  return stats::load(stats::StatsSegment::openReadOnly(name_).header().generation);
}

bool RunningMaster::waitServing(size_t count, std::chrono::milliseconds timeout) const {
  return waitUntil(
      [&] {
        try {
          auto segment = stats::StatsSegment::openReadOnly(name_);
          uint64_t generation = stats::load(segment.header().generation);
          size_t serving = 0;
          size_t others = 0;
          for (uint32_t i = 0; i < segment.slotCount(); ++i) {
            const auto& slot = segment.slot(i);
            if (stats::load(slot.state) == uint64_t(stats::WorkerState::kEmpty)) continue;
            bool current = stats::load(slot.generation) == generation &&
                           stats::load(slot.state) == uint64_t(stats::WorkerState::kServing);
            (current ? serving : others)++;
          }
          return serving == count && others == 0;
        } catch (const std::exception&) {
          return false;
        }
      },
      timeout);
}

::testing::AssertionResult RunningMaster::roundTrip(uint64_t id) const {
  try {
    TestConnection c(port_, 2s);
    c.send(submitFrame(id));
    errno = 0;
    auto ack = c.read(kAckBytes);
    if (ack.size() < kAckBytes) {
      return ::testing::AssertionFailure() << "request " << id << ": " << ack.size() << " of 14 ack bytes, then "
                                           << (errno ? std::strerror(errno) : "EOF");
    }
    if (ack != submitAckFrame(id)) return ::testing::AssertionFailure() << "request " << id << ": wrong ack";
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "request " << id << " on port " << port_ << ": " << e.what();
  }
}

}  // namespace tcpfork::test
