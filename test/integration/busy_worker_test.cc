// A worker busy past its capacity is not a hung one. With a module that
// spends 50 us of CPU a request and 100 connections each keeping 2,048
// requests in flight, one read batch is 0.4 s of handler time per connection:
// a loop that ran each batch to its end went 40 s between timer ticks, and the
// master killed the worker as hung with its owed acks. Now each connection
// gets a time slice of the loop and yields (TimeSlice), so the loop's timers,
// its heartbeat and new connections all keep their turn, and the master
// counts completed requests as a sign of life.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <set>
#include <string>

#include "test/integration/process.h"
#include "test/integration/running_master.h"
#include "test/integration/test_module.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

// Shedding off: this is about a backlog served to its end (test/integration/overload_test.cc sheds one).
std::string slowModuleYaml(long burnUs) {
  return testModuleYaml("{burn_us: " + std::to_string(burnUs) + "}", "overload:\n  shed: off\n");
}

TEST(BusyWorker, ABacklogOnASlowModuleIsServedWithoutKillingTheWorker) {
  // A short worker_timeout: a starved loop is taken for hung within the run.
  RunningMaster master(1, slowModuleYaml(50) + "worker_timeout: 2s\n");
  std::set<pid_t> before = master.servingPids();
  ASSERT_EQ(before.size(), 1u);
  // 204,800 requests in flight are about 10 s of handler time: the drain
  // gives them room on a loaded machine (and under sanitizers).
  BackgroundClient bench({"--addr", addr(master.port()), "-c", "100", "-w", "2048", "-d", "4", "--drain", "60", "-q"});
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_rsp_send_total") > 10'000; }, 30s)) << master.log();

  // A new client is served while the backlog lasts: the loop still accepts,
  // and a connection with one request waits one round of the others' slices.
  {
    TestConnection fresh(master.port(), 15s);
    fresh.send(submitFrame(424242));
    EXPECT_EQ(fresh.read(kAckBytes), submitAckFrame(424242)) << "a new connection was not served during the backlog";
  }

  ToolRun run = bench.finish(120s);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_EQ(master.servingPids(), before) << master.log();
  EXPECT_EQ(master.metric("tcp_server_worker_restarts_total"), 0) << master.log();
  EXPECT_EQ(master.log().find("killing it"), std::string::npos) << master.log();
  EXPECT_EQ(run.report["connects_reset"], 0) << run.output;
  EXPECT_EQ(run.report["closed_by_server"], 0) << run.output;
  EXPECT_EQ(run.report["errors_total"], 0) << run.output;
  EXPECT_EQ(run.report["unacked_at_end"], 0) << run.output;
  // Every request the worker read was acked: the bench's, and the one above.
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(15s).has_value());
  EXPECT_EQ(run.report["acked"].get<uint64_t>() + 1, requestsReadByWorkers(master.log())) << master.log();
}

}  // namespace
}  // namespace tcpfork::test
