// Text a handler module gives the server (its name, a counter's help, its
// log and init error messages, a client's bytes it logs) and text a worker
// writes into the stats segment (counter names and help, its exit reason)
// is not ours: it must not add a sample to /metrics, make Prometheus reject
// the scrape, break /status, start a line of the master's log or drive the
// operator's terminal. The test module's "evil_strings" and "fail_init_evil"
// options (test/modules/test_handler.c) bring the hostile text; a test
// writing into the segment stands in for a hostile process of the workers'
// user.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "stats/layout.h"
#include "stats/segment.h"
#include "test/integration/http_get.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/test_module.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

// What the test module's hostile strings look like once escaped.
constexpr const char* kForgedTail = R"(\r\x1b[2J\x1b]0;pwned\x07\x7f)";
std::string escapedForgery(const std::string& what) {
  return std::string(R"(\n[master 1] critical: forged by )") + what + kForgedTail;
}

// The lines of `log` that the logger did not start (every line it writes
// begins with the timestamp, the role and pid, and the level): what a
// newline inside a message makes.
std::vector<std::string> linesNotFromTheLogger(const std::string& log) {
  static const std::regex kPrefix(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[(master|check|worker\.\d+) \d+\] )"
                                  R"((trace|debug|info|warning|error|critical): .*)");
  std::vector<std::string> out;
  size_t start = 0;
  while (start < log.size()) {
    size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    std::string line = log.substr(start, end - start);
    if (!std::regex_match(line, kPrefix)) out.push_back(line);
    start = end + 1;
  }
  return out;
}

// Bytes that would act on a terminal or split a line: anything below 0x20
// but the newline, and DEL.
bool hasControlBytes(const std::string& text) {
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\n') || c == 0x7f) return true;
  }
  return false;
}

