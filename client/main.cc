// tcpfork-client: `send` one request and print its ack, `bench` a server with
// many pipelined connections, or make a storm of new `connects`, checking
// every ack.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <fstream>

#include "base/version.h"
#include "client/bench.h"
#include "client/connects.h"
#include "client/report.h"
#include "client/send.h"

using namespace tcpfork::client;

namespace {

// The one piece of global state: what SIGINT/SIGTERM need to reach the bench.
std::atomic<bool> gStop{false};

void onStopSignal(int) { gStop.store(true); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tcpfork-client: talk to a tcpfork server (or any server of its protocol)"};
  app.set_version_flag("--version", tcpfork::versionLine("tcpfork-client"));
  app.require_subcommand(1);

  SendOptions send;
  auto* sendCmd = app.add_subcommand("send", "send one request and print its ack");
  sendCmd->add_option("--addr", send.addr, "server ADDR:PORT")->capture_default_str();
  sendCmd->add_option("--id", send.id, "8-byte request ID (digits are zero-padded)")->capture_default_str();
  sendCmd->add_option("--payload", send.payload, "Submit payload text")->capture_default_str();
  sendCmd->add_flag("--conn", send.conn, "send Conn (0x01) instead of Submit (0x02)");
  sendCmd->add_option("--timeout", send.timeoutSeconds, "seconds to wait for the ack")->capture_default_str();

  BenchOptions bench;
  auto* benchCmd = app.add_subcommand("bench", "load a server and check every ack");
  benchCmd->add_option("--addr", bench.addr, "server ADDR:PORT")->capture_default_str();
  benchCmd->add_option("-c,--connections", bench.connections, "connections")->capture_default_str();
  benchCmd->add_option("-w,--window", bench.window, "requests in flight per connection (1 = request/response)")
      ->capture_default_str();
  benchCmd->add_option("-d,--duration", bench.durationSeconds, "seconds to send for")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  benchCmd->add_option("-n,--requests", bench.requests,
                       "send this many requests in all, then stop (still bounded by -d)");
  benchCmd->add_option("--payload-bytes", bench.payloadBytes, "Submit payload size")->capture_default_str();
  benchCmd->add_option("--threads", bench.threads, "client threads")->capture_default_str();
  benchCmd->add_option("--rate", bench.rate, "open loop: requests/s over all connections (0 = closed loop)")
      ->capture_default_str();
  benchCmd->add_option("--drain", bench.drainSeconds, "seconds to wait for owed acks after sending stops")
      ->capture_default_str();
  benchCmd->add_option("--json", bench.jsonPath, "also write the report as JSON to FILE");
  bool quiet = false;
  benchCmd->add_flag("-q,--quiet", quiet, "no progress lines");

  ConnectsOptions connects;
  auto* connectsCmd = app.add_subcommand(
      "connects", "a connect storm: new connections, one request each, timed from connect to ack");
  connectsCmd->add_option("--addr", connects.addr, "server ADDR:PORT")->capture_default_str();
  connectsCmd->add_option("-c,--concurrency", connects.concurrency, "connections being made at once (one thread each)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
  connectsCmd->add_option("-d,--duration", connects.durationSeconds, "seconds to connect for")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  connectsCmd->add_option("--timeout", connects.timeoutSeconds, "seconds a connection may wait for its ack")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  connectsCmd->add_option("--slow-ms", connects.slowMs, "count connections acked later than this")
      ->capture_default_str();
  connectsCmd->add_option("--json", connects.jsonPath, "also write the report as JSON to FILE");
  bool connectsQuiet = false;
  connectsCmd->add_flag("-q,--quiet", connectsQuiet, "no progress lines");

  CLI11_PARSE(app, argc, argv);

  if (sendCmd->parsed()) return runSend(send);

  // bench and connects alike: stop early on INT or TERM (the report still
  // prints), print the report, also write it as JSON when asked; exit 1 when
  // the run found a fault, 2 when it could not run.
  std::signal(SIGINT, onStopSignal);
  std::signal(SIGTERM, onStopSignal);
  std::signal(SIGPIPE, SIG_IGN);
  auto report = [](const char* name, const std::string& jsonPath, auto run) {
    try {
      auto [faulty, json] = run();
      if (!jsonPath.empty()) {
        std::ofstream out(jsonPath);
        out << json.dump(2) << '\n';
        if (!out) throw std::runtime_error("cannot write " + jsonPath);
      }
      return faulty ? 1 : 0;
    } catch (const std::exception& e) {
      fmt::print(stderr, "tcpfork-client {}: {}\n", name, e.what());
      return 2;
    }
  };
  if (connectsCmd->parsed()) {
    connects.progress = !connectsQuiet;
    return report("connects", connects.jsonPath, [&] {
      ConnectsResult result = runConnects(connects, gStop);
      printConnects(stdout, connects, result);
      bool faulty = result.failed() > 0 || result.wrongAcks > 0 || result.acked == 0;
      return std::pair{faulty, connectsJson(connects, result)};
    });
  }
  bench.progress = !quiet;
  return report("bench", bench.jsonPath, [&] {
    BenchResult result = runBench(bench, gStop);
    printReport(stdout, bench, result);
    bool faulty = result.totalErrors() > 0 || result.connectsFailed > 0 || result.acked == 0;
    return std::pair{faulty, toJson(bench, result)};
  });
}
