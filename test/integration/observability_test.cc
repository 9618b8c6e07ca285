// What /metrics shows when a worker stalls (DESIGN.md, "Metrics"): request
// durations counted from the kernel's receive stamp, so a request that waits
// behind a stopped loop is counted as late as its client saw it; the loop
// lag and heartbeat age of the stopped worker; connections queued on its
// listener; and a deferred module ack timed to its send.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "protocol/codec.h"
#include "test/integration/http_get.h"
#include "test/integration/running_master.h"
#include "test/integration/test_module.h"
#include "test/integration/tool_run.h"
#include "test/integration/worker_slot.h"

namespace tcpfork::test {
namespace {

// The pid of worker `index` in a scrape (0 when absent).
pid_t workerPid(const std::string& scrape, int index) {
  std::smatch m;
  std::regex series("tcp_server_worker_heartbeat_age_seconds\\{generation=\"\\d+\",pid=\"(\\d+)\",worker=\"" +
                    std::to_string(index) + "\"\\}");
  return std::regex_search(scrape, m, series) ? pid_t(std::stol(m[1])) : 0;
}

std::string workerLabels(const std::string& scrape, int index) {
  return "generation=\"1\",pid=\"" + std::to_string(workerPid(scrape, index)) + "\",worker=\"" +
         std::to_string(index) + "\"";
}

// Observations above 1 s in histogram `name` (its +Inf bucket less le="1");
// `labels` are the series' own, without le.
double above1s(const std::string& scrape, const std::string& name, const std::string& labels = "") {
  std::string prefix = name + "_bucket{" + (labels.empty() ? "" : labels + ",");
  return metricValue(scrape, prefix + "le=\"+Inf\"}") - metricValue(scrape, prefix + "le=\"1\"}");
}

TEST(Observability, AStoppedWorkerShowsInLatencyLagHeartbeatAndItsAcceptQueue) {
  RunningMaster master(2);
  std::string first = master.scrape();
  pid_t stopped = workerPid(first, 0);
  ASSERT_GT(stopped, 0) << first;
  const std::string labels = workerLabels(first, 0);
  const std::string queue0 = "tcp_server_listen_queue_length{listen=\"127.0.0.1:" + std::to_string(master.port()) +
                             "\",worker=\"0\"}";

  // Request/response on 20 connections: about half of them are worker 0's.
  BackgroundClient bench({"--addr", addr(master.port()), "-c", "20", "-w", "1", "-d", "60", "-q"});
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_req_recv_total") > 1000; }, 20s)) << master.scrape();
  EXPECT_EQ(above1s(master.scrape(), "tcp_server_request_duration_seconds"), 0) << master.scrape();

  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  // New connections: the kernel completes their handshakes on both
  // listeners; the stopped worker's wait in its accept queue.
  std::vector<std::unique_ptr<TestConnection>> queued;
  for (int i = 0; i < 32; ++i) queued.push_back(std::make_unique<TestConnection>(master.port(), 10s));
  std::string during;
  bool seenQueued = waitUntil(
      [&] {
        during = master.scrape();
        return metricValue(during, queue0) >= 1;
      },
      10s);
  // The stall lasts until the master has seen the heartbeat 2 s old.
  bool seenStale = waitUntil(
      [&] {
        during = master.scrape();
        return metricValue(during, "tcp_server_worker_heartbeat_age_seconds{" + labels + "}") >= 2.0;
      },
      15s);
  double queuedDuring = metricValue(during, queue0);
  double limit = metricValue(during, "tcp_server_listen_queue_limit{listen=\"127.0.0.1:" +
                                         std::to_string(master.port()) + "\",worker=\"0\"}");
  double ageDuring = metricValue(during, "tcp_server_worker_heartbeat_age_seconds{" + labels + "}");
  // tcpfork-stats, from the segment, shows the same age in its beat column,
  // and the worker as stalled (its heartbeat past steering.stale_after).
  ToolRun table = runTool("tcpfork-stats", {"--name", master.name(), "--once"});
  ASSERT_EQ(::kill(stopped, SIGCONT), 0);
  EXPECT_EQ(table.exitCode, 0) << table.output;
  std::smatch row;
  bool rowFound = std::regex_search(table.output, row,
                                    std::regex("\\n +0 +1 +" + std::to_string(stopped) + " +stalled +\\S+ +([0-9.]+)(m?s) "));
  ASSERT_TRUE(rowFound) << table.output;
  EXPECT_EQ(row[2], "s") << table.output;
  EXPECT_GE(std::stod(row[1]), 2.0) << table.output;
  EXPECT_TRUE(seenQueued) << during;
  EXPECT_TRUE(seenStale) << during;
  EXPECT_GE(queuedDuring, 1) << during;
  EXPECT_GE(limit, queuedDuring) << during;
  EXPECT_GT(limit, 0) << during;

  // Once it runs again: the requests that waited are counted above 1 s, the
  // loop's late tick too, and the heartbeat is young again.
  std::string after;
  bool recovered = waitUntil(
      [&] {
        after = master.scrape();
        return above1s(after, "tcp_server_request_duration_seconds") > 0 &&
               above1s(after, "tcp_server_worker_loop_lag_seconds", labels) > 0 &&
               metricValue(after, "tcp_server_worker_heartbeat_age_seconds{" + labels + "}") < 1.0 &&
               metricValue(after, queue0) == 0;
      },
      20s);
  EXPECT_TRUE(recovered) << after;
  // The handler's own time saw none of it: no request spent a second in it.
  EXPECT_EQ(above1s(after, "tcp_server_handler_duration_seconds"), 0) << after;
  for (auto& c : queued) c->close();

  bench.interrupt();
  ToolRun run = bench.finish();
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_EQ(run.report["errors_total"], 0) << run.output;
  double clientMaxMs = run.report["latency_ns"]["max"].get<double>() / 1e6;
  EXPECT_GE(clientMaxMs, 1500) << "the client's requests to the stopped worker waited";
  std::cout << "stall: heartbeat age " << ageDuring << " s, accept queue " << queuedDuring << " of " << limit
            << "; client max " << clientMaxMs << " ms; server: "
            << above1s(after, "tcp_server_request_duration_seconds") << " of "
            << metricValue(after, "tcp_server_request_duration_seconds_count")
            << " requests above 1 s; loop lag above 1 s: " << above1s(after, "tcp_server_worker_loop_lag_seconds", labels)
            << "\n";
}

// The words of a tcpfork-stats table line (headings with a space in them
// joined by '_').
std::vector<std::string> words(std::string line) {
  line = std::regex_replace(line, std::regex(R"(\b(in|out) B/s)"), "$1_B/s");
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// A worker that sheds (its slot's overloaded flag up and its shed counter
// moving, as the worker writes them while it sheds by queueing delay;
// written here by the test) reads "overloaded" in tcpfork-stats' state
// column, with its shed/s; the other worker stays "serving" at 0.
TEST(Observability, TcpforkStatsShowsAnOverloadedWorkerAndItsShedRate) {
  RunningMaster master(2);
  std::set<pid_t> pids = master.servingPids();
  ASSERT_EQ(pids.size(), 2u);
  pid_t loaded = *pids.begin();
  pid_t calm = *pids.rbegin();
  WorkerSlot slot(master.name(), loaded);
  slot.setOverloaded(true);
  const std::string out = tempPath("tcpfork-stats.out");
  ChildProcess stats({binary("tcpfork-stats"), "--name", master.name(), "-i", "0.2"}, {}, out);
  // The first table has no rates yet; the third has two intervals behind it.
  bool printed = waitUntil(
      [&] {
        slot.addCounter(stats::Counter::kRequestsShedQueueDelay, 10);
        return count(readFile(out), "totals:") >= 3;
      },
      15s);
  stats.signal(SIGINT);
  auto status = stats.waitExit(10s);
  std::string text = readFile(out);
  ASSERT_TRUE(printed) << text;
  ASSERT_TRUE(status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << text;

  std::istringstream table(text.substr(text.rfind("tcpfork '")));
  std::string line;
  std::getline(table, line);
  std::getline(table, line);
  std::vector<std::string> headings = words(line);
  auto shedAt = std::find(headings.begin(), headings.end(), "shed/s");
  ASSERT_NE(shedAt, headings.end()) << line;
  size_t shed = size_t(shedAt - headings.begin());
  ASSERT_EQ(headings.at(3), "state") << line;
  std::map<pid_t, std::vector<std::string>> rows;
  while (std::getline(table, line)) {
    std::vector<std::string> w = words(line);
    if (w.size() == headings.size()) rows[pid_t(std::stol(w.at(2)))] = w;
  }
  ASSERT_EQ(rows.size(), 2u) << text;
  EXPECT_EQ(rows[loaded].at(3), "overloaded") << text;
  EXPECT_NE(rows[loaded].at(shed), "0") << text;
  EXPECT_NE(rows[loaded].at(shed), "-") << text;
  EXPECT_EQ(rows[calm].at(3), "serving") << text;
  EXPECT_EQ(rows[calm].at(shed), "0") << text;
  EXPECT_TRUE(std::regex_search(text, std::regex(R"(totals:.* [1-9][0-9]* shed\b)"))) << "the totals line counts them: " << text;
}

TEST(Observability, ADeferredAckIsTimedToItsSend) {
  RunningMaster master(1, testModuleYaml("{defer_every: 1, thread: true, delay_ms: 300}"));
  TestConnection conn(master.port(), 10s);
  auto sentAt = std::chrono::steady_clock::now();
  conn.send(submitFrame(1, "ok"));
  ASSERT_EQ(conn.read(kAckBytes).size(), kAckBytes) << master.log();
  double roundTrip = std::chrono::duration<double>(std::chrono::steady_clock::now() - sentAt).count();
  std::string scrape;
  ASSERT_TRUE(waitUntil(
      [&] {
        scrape = master.scrape();
        return metricValue(scrape, "tcp_server_request_duration_seconds_count") == 1;
      },
      10s))
      << scrape;
  double duration = metricValue(scrape, "tcp_server_request_duration_seconds_sum");
  // The module held it 300 ms; the server's figure runs from the kernel's
  // receipt to the send, both inside what the client waited.
  EXPECT_GE(duration, 0.3) << scrape;
  EXPECT_LE(duration, roundTrip) << scrape;
  EXPECT_EQ(metricValue(scrape, "tcp_server_request_duration_seconds_bucket{le=\"0.25\"}"), 0) << scrape;
  EXPECT_GE(metricValue(scrape, "tcp_server_handler_duration_seconds_sum"), 0.3) << scrape;
}

TEST(Observability, HistogramsExportTheirBucketBounds) {
  RunningMaster master(1);
  ASSERT_TRUE(master.roundTrip(1));
  std::string scrape;
  // The loop lag histogram has a sample once the first tick has run.
  ASSERT_TRUE(waitUntil(
      [&] {
        scrape = master.scrape();
        return metricValue(scrape, "tcp_server_request_duration_seconds_count") == 1 &&
               metricValue(scrape, "tcp_server_worker_loop_lag_seconds_count{" + workerLabels(scrape, 0) + "}") >= 1;
      },
      10s))
      << scrape;
  for (const char* series : {
           "tcp_server_request_duration_seconds_bucket{le=\"1e-05\"}",
           "tcp_server_request_duration_seconds_bucket{le=\"30\"}",
           "tcp_server_request_duration_seconds_bucket{le=\"+Inf\"}",
           "tcp_server_handler_duration_seconds_bucket{le=\"1e-06\"}",
           "tcp_server_handler_duration_seconds_bucket{le=\"1\"}",
           "tcp_server_listen_overflows_total{scope=\"host\"}",
           "tcp_server_listen_drops_total{scope=\"host\"}",
       }) {
    EXPECT_GE(metricValue(scrape, series), 0) << series << " missing:\n" << scrape;
  }
  std::string lag = "tcp_server_worker_loop_lag_seconds_bucket{" + workerLabels(scrape, 0);
  EXPECT_GE(metricValue(scrape, lag + ",le=\"0.001\"}"), 0) << scrape;
  EXPECT_GE(metricValue(scrape, lag + ",le=\"30\"}"), 1) << scrape;
  EXPECT_EQ(metricValue(scrape, "tcp_server_request_duration_seconds_bucket{le=\"+Inf\"}"), 1) << scrape;
}

}  // namespace
}  // namespace tcpfork::test