::testing::AssertionResult promtoolAccepts(const std::string& exposition) {
  std::string file = tempPath("metrics.txt");
  std::ofstream(file) << exposition;
  std::string log = tempPath("promtool.out");
  ChildProcess promtool({"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + file}, {}, log);
  auto status = promtool.waitExit(30s);
  if (!status || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return ::testing::AssertionFailure() << "promtool check metrics failed: " << readFile(log) << "\n" << exposition;
  }
  return ::testing::AssertionSuccess();
}

bool havePromtool() {
  if (::access("/usr/bin/promtool", X_OK) == 0) return true;
  std::cerr << "*** promtool (Debian package prometheus) is not installed: the exposition was not checked with it\n";
  return false;
}

TEST(ModuleStrings, HelpNameLogLinesAndClientBytesNeitherForgeASampleNorALogLine) {
  RunningMaster master(1, testModuleYaml("{evil_strings: true}"));
  ASSERT_TRUE(master.waitForLog("client said: hello", 10s)) << master.log();
  TestConnection client(master.port());
  client.send(submitFrame(1, "hi\n[master 1] critical: forged by a client\r\x1b[2J"));
  ASSERT_EQ(client.read(kAckBytes), submitAckFrame(1));
  ASSERT_TRUE(master.waitForLog("client sent: hi", 10s)) << master.log();

  std::string scrape = master.scrape();
  ASSERT_FALSE(scrape.empty());
  EXPECT_EQ(master.metric("tcp_server_handler_evil_total"), 0) << scrape;
  EXPECT_EQ(scrape.find("\nfake_injected_metric"), std::string::npos) << "a forged sample:\n" << scrape;
  EXPECT_FALSE(hasControlBytes(scrape)) << scrape;
  const std::string help =
      R"(Evil help, C:\\dir\nfake_injected_metric 12345\n# \\r\\x1b[2J\\x1b]0;pwned\\x07\\x7f\\xff)";
  EXPECT_NE(scrape.find("# HELP tcp_server_handler_evil_total " + help + "\n"), std::string::npos) << scrape;
  EXPECT_NE(scrape.find("# HELP tcp_server_worker_handler_evil_total " + help + " (this worker process).\n"),
            std::string::npos)
      << scrape;

  HttpResponse status = httpGet(master.metricsPort(), "/status");
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(nlohmann::json::parse(status.body)["handler"]["evil"], 0) << status.body;

  std::string log = master.log();
  EXPECT_EQ(linesNotFromTheLogger(log), std::vector<std::string>{}) << log;
  EXPECT_FALSE(hasControlBytes(log)) << log;
  const std::string name = "test" + escapedForgery("a module name");
  EXPECT_NE(log.find("handler module " + name + " (" + testModulePath() + ") loaded"), std::string::npos) << log;
  EXPECT_NE(log.find("[" + name + "] client said: hello" + escapedForgery("a log line")), std::string::npos) << log;
  EXPECT_NE(log.find("[" + name + R"(] client sent: hi\n[master 1] critical: forged by a client\r\x1b[2J)"),
            std::string::npos)
      << log;

  TCPFORK_REQUIRE(havePromtool(), "promtool (Debian package prometheus) not installed");
  EXPECT_TRUE(promtoolAccepts(scrape));
}

TEST(ModuleStrings, TcpforkTQuotesAFailedInitEscaped) {
  std::string config = tempPath("check.yaml");
  std::ofstream(config) << RunningMaster::baseYaml("tcpfork-strings-" + uniqueTag(), tempPath("check.pid"), 1) +
                               testModuleYaml("{fail_init_evil: true}");
  ToolRun check = runCommand({binary("tcpfork"), "-t", "-c", config}, 40s);
  EXPECT_EQ(check.exitCode, 1) << check.output;
  EXPECT_NE(check.output.find("handler.module: handler module " + testModulePath() + ": init failed: no database" +
                              escapedForgery("an init error")),
            std::string::npos)
      << check.output;
  EXPECT_FALSE(hasControlBytes(check.output)) << check.output;
  EXPECT_EQ(check.output.find("\n[master"), std::string::npos) << check.output;
}

// The new worker's fatal exit fails the reload, and the master quotes the
// reason the worker wrote into its slot.
TEST(ModuleStrings, AReloadQuotesAFailedInitEscaped) {
  RunningMaster master(1, testModuleYaml("{defer_every: 2}") + "worker_timeout: 60s\n");
  master.writeConfig(RunningMaster::baseYaml(master.name(), master.pidFile(), 1, master.profileDir()) +
                     testModuleYaml("{fail_init_evil: true}") + "worker_timeout: 60s\n");
  master.process().signal(SIGHUP);
  ASSERT_TRUE(master.waitForLog("reload failed", 20s)) << master.log();
  std::string log = master.log();
  std::string failure = log.substr(log.find("reload failed"));
  failure = failure.substr(0, failure.find('\n'));
  EXPECT_NE(failure.find("init failed: no database" + escapedForgery("an init error")), std::string::npos) << failure;
  EXPECT_NE(failure.find("generation 1 keeps serving"), std::string::npos) << failure;
  EXPECT_EQ(linesNotFromTheLogger(log), std::vector<std::string>{}) << log;
  EXPECT_FALSE(hasControlBytes(log)) << log;
  EXPECT_TRUE(master.roundTrip(5));
}

void writeCounter(stats::HandlerCounter& counter, std::string_view name, std::string_view help) {
  std::memset(&counter, 0, sizeof counter);
  std::memcpy(counter.name, name.data(), std::min(name.size(), sizeof counter.name));
  std::memcpy(counter.help, help.data(), std::min(help.size(), sizeof counter.help - 1));
  counter.value = 7;
}

// A process of the workers' user can write any bytes into the segment,
// whatever the worker's own checks: the master must not trust what it reads.
TEST(ModuleStrings, WhatAWorkerWritesIntoTheSegmentCannotBreakTheExpositionStatusOrLog) {
  RunningMaster master(1);
  std::set<pid_t> serving = master.servingPids();
  ASSERT_EQ(serving.size(), 1u);
  pid_t worker = *serving.begin();
  {
    UniqueFd fd = openSegmentAsAWorker(master.name());
    ASSERT_TRUE(fd) << std::strerror(errno);
    stats::StatsSegment segment = stats::StatsSegment::attach(master.name(), std::move(fd));
    stats::Slot* slot = nullptr;
    for (uint32_t i = 0; i < segment.slotCount() && !slot; ++i) {
      if (stats::load(segment.slot(i).pid) == uint64_t(worker)) slot = &segment.slot(i);
    }
    ASSERT_NE(slot, nullptr);
    const std::string forged = "\nfake_injected_metric 12345\n# \r\x1b[2J\xff";
    writeCounter(slot->handlerCounters[0], "evil_raw", "raw" + forged + "\\");
    writeCounter(slot->handlerCounters[1], "forged_name 1" + forged, "a name no worker of ours declares");
    writeCounter(slot->handlerCounters[2], "evil_raw", "the same name twice");
    writeCounter(slot->handlerCounters[3], "completions_dropped", "tcpfork's own");
    writeCounter(slot->handlerCounters[4], std::string(stats::kHandlerCounterNameBytes, 'a'), "no NUL");
    writeCounter(slot->handlerCounters[5], "\xff\xfe", "not UTF-8: JSON cannot carry it");
    stats::storeRelease(slot->handlerCounterCount, uint64_t(6));
    std::string reason = "init failed\n[master 1] critical: forged by an exit reason\r\x1b[2J";
    std::memcpy(slot->exitReason, reason.data(), reason.size());
  }

  std::string scrape = master.scrape();
  ASSERT_FALSE(scrape.empty());
  EXPECT_EQ(scrape.find("\nfake_injected_metric"), std::string::npos) << "a forged sample:\n" << scrape;
  EXPECT_EQ(scrape.find("forged_name"), std::string::npos) << scrape;
  EXPECT_EQ(scrape.find("tcp_server_handler_aaaa"), std::string::npos) << scrape;
  EXPECT_FALSE(hasControlBytes(scrape)) << scrape;
  EXPECT_EQ(master.metric("tcp_server_handler_evil_raw_total"), 7) << scrape;
  const std::string help = R"(raw\nfake_injected_metric 12345\n# \\r\\x1b[2J\\xff\\)";
  EXPECT_NE(scrape.find("# HELP tcp_server_handler_evil_raw_total " + help + "\n"), std::string::npos) << scrape;
  EXPECT_EQ(master.metric("tcp_server_handler_completions_dropped_total"), 0) << scrape;
  HttpResponse status = httpGet(master.metricsPort(), "/status");
  ASSERT_EQ(status.status, 200) << status.body;
  auto handler = nlohmann::json::parse(status.body)["handler"];
  EXPECT_EQ(handler, nlohmann::json({{"evil_raw", 7}})) << status.body;
  if (havePromtool()) {
    EXPECT_TRUE(promtoolAccepts(scrape));
  }

  // Its exit reason is quoted, and its counters folded, when it dies.
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(master.waitForLog("forged by an exit reason", 10s)) << master.log();
  ASSERT_TRUE(master.waitServing(1, 10s)) << master.log();
  std::string log = master.log();
  EXPECT_EQ(linesNotFromTheLogger(log), std::vector<std::string>{}) << log;
  EXPECT_FALSE(hasControlBytes(log)) << log;
  EXPECT_NE(log.find(R"(: init failed\n[master 1] critical: forged by an exit reason\r\x1b[2J)"), std::string::npos)
      << log;
  scrape = master.scrape();
  EXPECT_EQ(master.metric("tcp_server_handler_evil_raw_total"), 7) << scrape;
  EXPECT_EQ(scrape.find("forged_name"), std::string::npos) << scrape;
  EXPECT_FALSE(hasControlBytes(scrape)) << scrape;
  TCPFORK_REQUIRE(havePromtool(), "promtool (Debian package prometheus) not installed");
  EXPECT_TRUE(promtoolAccepts(scrape));
}

}  // namespace
}  // namespace tcpfork::test
