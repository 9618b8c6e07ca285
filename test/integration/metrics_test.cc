// The master's /metrics, /healthz and /status, and tcpfork-stats, against real
// load: exact counts, monotonic counters, promtool's verdict.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "protocol/codec.h"
#include "test/integration/http_get.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

void load(const RunningMaster& master, uint64_t requests, unsigned connections = 4) {
  ToolRun run = runClient({"bench", "--addr", addr(master.port()), "-n", std::to_string(requests), "-c",
                           std::to_string(connections), "-w", "16", "-q"});
  ASSERT_EQ(run.exitCode, 0) << run.output;
}

TEST(Metrics, CountExactlyWhatTheClientSent) {
  RunningMaster master(2);
  load(master, 5000, 4);
  // Connections close after the bench; the workers see it within a loop turn.
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_client_connected") == 0; }, 5s)) << master.scrape();
  std::string m = master.scrape();
  EXPECT_EQ(metricValue(m, "tcp_server_req_recv_total"), 5000);
  EXPECT_EQ(metricValue(m, "tcp_server_rsp_send_total"), 5000);
  EXPECT_EQ(metricValue(m, "tcp_server_connections_accepted_total"), 4);
  EXPECT_EQ(metricValue(m, "tcp_server_bytes_received_total"), 5000 * 29);
  EXPECT_EQ(metricValue(m, "tcp_server_bytes_sent_total"), 5000 * kAckBytes);
  EXPECT_EQ(metricValue(m, "tcp_server_request_duration_seconds_count"), 5000);
  EXPECT_EQ(metricValue(m, "tcp_server_workers{state=\"serving\"}"), 2);
  EXPECT_EQ(metricValue(m, "tcp_server_generation"), 1);
  EXPECT_GT(metricValue(m, "process_resident_memory_bytes"), 0);
  EXPECT_TRUE(std::regex_search(m, std::regex(R"(tcp_server_worker_cpu_seconds_total\{generation="1",pid="\d+",worker="1"\})")))
      << m;
}

// Each scrape names every series once: a worker index that drains (TTOU, a
// client still connected) while TTIN starts a new worker on it in the same
// generation shows two processes, which the pid label tells apart.
TEST(Metrics, EverySeriesOnceWhileAnIndexDrainsAndIsReplaced) {
  RunningMaster master(2, "drain_timeout: 30s\nworker_timeout: 30s\n");
  ASSERT_TRUE(master.waitServing(2, 5s));
  HttpResponse status = httpGet(master.metricsPort(), "/status");
  nlohmann::json json = nlohmann::json::parse(status.body);
  pid_t retiring = 0;
  for (const auto& w : json["workers"]) {
    if (w["index"] == 1) retiring = w["pid"].get<pid_t>();
  }
  ASSERT_GT(retiring, 0) << status.body;
  // Held open: whichever land on index 1 keep it draining, and stopping it
  // there keeps it draining for the rest of the test.
  std::vector<std::unique_ptr<TestConnection>> held;
  for (int i = 0; i < 24; ++i) held.push_back(std::make_unique<TestConnection>(master.port()));
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_client_connected") == 24; }, 5s)) << master.scrape();
  master.process().signal(SIGTTOU);
  ASSERT_TRUE(master.waitForLog("graceful stop: draining", 5s)) << master.log();
  ::kill(retiring, SIGSTOP);
  master.process().signal(SIGTTIN);
  std::string m;
  ASSERT_TRUE(waitUntil(
      [&] {
        m = master.scrape();
        return metricValue(m, "tcp_server_workers{state=\"serving\"}") == 2 &&
               metricValue(m, "tcp_server_workers{state=\"draining\"}") == 1;
      },
      10s))
      << "index 1 must be served by a new worker while the old one drains\n" << m << master.log();
  std::set<std::string> seen;
  std::istringstream lines(m);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::string series = line.substr(0, line.rfind(' '));
    EXPECT_TRUE(seen.insert(series).second) << "twice in one scrape: " << series << "\n" << m;
  }
  EXPECT_NE(m.find("tcp_server_worker_req_recv_total{generation=\"1\",pid=\"" + std::to_string(retiring) +
                   "\",worker=\"1\"}"),
            std::string::npos)
      << m;
}

