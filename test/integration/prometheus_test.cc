// A real Prometheus server (Debian package `prometheus`) scrapes the master
// while load runs, and its query API sees the request rate. Skipped where the
// package is absent; `make test` installs it.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "test/integration/http_get.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

constexpr const char* kPrometheus = "/usr/bin/prometheus";

int freeLoopbackPort() {
  UniqueFd fd = listenTcp(parseAddress("127.0.0.1:0"), {.backlog = 1, .reusePort = false});
  return localAddress(fd.get()).port();
}

TEST(Prometheus, ScrapesTheRequestRateWhileLoadRuns) {
  if (::access(kPrometheus, X_OK) != 0) GTEST_SKIP() << "Debian package prometheus not installed";
  RunningMaster master(2);

  std::string dir = tempPath("prometheus");
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  std::string config = dir + "/prometheus.yml";
  std::ofstream(config) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        << "scrape_configs:\n  - job_name: tcpfork\n    static_configs:\n"
                        << "      - targets: ['127.0.0.1:" << master.metricsPort() << "']\n";
  int port = freeLoopbackPort();
  ChildProcess prometheus({kPrometheus, "--config.file=" + config, "--storage.tsdb.path=" + dir + "/data",
                           "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                          {}, dir + "/prometheus.log");
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
  EXPECT_GT(rate, 1000) << "offered 20000/s";
  EXPECT_LT(rate, 40000) << "offered 20000/s";

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
