// The agent check (agent.listen): what a load balancer hears from a real
// master as it serves, loses workers, stops gracefully and upgrades; and
// that connecting to it can cost the master nothing it keeps.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <regex>
#include <thread>

#include "master/pidfile.h"
#include "test/integration/agent_check.h"
#include "test/integration/http_get.h"
#include "test/integration/running_master.h"

namespace tcpfork::test {
namespace {

constexpr const char* kAgentYaml = "agent:\n  listen: 127.0.0.1:0\n";

std::string agentOf(const RunningMaster& master) {
  int port = agentPortInLog(master.log());
  return port ? agentCheck("127.0.0.1:" + std::to_string(port)) : "";
}

// Polls the agent until it answers `line`; the last answer otherwise.
bool answersWithin(const RunningMaster& master, const std::string& line, std::chrono::milliseconds timeout,
                   std::string& last) {
  return waitUntil([&] { return (last = agentOf(master)) == line; }, timeout);
}

size_t openDescriptors(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

TEST(AgentCheck, IsOffByDefault) {
  RunningMaster master(1);
  ASSERT_TRUE(master.waitServing(1, 5s));
  EXPECT_EQ(agentPortInLog(master.log()), 0) << master.log();
  HttpResponse status = httpGet(master.metricsPort(), "/status");
  ASSERT_EQ(status.status, 200);
  EXPECT_TRUE(nlohmann::json::parse(status.body).at("agent").is_null()) << status.body;
}

TEST(AgentCheck, AnswersUpReadyWithFullWeightAndCountsIt) {
  RunningMaster master(2, kAgentYaml);
  ASSERT_TRUE(master.waitServing(2, 5s));
  ASSERT_NE(agentPortInLog(master.log()), 0) << master.log();
  std::string last;
  EXPECT_TRUE(answersWithin(master, "up ready 100%\n", 5s, last)) << last;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(agentOf(master), "up ready 100%\n");
  EXPECT_GE(master.metric("tcp_server_agent_checks_total{answer=\"up\"}"), 5);
  EXPECT_EQ(master.metric("tcp_server_agent_checks_total{answer=\"drain\"}"), 0);
  HttpResponse status = httpGet(master.metricsPort(), "/status");
  ASSERT_EQ(status.status, 200);
  auto agent = nlohmann::json::parse(status.body).at("agent");
  EXPECT_EQ(agent.at("answer"), "up ready 100%") << status.body;
  EXPECT_EQ(agent.at("listen"), "127.0.0.1:" + std::to_string(agentPortInLog(master.log()))) << status.body;
}

// A stopped worker's heartbeat goes stale: its share of the weight goes, and
// comes back when it runs again; with every worker stopped, nothing serves.
TEST(AgentCheck, AStoppedWorkerTakesItsShareAwayUntilItRunsAgain) {
  RunningMaster master(2, std::string(kAgentYaml) + "worker_timeout: 20s\nsteering:\n  stale_after: 300ms\n");
  ASSERT_TRUE(master.waitServing(2, 5s));
  std::set<pid_t> pids = master.servingPids();
  ASSERT_EQ(pids.size(), 2u);
  std::string last;
  ASSERT_TRUE(answersWithin(master, "up ready 100%\n", 5s, last)) << last;
  ::kill(*pids.begin(), SIGSTOP);
  EXPECT_TRUE(answersWithin(master, "up ready 50%\n", 5s, last)) << last;
  ::kill(*pids.rbegin(), SIGSTOP);
  EXPECT_TRUE(answersWithin(master, "down #2 of 2 workers stalled\n", 5s, last)) << last;
  for (pid_t pid : pids) ::kill(pid, SIGCONT);
  EXPECT_TRUE(answersWithin(master, "up ready 100%\n", 5s, last)) << last;
  EXPECT_EQ(master.servingPids(), pids) << "the stopped workers must not have been replaced\n" << master.log();
  EXPECT_GE(master.metric("tcp_server_agent_checks_total{answer=\"down\"}"), 1);
}

// Between the workers' deaths and their replacements serving, nothing
// serves. Each crash doubles an index's restart backoff (100 ms first), so
// killing the workers again whenever they serve widens that window until a
// check falls into it, however loaded the machine.
TEST(AgentCheck, SaysDownWhileNoWorkerServes) {
  RunningMaster master(2, kAgentYaml);
  ASSERT_TRUE(master.waitServing(2, 5s));
  int port = agentPortInLog(master.log());
  ASSERT_NE(port, 0);
  std::string address = "127.0.0.1:" + std::to_string(port);
  std::set<std::string> heard;
  bool down = waitUntil(
      [&] {
        for (pid_t pid : master.servingPids()) ::kill(pid, SIGKILL);
        for (int i = 0; i < 20; ++i) {
          if (heard.insert(agentCheck(address)).first->starts_with("down #0 of 2 workers serving")) return true;
        }
        return false;
      },
      20s);
  std::string all;
  for (const auto& h : heard) all += "[" + h + "]";
  EXPECT_TRUE(down) << "answers heard: " << all << "\n" << master.log();
  EXPECT_GE(master.metric("tcp_server_agent_checks_total{answer=\"down\"}"), 1);
  EXPECT_TRUE(master.waitServing(2, 70s)) << master.log();
  std::string last;
  EXPECT_TRUE(answersWithin(master, "up ready 100%\n", 5s, last)) << last;
}

// From QUIT until the master exits: drain. For agent.drain_delay the workers
// still accept (a balancer that has not asked yet still sends), then the
// graceful stop begins, held open here by a stopped worker until its drain
// ends at drain_timeout.
TEST(AgentCheck, DrainsFromQuitUntilTheMasterExits) {
  RunningMaster master(2, "agent:\n  listen: 127.0.0.1:0\n  drain_delay: 1s\ndrain_timeout: 2s\nworker_timeout: 20s\n");
  ASSERT_TRUE(master.waitServing(2, 5s));
  std::string last;
  ASSERT_TRUE(answersWithin(master, "up ready 100%\n", 5s, last)) << last;
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.waitForLog("SIGQUIT: the agent check answers drain", 5s)) << master.log();
  EXPECT_EQ(agentOf(master), "drain\n");
  EXPECT_TRUE(master.roundTrip(1)) << "the workers accept until agent.drain_delay has passed";
  EXPECT_EQ(master.log().find("SIGQUIT: graceful stop"), std::string::npos) << master.log();
  pid_t held = *master.servingPids().begin();
  ::kill(held, SIGSTOP);
  ASSERT_TRUE(master.waitForLog("SIGQUIT: graceful stop", 5s)) << master.log();
  EXPECT_EQ(agentOf(master), "drain\n");
  EXPECT_GE(master.metric("tcp_server_agent_checks_total{answer=\"drain\"}"), 2);
  ::kill(held, SIGCONT);
  EXPECT_TRUE(master.process().waitExit(15s).has_value()) << master.log();
  EXPECT_EQ(agentOf(master), "") << "nothing answers once the master has exited";
}

// A flood of connects that never read costs the master no descriptor: each
// gets its line and is closed at once; a check right after still answers.
TEST(AgentCheck, AConnectFloodHoldsNoDescriptorOfTheMaster) {
  RunningMaster master(1, kAgentYaml);
  ASSERT_TRUE(master.waitServing(1, 5s));
  int port = agentPortInLog(master.log());
  ASSERT_NE(port, 0);
  size_t before = openDescriptors(master.process().pid());
  std::vector<UniqueFd> idle;
  for (int i = 0; i < 400; ++i) idle.push_back(connectTcp(parseAddress("127.0.0.1:" + std::to_string(port))));
  std::string last;
  EXPECT_TRUE(answersWithin(master, "up ready 100%\n", 5s, last)) << last;
  // (a transient descriptor of the master's own, such as a /proc read, may
  // come and go)
  EXPECT_TRUE(waitUntil([&] { return openDescriptors(master.process().pid()) <= before + 2; }, 5s))
      << openDescriptors(master.process().pid()) << " descriptors, " << before
      << " before: the flood's connections must not stay open in the master";
  EXPECT_GE(master.metric("tcp_server_agent_checks_total{answer=\"up\"}"), 401);
}

// A binary upgrade drains the host from USR2 until the old master exits; the
// new master answers on the same port, which it inherited.
TEST(AgentCheck, DrainsThroughABinaryUpgradeThenTheNewMasterAnswers) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  RunningMaster master(2, kAgentYaml);
  ASSERT_TRUE(master.waitServing(2, 5s));
  std::string last;
  ASSERT_TRUE(answersWithin(master, "up ready 100%\n", 5s, last)) << last;
  int port = agentPortInLog(master.log());
  pid_t oldPid = master.process().pid();
  master.process().signal(SIGUSR2);
  EXPECT_TRUE(answersWithin(master, "drain\n", 5s, last)) << "from USR2 on: " << last;
  ASSERT_TRUE(master.waitForLog("serves beside it until it gets SIGQUIT", 15s)) << master.log();
  pid_t newPid = 0;
  try {
    newPid = runningMasterPid(master.pidFile());
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  ASSERT_NE(newPid, oldPid);
  // Whichever master accepts, the balancer hears drain.
  for (int i = 0; i < 20; ++i) EXPECT_EQ(agentOf(master), "drain\n") << "check " << i;
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(15s).has_value()) << master.log();
  EXPECT_TRUE(answersWithin(master, "up ready 100%\n", 5s, last)) << last;
  EXPECT_EQ(agentPortInLog(master.log()), port);
  ::kill(newPid, SIGKILL);
  waitUntil([&] { return ::waitpid(newPid, nullptr, WNOHANG) == newPid; }, 5s);
}

}  // namespace
}  // namespace tcpfork::test