// A worker whose loop stops is stalled, not serving, once its heartbeat is
// older than steering.stale_after, long before worker_timeout kills it; and
// /metrics, /status and tcpfork-stats say so alike. Once it runs again it
// serves again.
TEST(Metrics, AStoppedWorkerIsStalledOnceItsHeartbeatIsStale) {
  constexpr auto kStaleAfter = 1s;
  RunningMaster master(2, "worker_timeout: 20s\nsteering:\n  stale_after: 1s\n");
  ASSERT_TRUE(master.waitServing(2, 5s));
  std::set<pid_t> pids = master.servingPids();
  ASSERT_EQ(pids.size(), 2u);
  pid_t stopped = *pids.begin();
  pid_t running = *pids.rbegin();
  auto stateIn = [](const nlohmann::json& doc, pid_t pid) {
    for (const auto& w : doc["workers"]) {
      if (w["pid"].get<pid_t>() == pid) return w["state"].get<std::string>();
    }
    return std::string("(absent)");
  };
  std::string m;
  nlohmann::json status;
  auto shown = [&](double serving, double stalled, const std::string& stoppedState) {
    m = master.scrape();
    HttpResponse r = httpGet(master.metricsPort(), "/status");
    if (r.status != 200) return false;
    status = nlohmann::json::parse(r.body);
    return metricValue(m, "tcp_server_workers{state=\"serving\"}") == serving &&
           metricValue(m, "tcp_server_workers{state=\"stalled\"}") == stalled &&
           stateIn(status, stopped) == stoppedState && stateIn(status, running) == "serving";
  };
  m = master.scrape();
  ASSERT_EQ(metricValue(m, "tcp_server_workers{state=\"serving\"}"), 2) << m;

  ::kill(stopped, SIGSTOP);
  // Its last beat came before the stop, so its heartbeat is past stale_after
  // by kStaleAfter from now: one second more is the bound.
  EXPECT_TRUE(waitUntil([&] { return shown(1, 1, "stalled"); }, kStaleAfter + 1s))
      << "a stopped worker must be stalled within 1 s of its heartbeat passing stale_after\n"
      << m << status.dump(1);
  HttpResponse health = httpGet(master.metricsPort(), "/healthz");
  EXPECT_EQ(health.status, 503) << "a stalled worker is not serving for /healthz either: " << health.body;
  EXPECT_NE(health.body.find("1 of 2 workers serving (1 stalled"), std::string::npos) << health.body;
  ToolRun stats = runTool("tcpfork-stats", {"--name", master.name(), "--once", "--json"});
  ASSERT_EQ(stats.exitCode, 0) << stats.output;
  EXPECT_EQ(stateIn(nlohmann::json::parse(stats.output), stopped), "stalled") << stats.output;
  EXPECT_EQ(stateIn(nlohmann::json::parse(stats.output), running), "serving") << stats.output;

  ::kill(stopped, SIGCONT);
  EXPECT_TRUE(waitUntil([&] { return shown(2, 0, "serving"); }, 5s)) << m << status.dump(1);
  health = httpGet(master.metricsPort(), "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(health.body, "ok: 2 of 2 workers serving\n");
  EXPECT_EQ(master.servingPids(), pids) << "the stalled worker must not have been replaced\n" << master.log();
}

TEST(Metrics, CountersNeverGoBackAcrossKillAndReload) {
  RunningMaster master(2);
  load(master, 20000, 8);
  double before = master.metric("tcp_server_req_recv_total");
  ASSERT_EQ(before, 20000);

  for (pid_t pid : master.servingPids()) ::kill(pid, SIGKILL);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_worker_restarts_total") == 2; }, 5s))
      << master.scrape();
  ASSERT_TRUE(master.waitServing(2, 5s));
  EXPECT_EQ(master.metric("tcp_server_req_recv_total"), before) << "a killed worker's counts were lost";

  master.process().signal(SIGHUP);
  ASSERT_TRUE(master.waitForLog("reload: generation 2 serving", 10s));
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_workers{state=\"draining\"}") == 0; }, 10s));
  EXPECT_EQ(master.metric("tcp_server_req_recv_total"), before) << "the old generation's counts were lost";
  EXPECT_EQ(master.metric("tcp_server_reloads_total"), 1);

  load(master, 1000, 2);
  EXPECT_EQ(master.metric("tcp_server_req_recv_total"), before + 1000);
  EXPECT_EQ(master.metric("tcp_server_rsp_send_total"), before + 1000);
}

TEST(Metrics, CountProtocolErrorsByReason) {
  RunningMaster master(1);
  {
    TestConnection c(master.port());
    std::vector<std::byte> tooLong = {std::byte{0x7f}, std::byte{0xff}, std::byte{0xff}, std::byte{0xff}};
    c.send(tooLong);
    EXPECT_TRUE(c.closedWithin(3s));
  }
  ASSERT_TRUE(waitUntil(
      [&] { return master.metric("tcp_server_protocol_errors_total{reason=\"length_too_long\"}") == 1; }, 5s))
      << master.scrape();
  EXPECT_EQ(master.metric("tcp_server_protocol_errors_total{reason=\"unknown_command\"}"), 0);
}

