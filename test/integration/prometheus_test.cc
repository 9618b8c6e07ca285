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

#include "test/integration/fleet_host.h"
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
  for (std::string file : {"deploy/prometheus.yml", "deploy/prometheus-fleet.yml", "deploy/prometheus/fleet.yml"}) {
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

// The fleet's scrape config (deploy/prometheus/fleet.yml) over three hosts
// on 127.0.0.2-4 found through a file_sd targets file, under load: every
// recording rule of deploy/prometheus/fleet-rules.yml yields series, its
// expression runs as it stands, and the dashboard's `instance` variable
// (label_values of req_recv_total) lists the three hosts.
TEST(Prometheus, ScrapesAFleetFoundThroughFileDiscoveryAndRecordsEveryFleetRule) {
  TCPFORK_REQUIRE(::access(kPrometheus, X_OK) == 0, "Debian package prometheus not installed");
  std::vector<std::unique_ptr<FleetHost>> hosts;
  for (int n = 2; n <= 4; ++n) {
    hosts.push_back(std::make_unique<FleetHost>(n, 1));
    if (!hosts.back()->reserved()) GTEST_SKIP() << "cannot bind 127.0.0." << n << " (loopback beyond 127.0.0.1)";
    ASSERT_TRUE(hosts.back()->start());
  }
  std::string dir = tempPath("prometheus-fleet");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir + "/targets").c_str(), 0700), 0);
  {
    std::ofstream targets(dir + "/targets/tcpfork.json");
    targets << "[";
    for (size_t i = 0; i < hosts.size(); ++i) {
      targets << (i ? "," : "") << "{\"targets\": [\"" << hosts[i]->metricsAddress()
              << "\"], \"labels\": {\"instance\": \"host" << i + 1 << "\"}}";
    }
    targets << "]\n";
  }
  const std::string source = std::string(TCPFORK_SOURCE_DIR) + "/deploy/";
  std::string config = readFile(source + "prometheus/fleet.yml");
  auto substitute = [&](const std::string& pattern, const std::string& replacement) {
    std::regex re(pattern);
    ASSERT_TRUE(std::regex_search(config, re)) << "deploy/prometheus/fleet.yml no longer has /" << pattern << "/";
    config = std::regex_replace(config, re, replacement);
  };
  substitute(R"(scrape_interval: 5s)", "scrape_interval: 1s");
  substitute(R"(evaluation_interval: 5s)", "evaluation_interval: 1s");
  substitute(R"(- \.\./tcpfork-alerts\.yml)", "- " + source + "tcpfork-alerts.yml");
  substitute(R"(- fleet-rules\.yml)", "- " + source + "prometheus/fleet-rules.yml");
  substitute(R"(files: \["targets/\*\.json"\])", "files: [\"" + dir + "/targets/*.json\"]");
  // No HAProxy here.
  substitute(R"(\n  # HAProxy's built-in exporter[^]*)", "\n");
  std::ofstream(dir + "/prometheus.yml") << config;
  ChildProcess prometheus({kPrometheus, "--config.file=" + dir + "/prometheus.yml",
                           "--storage.tsdb.path=" + dir + "/data", "--web.listen-address=127.0.0.1:0"},
                          {}, dir + "/prometheus.log");
  int port = 0;
  ASSERT_TRUE(waitUntil([&] { return (port = listeningPort(readFile(dir + "/prometheus.log"))) != 0; }, 30s))
      << readFile(dir + "/prometheus.log");
  ASSERT_TRUE(waitUntil([&] { return httpGet(port, "/-/ready").status == 200; }, 30s))
      << readFile(dir + "/prometheus.log");
  std::vector<std::unique_ptr<BackgroundClient>> load;
  for (const auto& host : hosts) {
    load.push_back(std::make_unique<BackgroundClient>(std::vector<std::string>{
        "--addr", host->serviceAddress(), "-c", "2", "-w", "4", "--rate", "2000", "-d", "60", "-q"}));
  }
  auto query = [&](const std::string& expr) {
    HttpResponse r = httpGet(port, "/api/v1/query?query=" + urlEncode(expr));
    return nlohmann::json::parse(r.body, nullptr, false);
  };

  // Every recording rule, by its name once evaluated, and its expression.
  std::string rules = readFile(source + "prometheus/fleet-rules.yml");
  std::regex rule(R"(- record: (\S+)\n\s+expr: (.+)\n)");
  int recorded = 0;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), rule); it != std::sregex_iterator(); ++it) {
    std::string name = (*it)[1];
    std::string expr = (*it)[2];
    nlohmann::json result;
    EXPECT_TRUE(waitUntil(
        [&] {
          result = query(name);
          return result.is_object() && result["status"] == "success" && !result["data"]["result"].empty();
        },
        30s))
        << name << " never had a series: " << result.dump() << "\n" << readFile(dir + "/prometheus.log");
    nlohmann::json direct = query(expr);
    EXPECT_EQ(direct["status"], "success") << expr << ": " << direct.dump();
    EXPECT_FALSE(direct["data"]["result"].empty()) << expr;
    ++recorded;
  }
  EXPECT_GE(recorded, 10);
  EXPECT_TRUE(waitUntil([&] { return query("job:up:sum")["data"]["result"][0]["value"][1] == "3"; }, 20s))
      << query("job:up:sum").dump();
  // The fleet-wide rate is the sum of the hosts' (each host is offered 2000/s).
  EXPECT_TRUE(waitUntil(
      [&] {
        auto r = query("job:tcp_server_req_recv:rate1m")["data"]["result"];
        return !r.empty() && std::stod(r[0]["value"][1].get<std::string>()) > 300;
      },
      30s))
      << query("job:tcp_server_req_recv:rate1m").dump();
  auto perHost = query("instance:tcp_server_req_recv:rate1m")["data"]["result"];
  std::set<std::string> instances;
  for (const auto& series : perHost) instances.insert(series["metric"]["instance"].get<std::string>());
  EXPECT_EQ(instances, (std::set<std::string>{"host1", "host2", "host3"})) << perHost.dump();

  // The dashboard's `instance` variable: label_values(tcp_server_req_recv_total, instance).
  auto dashboard = nlohmann::json::parse(readFile(source + "grafana/tcpfork.json"));
  bool hasVariable = false;
  for (const auto& variable : dashboard["templating"]["list"]) {
    if (variable["name"] == "instance") {
      hasVariable = variable["query"]["query"] == "label_values(${prefix}_req_recv_total, instance)";
    }
  }
  EXPECT_TRUE(hasVariable) << dashboard["templating"].dump();
  HttpResponse values = httpGet(port, "/api/v1/label/instance/values?match%5B%5D=tcp_server_req_recv_total");
  auto listed = nlohmann::json::parse(values.body, nullptr, false);
  EXPECT_EQ(listed["data"], nlohmann::json({"host1", "host2", "host3"})) << values.body;

  prometheus.signal(SIGTERM);
  prometheus.waitExit(10s);
  for (auto& client : load) {
    client->interrupt();
    EXPECT_EQ(client->finish(15s).exitCode, 0);
  }
}

}  // namespace
}  // namespace tcpfork::test
