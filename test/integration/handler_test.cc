// Handler modules in real workers (DESIGN.md, "Handler modules"): a module
// built by the test build (test/modules/test_handler.c) defers requests and
// completes them from its own thread or on the loop; the acks must keep
// request order on every connection, max_pending must pause reading,
// completions for a closed connection are dropped and counted, a token
// completed twice is ignored, a result outside the contract is acked as the
// module's error (never as ok), a crash names the module, and a module that
// forks cannot wedge its worker.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/codec.h"
#include "tcpfork/handler.h"
#include "test/integration/http_get.h"
#include "test/integration/connector.h"
#include "test/integration/running_master.h"
#include "test/integration/test_module.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

// Request n's payload asks the test module for result n % 251.
std::string resultPayload(uint64_t n) { return std::string("r") + char(n % 251) + "payload"; }

std::vector<std::byte> ackWithResult(uint64_t n, uint8_t result) {
  std::vector<std::byte> frame(protocol::kAckFrameBytes);
  protocol::encodeAck(protocol::Command::kSubmitAck, protocol::formatId(n), result, frame.data());
  return frame;
}

// Sends `count` requests on each of `connections` connections, pipelined in
// bursts, and checks that every connection gets exactly its acks, in order,
// with the result each request asked for.
void expectOrderedAcks(int port, int connections, uint64_t count) {
  std::vector<std::unique_ptr<TestConnection>> conns;
  for (int c = 0; c < connections; ++c) conns.push_back(std::make_unique<TestConnection>(port, 10s));
  constexpr uint64_t kBurst = 200;
  for (uint64_t start = 0; start < count; start += kBurst) {
    for (int c = 0; c < connections; ++c) {
      std::vector<std::byte> burst;
      for (uint64_t i = start; i < std::min(count, start + kBurst); ++i) {
        uint64_t id = uint64_t(c) * 1'000'000 + i;
        burst = concat(std::move(burst), submitFrame(id, resultPayload(id)));
      }
      conns[size_t(c)]->send(burst);
    }
    for (int c = 0; c < connections; ++c) {
      std::vector<std::byte> expected;
      for (uint64_t i = start; i < std::min(count, start + kBurst); ++i) {
        uint64_t id = uint64_t(c) * 1'000'000 + i;
        expected = concat(std::move(expected), ackWithResult(id, uint8_t(id % 251)));
      }
      ASSERT_EQ(conns[size_t(c)]->read(expected.size()), expected) << "connection " << c << ", burst at " << start;
    }
  }
}

TEST(Handler, AcksKeepRequestOrderWhenAThreadCompletesDeferredRequestsOutOfOrder) {
  RunningMaster master(1, testModuleYaml(R"({defer_every: 3, thread: true})"));
  EXPECT_TRUE(master.waitForLog("[test] test handler ready in worker 0, generation 1", 10s)) << master.log();
  EXPECT_TRUE(master.waitForLog("handler test (" + testModulePath() + ")", 10s)) << master.log();
  expectOrderedAcks(master.port(), 8, 3000);
  EXPECT_EQ(master.metric("tcp_server_req_recv_total"), 8 * 3000) << master.scrape();
  EXPECT_EQ(master.metric("tcp_server_rsp_send_total"), 8 * 3000) << master.scrape();
}

TEST(Handler, AcksKeepRequestOrderWhenTheLoopCompletesAtBatchEnd) {
  RunningMaster master(1, testModuleYaml(R"({defer_every: 2})"));
  expectOrderedAcks(master.port(), 4, 2000);
}

TEST(Handler, MaxPendingStopsDecodingAConnectionUntilOneCompletes) {
  // "wait" requests are held until their connection closes; at max_pending
  // (4) the connection decodes nothing more.
  RunningMaster master(1, testModuleYaml(R"({defer_prefix: wait, hold: true})", "  max_pending: 4\n"));
  TestConnection held(master.port());
  std::vector<std::byte> ten;
  for (uint64_t i = 0; i < 10; ++i) ten = concat(std::move(ten), submitFrame(i, "wait"));
  held.send(ten);
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_req_recv_total") == 4; }, 10s)) << master.scrape();
  // One worker loop: once another connection's request is answered, the
  // held one has had its chance to decode more.
  EXPECT_TRUE(master.roundTrip(99));
  EXPECT_EQ(master.metric("tcp_server_req_recv_total"), 5) << master.scrape();
  EXPECT_EQ(master.metric("tcp_server_rsp_send_total"), 1) << master.scrape();
}