TEST(Metrics, UseTheConfiguredNamespace) {
  RunningMaster master(1, "metrics:\n  listen: 127.0.0.1:0\n  namespace: tcp_server_demo2\n");
  load(master, 100, 1);
  EXPECT_EQ(master.metric("tcp_server_demo2_req_recv_total"), 100);
  EXPECT_EQ(master.metric("tcp_server_req_recv_total"), -1);
}

TEST(Metrics, PromtoolAcceptsTheExposition) {
  TCPFORK_REQUIRE(::access("/usr/bin/promtool", X_OK) == 0, "promtool (Debian package prometheus) not installed");
  RunningMaster master(2);
  load(master, 1000, 2);
  std::string file = tempPath("metrics.txt");
  std::ofstream(file) << master.scrape();
  ToolRun check = [&] {
    std::string log = tempPath("promtool.out");
    ChildProcess promtool({"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + file}, {}, log);
    auto status = promtool.waitExit(30s);
    return ToolRun{status ? WEXITSTATUS(*status) : -1, readFile(log), {}};
  }();
  EXPECT_EQ(check.exitCode, 0) << check.output;
  EXPECT_EQ(check.output.find("error"), std::string::npos) << check.output;
}

TEST(Admin, HealthzAndStatus) {
  RunningMaster master(2);
  HttpResponse health = httpGet(master.metricsPort(), "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok: 2 of 2 workers serving\n");
  HttpResponse status = httpGet(master.metricsPort(), "/status");
  ASSERT_EQ(status.status, 200);
  auto json = nlohmann::json::parse(status.body);
  EXPECT_EQ(json["master_pid"], master.process().pid());
  EXPECT_EQ(json["workers"].size(), 2u);
  EXPECT_EQ(json["workers"][0]["state"], "serving");
  EXPECT_EQ(httpGet(master.metricsPort(), "/nope").status, 404);

}

TEST(Admin, HealthzFailsWhileStopping) {
  RunningMaster master(1, "drain_timeout: 5s\n");
  TestConnection lingering(master.port());  // keeps the drain going until it closes
  lingering.send(submitFrame(1));
  ASSERT_EQ(lingering.read(kAckBytes), submitAckFrame(1));
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(waitUntil([&] { return httpGet(master.metricsPort(), "/healthz").status == 503; }, 3s));
  EXPECT_NE(httpGet(master.metricsPort(), "/healthz").body.find("unhealthy"), std::string::npos);
  lingering.close();
  EXPECT_TRUE(master.process().waitExit(10s).has_value());
}

TEST(StatsCli, OnceJsonMatchesTheMetrics) {
  RunningMaster master(2);
  load(master, 3000, 3);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_client_connected") == 0; }, 5s));
  ToolRun stats = runTool("tcpfork-stats", {"--name", master.name(), "--once", "--json"});
  ASSERT_EQ(stats.exitCode, 0) << stats.output;
  auto json = nlohmann::json::parse(stats.output);
  std::string m = master.scrape();
  EXPECT_EQ(json["totals"]["requests"].get<double>(), metricValue(m, "tcp_server_req_recv_total"));
  EXPECT_EQ(json["totals"]["responses"].get<double>(), metricValue(m, "tcp_server_rsp_send_total"));
  EXPECT_EQ(json["totals"]["bytes_in"].get<double>(), metricValue(m, "tcp_server_bytes_received_total"));
  EXPECT_EQ(json["totals"]["accepted"].get<double>(), metricValue(m, "tcp_server_connections_accepted_total"));
  EXPECT_EQ(json["totals"]["latency"]["count"].get<double>(),
            metricValue(m, "tcp_server_request_duration_seconds_count"));
  EXPECT_EQ(json["workers"].size(), 2u);
}

TEST(StatsCli, TableShowsEveryWorker) {
  RunningMaster master(2);
  ToolRun stats = runTool("tcpfork-stats", {"--name", master.name(), "--once"});
  ASSERT_EQ(stats.exitCode, 0) << stats.output;
  for (pid_t pid : master.servingPids()) {
    EXPECT_NE(stats.output.find(std::to_string(pid)), std::string::npos) << stats.output;
  }
  EXPECT_NE(stats.output.find("serving"), std::string::npos);
}

TEST(StatsCli, SaysClearlyWhenNothingRuns) {
  ToolRun stats = runTool("tcpfork-stats", {"--name", "tcpfork-test-absent", "--once"});
  EXPECT_EQ(stats.exitCode, 1);
  EXPECT_NE(stats.output.find("cannot open stats segment 'tcpfork-test-absent'"), std::string::npos) << stats.output;
}

}  // namespace
}  // namespace tcpfork::test
