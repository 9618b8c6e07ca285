// A real Prometheus server (Debian package `prometheus`) scrapes the master
// while load runs, and its query API sees the request rate. Skipped where the
// package is absent; `make test` installs it.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <regex>

#include "test/integration/http_get.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

constexpr const char* kPrometheus = "/usr/bin/prometheus";

std::string urlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~') {
      out += char(c);
    } else {
      char buffer[4];
      std::snprintf(buffer, sizeof buffer, "%%%02X", c);
      out += buffer;
    }
  }
  return out;
}

// The port a Prometheus started on 127.0.0.1:0 got, from its log line
// `msg="Listening on" address=127.0.0.1:PORT`; 0 before it says.
int listeningPort(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"(msg="Listening on" address=127\.0\.0\.1:(\d+))"))) return 0;
  return std::stoi(m[1]);
}

// One instance (prometheus.yml) and several behind HAProxy (prometheus-fleet.yml).
TEST(Prometheus, AcceptsTheShippedScrapeConfigs) {
  TCPFORK_REQUIRE(::access("/usr/bin/promtool", X_OK) == 0, "promtool (Debian package prometheus) not installed");
  for (std::string file : {"deploy/prometheus.yml", "deploy/prometheus-fleet.yml"}) {
    ToolRun check = [&] {
      std::string log = tempPath("promtool.out");
      ChildProcess promtool({"/usr/bin/promtool", "check", "config", std::string(TCPFORK_SOURCE_DIR) + "/" + file},
                            {}, log);
      auto status = promtool.waitExit(30s);
      return ToolRun{status ? WEXITSTATUS(*status) : -1, readFile(log), {}};
    }();
    EXPECT_EQ(check.exitCode, 0) << file << ": " << check.output;
  }
}

// The alerting rules load, and fire (or stay quiet) on the series their unit
// tests feed them: promtool's own rule evaluator, so the expressions are real.
TEST(Prometheus, AlertRulesPassTheirUnitTests) {
  TCPFORK_REQUIRE(::access("/usr/bin/promtool", X_OK) == 0, "promtool (Debian package prometheus) not installed");
  std::string log = tempPath("promtool-rules.out");
  ChildProcess promtool({"/usr/bin/promtool", "test", "rules",
                         std::string(TCPFORK_SOURCE_DIR) + "/deploy/tcpfork-alerts.test.yml"},
                        {}, log);
  auto status = promtool.waitExit(30s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << readFile(log);
  EXPECT_NE(readFile(log).find("SUCCESS"), std::string::npos) << readFile(log);
}

TEST(Prometheus, ScrapesTheRequestRateWhileLoadRuns) {
  TCPFORK_REQUIRE(::access(kPrometheus, X_OK) == 0, "Debian package prometheus not installed");
  RunningMaster master(2);

  std::string dir = tempPath("prometheus");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  std::string config = dir + "/prometheus.yml";
  std::ofstream(config) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        << "scrape_configs:\n  - job_name: tcpfork\n    static_configs:\n"
                        << "      - targets: ['127.0.0.1:" << master.metricsPort() << "']\n";
  ChildProcess prometheus({kPrometheus, "--config.file=" + config, "--storage.tsdb.path=" + dir + "/data",
                           "--web.listen-address=127.0.0.1:0"},
                          {}, dir + "/prometheus.log");
  int port = 0;
  ASSERT_TRUE(waitUntil([&] { return (port = listeningPort(readFile(dir + "/prometheus.log"))) != 0; }, 30s))
      << readFile(dir + "/prometheus.log");
  ASSERT_TRUE(waitUntil([&] { return httpGet(port, "/-/ready").status == 200; }, 30s))
      << readFile(dir + "/prometheus.log");

  BackgroundClient bench({"--addr", "127.0.0.1:" + std::to_string(master.port()), "-c", "4", "-w", "8", "--rate",
                          "20000", "-d", "25", "-q"});
  double rate = 0;
  bool seen = waitUntil(
      [&] {
        HttpResponse r = httpGet(port, "/api/v1/query?query=rate(tcp_server_req_recv_total%5B15s%5D)");
        if (r.status != 200) return false;
        auto json = nlohmann::json::parse(r.body, nullptr, false);
        if (!json.is_object() || json["data"]["result"].empty()) return false;
        rate = std::stod(json["data"]["result"][0]["value"][1].get<std::string>());
        return rate > 0;
      },
      20s);
  EXPECT_TRUE(seen) << "Prometheus never saw a request rate; its log:\n" << readFile(dir + "/prometheus.log");
  // Well under the offer: an ASan build on a loaded 2-core machine was seen
  // doing 700/s; an idle release build does the full 20000/s.
  EXPECT_GT(rate, 100) << "offered 20000/s";
  EXPECT_LT(rate, 40000) << "offered 20000/s";

  // Every query of the shipped dashboard is valid PromQL over what we export.
  auto dashboard = nlohmann::json::parse(readFile(std::string(TCPFORK_SOURCE_DIR) + "/deploy/grafana/tcpfork.json"));
  int queries = 0;
  std::string everyExpr;
  for (const auto& panel : dashboard["panels"]) {
    for (const auto& target : panel["targets"]) {
      std::string expr = target["expr"];
      everyExpr += expr + "\n";
      expr = std::regex_replace(expr, std::regex(R"(\$\{prefix\})"), "tcp_server");
      expr = std::regex_replace(expr, std::regex(R"(\$instance)"), ".*");
      expr = std::regex_replace(expr, std::regex(R"(\$overload_target)"), "0.005");
      HttpResponse r = httpGet(port, "/api/v1/query?query=" + urlEncode(expr));
      auto json = nlohmann::json::parse(r.body, nullptr, false);
      ASSERT_TRUE(json.is_object()) << expr << ": " << r.body;
      EXPECT_EQ(json["status"], "success") << panel["title"] << ": " << expr << ": " << r.body;
      EXPECT_FALSE(json["data"]["result"].empty()) << panel["title"] << ": no series for " << expr;
      ++queries;
    }
  }
  EXPECT_GE(queries, 12);
  // What an operator needs to see a stall: true latency beside handler time,
  // accept queues against their limits, loop lag and heartbeat age.
  for (const char* metric : {"_request_duration_seconds_bucket", "_handler_duration_seconds_bucket",
                             "_listen_queue_length", "_listen_queue_limit", "_worker_loop_lag_seconds_bucket",
                             "_worker_heartbeat_age_seconds", "_listen_overflows_total", "_listen_drops_total",
                             // and what the worker limits did: shed connections, recycles by reason,
                             "_connections_shed_total", "_worker_recycles_total",
                             // and which workers steering keeps new connections away from, and why,
                             "_steering_eligible", "_steering_active", "_steering_excluded_total",
                             // and overload: requests shed beside goodput, overloaded workers, queueing delay.
                             "_requests_shed_total", "_rsp_send_total", "_overloaded{", "_queue_delay_seconds_bucket"}) {
    EXPECT_NE(everyExpr.find(metric), std::string::npos) << "no dashboard panel shows " << metric;
  }

  // The target is healthy in Prometheus' own view too.
  HttpResponse up = httpGet(port, "/api/v1/query?query=up%7Bjob%3D%22tcpfork%22%7D");
  EXPECT_NE(up.body.find("\"1\""), std::string::npos) << up.body;
  prometheus.signal(SIGTERM);
  prometheus.waitExit(10s);
  bench.interrupt();
  EXPECT_EQ(bench.finish(15s).exitCode, 0);
}

}  // namespace
}  // namespace tcpfork::test