TEST(Handler, MaxPendingStillAnswersEverythingInOrder) {
  RunningMaster master(1, testModuleYaml(R"({defer_every: 1, thread: true})", "  max_pending: 2\n"));
  expectOrderedAcks(master.port(), 3, 1000);
}

TEST(Handler, CompletionsForAClosedConnectionAreDroppedAndCounted) {
  RunningMaster master(1, testModuleYaml(R"({defer_prefix: wait, hold: true, complete_on_close: true})"));
  {
    TestConnection doomed(master.port());
    for (uint64_t i = 0; i < 3; ++i) doomed.send(submitFrame(i, "wait"));
    ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_req_recv_total") == 3; }, 10s)) << master.scrape();
    // A reset, not a FIN: a half-closed peer would still be owed its acks.
    linger reset{1, 0};
    ASSERT_EQ(::setsockopt(doomed.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  }
  EXPECT_TRUE(waitUntil([&] { return master.metric("tcp_server_handler_completions_dropped_total") == 3; }, 10s))
      << master.scrape();
  EXPECT_EQ(master.metric("tcp_server_rsp_send_total"), 0) << master.scrape();
  EXPECT_TRUE(master.roundTrip(7));
}

TEST(Handler, ATokenCompletedTwiceIsLoggedAndIgnored) {
  RunningMaster master(1, testModuleYaml(R"({defer_every: 1, complete_twice: true})"));
  pid_t worker = *master.servingPids().begin();
  TestConnection conn(master.port());
  std::vector<std::byte> frames;
  std::vector<std::byte> acks;
  for (uint64_t i = 0; i < 5; ++i) {
    frames = concat(std::move(frames), submitFrame(i, resultPayload(i)));
    acks = concat(std::move(acks), ackWithResult(i, uint8_t(i)));
  }
  conn.send(frames);
  EXPECT_EQ(conn.read(acks.size()), acks);
  EXPECT_TRUE(master.waitForLog("complete() for a request not pending (completed twice?); ignored", 10s))
      << master.log();
  EXPECT_EQ(master.servingPids(), std::set<pid_t>{worker});
  EXPECT_TRUE(master.roundTrip(9));
}

TEST(Handler, ACrashInHandleKillsOnlyItsWorkerAndTheMasterNamesTheModule) {
  RunningMaster master(2, testModuleYaml(R"({crash_on: boom})"));
  TestConnection conn(master.port());
  conn.send(submitFrame(1, "boom"));
  EXPECT_TRUE(conn.closedWithin(10s));
  // "killed by SIGSEGV; it runs handler module ..." (SIGABRT under make asan,
  // whose handler turns the SIGSEGV into an abort).
  EXPECT_TRUE(master.waitForLog("; it runs handler module " + testModulePath(), 10s)) << master.log();
  EXPECT_TRUE(std::regex_search(master.log(), std::regex("killed by SIG(SEGV|ABRT); it runs handler module ")))
      << master.log();
  EXPECT_TRUE(master.waitServing(2, 20s)) << master.log();
  EXPECT_TRUE(master.roundTrip(2));
}

TEST(Handler, AGracefulStopWaitsForPendingRequestsThenDestroysTheModule) {
  RunningMaster master(1, testModuleYaml(R"({defer_every: 1, thread: true, delay_ms: 400})"));
  pid_t worker = *master.servingPids().begin();
  TestConnection conn(master.port());
  conn.send(submitFrame(1, resultPayload(1)));
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_req_recv_total") == 1; }, 10s)) << master.scrape();
  ASSERT_EQ(::kill(worker, SIGQUIT), 0);
  // The ack comes once the module completes it, then the worker goes.
  EXPECT_EQ(conn.read(kAckBytes), ackWithResult(1, 1)) << master.log();
  EXPECT_TRUE(conn.closedWithin(10s));
  conn.close();
  EXPECT_TRUE(master.waitForLog("stopped: accepted=1 rejected=0 requests=1 acks=1", 10s)) << master.log();
  EXPECT_TRUE(master.waitForLog("[test] test handler destroyed", 10s)) << master.log();
  std::string log = master.log();
  EXPECT_LT(log.find("stopped: accepted=1"), log.find("[test] test handler destroyed")) << log;
}

TEST(Handler, AConnectionAwaitingTheModuleIsNotIdle) {
  RunningMaster master(1,
                       testModuleYaml(R"({defer_every: 1, thread: true, delay_ms: 1500})") + "idle_timeout: 500ms\n");
  TestConnection conn(master.port());
  conn.send(submitFrame(3, resultPayload(3)));
  EXPECT_EQ(conn.read(kAckBytes), ackWithResult(3, 3)) << master.log();
  EXPECT_EQ(master.metric("tcp_server_idle_timeouts_total"), 0) << master.scrape();
  EXPECT_EQ(master.metric("tcp_server_handler_completions_dropped_total"), 0) << master.scrape();
  // Answered, it is idle again: the timeout applies as before.
  EXPECT_TRUE(conn.closedWithin(10s));
  EXPECT_TRUE(waitUntil([&] { return master.metric("tcp_server_idle_timeouts_total") == 1; }, 10s)) << master.scrape();
}

TEST(Handler, ModuleCountersAreExactPerWorkerAndMonotonicAcrossAKill) {
  RunningMaster master(1, testModuleYaml(R"({defer_every: 4, counter_checks: true})"));
  EXPECT_TRUE(master.waitForLog("[test] counter checks passed", 10s)) << master.log();
  EXPECT_TRUE(master.waitForLog("counter 'seventeenth' refused: a module has at most 16 counters", 10s)) << master.log();
  pid_t first = *master.servingPids().begin();
  expectOrderedAcks(master.port(), 2, 50);
  std::string scrape = master.scrape();
  EXPECT_EQ(metricValue(scrape, "tcp_server_handler_seen_total"), 100) << scrape;
  EXPECT_EQ(metricValue(scrape, "tcp_server_handler_deferred_total"), 25) << scrape;
  EXPECT_EQ(metricValue(scrape, "tcp_server_handler_extra_15_total"), 0) << scrape;
  EXPECT_NE(scrape.find("# HELP tcp_server_handler_seen_total Requests the test handler saw."), std::string::npos);
  EXPECT_EQ(metricValue(scrape, "tcp_server_worker_handler_seen_total{generation=\"1\",pid=\"" +
                                    std::to_string(first) + "\",worker=\"0\"}"),
            100)
      << scrape;

  // A worker killed outright: its counts join the retired totals.
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(waitUntil(
      [&] {
        auto pids = master.servingPids();
        return pids.size() == 1 && *pids.begin() != first;
      },
      20s))
      << master.log();
  EXPECT_EQ(master.metric("tcp_server_handler_seen_total"), 100) << master.scrape();
  expectOrderedAcks(master.port(), 1, 30);
  EXPECT_EQ(master.metric("tcp_server_handler_seen_total"), 130) << master.scrape();

  HttpResponse status = httpGet(master.metricsPort(), "/status");
  ASSERT_EQ(status.status, 200) << status.body;
  auto json = nlohmann::json::parse(status.body);
  EXPECT_EQ(json["handler"]["seen"], 130) << status.body;
  EXPECT_EQ(json["workers"][0]["handler"]["seen"], 30) << status.body;
}

// Lines of `log` that contain `text`, by the pid in their "[worker.N PID]".
std::map<pid_t, int> workerLinesWith(const std::string& log, const std::string& text) {
  std::map<pid_t, int> lines;
  std::istringstream in(log);
  static const std::regex kWorker(R"(\[worker[.0-9]* (\d+)\])");
  std::smatch m;
  for (std::string line; std::getline(in, line);) {
    if (line.find(text) != std::string::npos && std::regex_search(line, m, kWorker)) ++lines[pid_t(std::stol(m[1]))];
  }
  return lines;
}

// handle() must return 0..255 or TCPFORK_PENDING; anything else is the
// module's bug. Its low byte would say "ok" for 256 and 512, and "busy" for
// 511: the ack carries TCPFORK_RESULT_HANDLER_ERROR instead, and the worker
// says so once, naming the module and the value.
TEST(Handler, AResultOutsideTheContractIsAckedAsAHandlerErrorAndSaidOncePerWorker) {
  for (long value : {256L, -2L, 1000L, 511L, 512L, long(INT_MIN), long(INT_MAX)}) {
    SCOPED_TRACE("handle() returns " + std::to_string(value));
    RunningMaster master(1, testModuleYaml("{result_int: " + std::to_string(value) + "}"));
    TestConnection conn(master.port());
    std::vector<std::byte> frames(protocol::requestFrameBytes(0));
    protocol::encodeRequest(protocol::Command::kConn, protocol::formatId(0), {}, frames.data());
    std::vector<std::byte> acks(kAckBytes);
    protocol::encodeAck(protocol::Command::kConnAck, protocol::formatId(0), TCPFORK_RESULT_HANDLER_ERROR, acks.data());
    for (uint64_t i = 1; i <= 20; ++i) {
      frames = concat(std::move(frames), submitFrame(i));
      acks = concat(std::move(acks), ackWithResult(i, TCPFORK_RESULT_HANDLER_ERROR));
    }
    conn.send(frames);
    EXPECT_EQ(conn.read(acks.size()), acks);
    std::string said =
        "handler module test (" + testModulePath() + "): handle() returned " + std::to_string(value) + ",";
    EXPECT_TRUE(master.waitForLog(said, 10s)) << master.log();
    EXPECT_EQ(master.metric("tcp_server_handler_invalid_results_total"), 21) << master.scrape();
    // Once per worker, however many requests.
    conn.send(submitFrame(21));
    EXPECT_EQ(conn.read(kAckBytes), ackWithResult(21, TCPFORK_RESULT_HANDLER_ERROR));
    auto lines = workerLinesWith(master.log(), said);
    EXPECT_EQ(lines.size(), 1u) << master.log();
    for (const auto& [pid, count] : lines) EXPECT_EQ(count, 1) << "worker " << pid << "\n" << master.log();
  }
}

// What the client sees under load: every ack a failure, none ok, and each
// worker that served says it once.
TEST(Handler, TheClientCountsEveryOutOfRangeResultAsNotOk) {
  RunningMaster master(2, testModuleYaml("{result_int: 256}"));
  auto run = runClient({"bench", "--addr", addr(master.port()), "-n", "20000", "-c", "8", "-w", "32", "-q"}, true);
  EXPECT_EQ(run.exitCode, 1) << run.output;
  ASSERT_TRUE(run.report.is_object()) << run.output;
  EXPECT_EQ(run.report["acked"], 20000) << run.report.dump(2);
  EXPECT_EQ(run.report["errors"]["nonzero_result"], 20000) << run.report.dump(2);
  EXPECT_EQ(master.metric("tcp_server_handler_invalid_results_total"), 20000) << master.scrape();
  auto lines = workerLinesWith(master.log(), "handler module test (" + testModulePath() + "): handle() returned 256,");
  EXPECT_GE(lines.size(), 1u) << master.log();
  for (const auto& [pid, count] : lines) {
    EXPECT_EQ(count, 1) << "worker " << pid << "\n" << master.log();
    EXPECT_EQ(master.servingPids().count(pid), 1u) << pid;
  }
}

std::string configWith(const std::string& handler) {
  return RunningMaster::baseYaml("tcpfork-handler-check-" + uniqueTag(), tempPath("check.pid"), 1) + handler;
}

TEST(HandlerConfig, ConfigTestRunsTheModulesInitInAChildAndQuotesItsMessage) {
  std::string config = tempPath("check.yaml");
  std::ofstream(config) << configWith(testModuleYaml(R"({fail_init: "no journal directory here"})"));
  ToolRun failed = runCommand({binary("tcpfork"), "-t", "-c", config}, 40s);
  EXPECT_EQ(failed.exitCode, 1) << failed.output;
  EXPECT_NE(failed.output.find(config + ": handler.module: handler module " + testModulePath() +
                               ": init failed: no journal directory here"),
            std::string::npos)
      << failed.output;

  std::ofstream(config, std::ios::trunc) << configWith(testModuleYaml(R"({defer_every: 2})"));
  ToolRun passed = runCommand({binary("tcpfork"), "-t", "-c", config}, 40s);
  EXPECT_EQ(passed.exitCode, 0) << passed.output;
  EXPECT_NE(passed.output.find("handler module " + testModulePath() + " passed its init"), std::string::npos)
      << passed.output;

  std::ofstream(config, std::ios::trunc) << configWith("handler:\n  module: no-such-module.so\n");
  ToolRun missing = runCommand({binary("tcpfork"), "-t", "-c", config}, 40s);
  EXPECT_EQ(missing.exitCode, 1) << missing.output;
  EXPECT_NE(missing.output.find("handler.module: " + fs::path(config).parent_path().string() +
                                "/no-such-module.so: No such file or directory"),
            std::string::npos)
      << missing.output;
}

// The new worker's fatal exit fails the reload at once, not after
// worker_timeout (60 s here, past the 20 s the test waits).
TEST(HandlerReload, AModuleWhoseInitFailsKeepsTheOldGenerationAndTheMasterQuotesInit) {
  RunningMaster master(1, testModuleYaml(R"({defer_every: 2})") + "worker_timeout: 60s\n");
  master.writeConfig(RunningMaster::baseYaml(master.name(), master.pidFile(), 1, master.profileDir()) +
                     testModuleYaml(R"({fail_init: "refusing on purpose"})") + "worker_timeout: 60s\n");
  Connector connector(master.port());
  master.process().signal(SIGHUP);
  ASSERT_TRUE(master.waitForLog("reload failed", 20s)) << master.log();
  std::string log = master.log();
  std::string failure = log.substr(log.find("reload failed"));
  failure = failure.substr(0, failure.find('\n'));
  EXPECT_NE(failure.find("reload failed: worker 0 of generation 2 exited with the fatal code"), std::string::npos)
      << failure;
  EXPECT_NE(failure.find("worker 0: pid "), std::string::npos) << failure;
  EXPECT_NE(failure.find("exited: exit status 2: handler module " + testModulePath() +
                         ": init failed: refusing on purpose"),
            std::string::npos)
      << failure;
  EXPECT_NE(failure.find("generation 1 keeps serving"), std::string::npos) << failure;
  EXPECT_TRUE(waitUntil([&] { return connector.succeeded() > 20; }, 10s));
  connector.stop();
  EXPECT_EQ(connector.failed(), 0) << master.log();
  EXPECT_EQ(master.generation(), 1u);
  EXPECT_TRUE(master.roundTrip(5));
}

// As Master.ReloadsUnderPipelinedLoadWithoutLosingAnAck, with a module
// that defers half the requests to its thread: old workers drain their
// pending requests, and every request a worker read is acked.
TEST(HandlerReload, ANewModuleFileGoesLiveWithoutLosingAnAck) {
  std::string first = tempPath("first.so");
  std::string second = tempPath("second.so");
  fs::copy_file(testModulePath(), first);
  fs::copy_file(testModulePath(), second);
  auto yamlFor = [](const std::string& module) {
    return "handler:\n  module: " + module + "\n  config: {defer_every: 2, thread: true}\n";
  };
  RunningMaster master(2, yamlFor(first));
  BackgroundClient bench({"--addr", addr(master.port()), "-c", "8", "-w", "64", "-d", "3", "--drain", "3", "-q"});
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_rsp_send_total") > 1000; }, 10s)) << master.log();
  master.writeConfig(RunningMaster::baseYaml(master.name(), master.pidFile(), 2, master.profileDir()) +
                     yamlFor(second));
  master.process().signal(SIGHUP);
  ASSERT_TRUE(master.waitForLog("reload: generation 2 serving", 20s)) << master.log();
  EXPECT_TRUE(master.waitForLog("handler module test (" + second + ") loaded", 5s, 2)) << master.log();
  stopAndExpectNothingLost(master, bench.finish());
}

// Kills (by pid) what a test leaves behind that no fixture owns.
struct KillAtEnd {
  std::vector<pid_t> pids;
  ~KillAtEnd() {
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
  }
};

// New connections, one after another, for `period`: how many got no ack.
int unansweredFor(const RunningMaster& master, std::chrono::milliseconds period) {
  int unanswered = 0;
  auto end = std::chrono::steady_clock::now() + period;
  for (uint64_t i = 0; i < 1000 && std::chrono::steady_clock::now() < end; ++i) {
    if (!master.roundTrip(100 + i)) ++unanswered;
    std::this_thread::sleep_for(10ms);  // pacing, so the run spans the period
  }
  return unanswered;
}

// A module whose init or handle forks and lets the child return: the child
// used to run the worker on, stop at its next tick (its parent is not the
// master) and, shutting down, delete the listener from the epoll set it
// shares with the parent, which then never accepted again while it beat and
// /healthz said ok. The child now exits where the module returns, saying
// so; the worker serves on, unreplaced. Children that exec or _exit, as a
// child should, change nothing.
TEST(Handler, AModuleThatForksLeavesItsWorkerServing) {
  struct Case {
    std::string config;
    bool returns;  // the child returns into the worker
  };
  for (const Case& c : std::vector<Case>{{"{fork_in: init}", true},
                                         {"{fork_in: handle}", true},
                                         {"{fork_in: handle, fork_child: exec}", false},
                                         {"{fork_in: handle, fork_child: exit}", false}}) {
    SCOPED_TRACE(c.config);
    // A long worker_timeout: the master must not be what mends the worker.
    RunningMaster master(1, testModuleYaml(c.config, "worker_timeout: 60s\n"));
    ASSERT_TRUE(master.waitServing(1, 10s)) << master.log();
    const std::set<pid_t> workers = master.servingPids();
    {
      TestConnection conn(master.port());
      conn.send(submitFrame(1, "fork"));  // fork_in: handle forks here
      ASSERT_EQ(conn.read(kAckBytes), submitAckFrame(1));
    }
    std::string where = c.config.find("init") != std::string::npos ? "init" : "handle";
    std::string said = "its " + where + " called fork() and the child returned into the worker; the child exits now";
    if (c.returns) {
      ASSERT_TRUE(master.waitForLog(said, 10s)) << master.log();
    }
    // The child would have stopped at its first tick (100 ms) and taken the
    // parent's listener with it.
    EXPECT_EQ(unansweredFor(master, 1500ms), 0) << master.log();
    EXPECT_EQ(master.servingPids(), workers);
    EXPECT_EQ(master.metric("tcp_server_worker_restarts_total"), 0);
    if (!c.returns) {
      EXPECT_EQ(master.log().find("called fork()"), std::string::npos) << master.log();
    }
    EXPECT_EQ(master.log().find("is gone; stopping now"), std::string::npos) << master.log();
  }
}

// A worker whose loop runs but no longer accepts, while connections wait on
// its socket, is replaced: its heartbeat alone would never tell. Made real
// here by the same forked child, created with the raw clone system call,
// which runs no pthread_atfork handler and so returns into the worker
// unnoticed: its shutdown takes the listener out of the parent's epoll set.
// The connection that waited is served by the successor.
TEST(Handler, AWorkerThatStopsAcceptingIsReplaced) {
  RunningMaster master(
      1, testModuleYaml("{fork_in: handle, fork_with: clone}", "worker_timeout: 1s\nhang_dump_grace: 500ms\n"));
  ASSERT_TRUE(master.waitServing(1, 10s)) << master.log();
  pid_t wedged = *master.servingPids().begin();
  KillAtEnd leftovers;  // the child, which hangs at its exit (it joins a thread only its parent has)
  {
    TestConnection conn(master.port());
    conn.send(submitFrame(1, "fork"));
    ASSERT_EQ(conn.read(kAckBytes), submitAckFrame(1));
  }
  ASSERT_TRUE(waitUntil([&] { return !childPids(wedged).empty(); }, 5s));
  leftovers.pids = childPids(wedged);
  ASSERT_TRUE(master.waitForLog("[worker.0 " + std::to_string(leftovers.pids[0]) + "] info: stopped:", 10s))
      << master.log();
  TestConnection waiting(master.port(), 30s);
  waiting.send(submitFrame(2));
  ASSERT_TRUE(master.waitForLog("has accepted no connection for", 20s)) << master.log();
  EXPECT_TRUE(master.waitForLog("killing it", 10s, 2)) << master.log();
  EXPECT_EQ(waiting.read(kAckBytes), submitAckFrame(2)) << master.log();
  ASSERT_TRUE(master.waitServing(1, 10s)) << master.log();
  EXPECT_NE(*master.servingPids().begin(), wedged);
  EXPECT_TRUE(master.waitForLog("killed after it stopped accepting", 5s)) << master.log();
  EXPECT_EQ(master.metric("tcp_server_worker_restarts_total"), 1);
  EXPECT_EQ(unansweredFor(master, 500ms), 0) << master.log();
}

}  // namespace
}  // namespace tcpfork::test
