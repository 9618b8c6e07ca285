// The agent check's answer (master/agent/agent_answer.h): what HAProxy's
// agent-check reads from the master in each state.
#include "master/agent/agent_answer.h"

#include <gtest/gtest.h>

namespace tcpfork {
namespace {

AgentView serving(unsigned configured, unsigned serving, unsigned available) {
  AgentView v;
  v.configured = configured;
  v.serving = serving;
  v.available = available;
  return v;
}

TEST(AgentAnswer, EveryWorkerServingIsFullWeight) {
  AgentAnswer a = agentAnswer(serving(4, 4, 4));
  EXPECT_EQ(a.kind, AgentAnswerKind::kUp);
  EXPECT_EQ(a.line, "up ready 100%\n");
}

TEST(AgentAnswer, WeightIsTheShareOfConfiguredWorkersThatTakeNewConnections) {
  EXPECT_EQ(agentAnswer(serving(4, 3, 3)).line, "up ready 75%\n");
  // Shedding (overloaded) workers serve, but take no share.
  EXPECT_EQ(agentAnswer(serving(4, 4, 2)).line, "up ready 50%\n");
  // Rounded down: a third is 33%, not 34%.
  EXPECT_EQ(agentAnswer(serving(3, 1, 1)).line, "up ready 33%\n");
  // A stalled worker is neither serving nor available.
  AgentView v = serving(2, 1, 1);
  v.stalled = 1;
  EXPECT_EQ(agentAnswer(v).line, "up ready 50%\n");
}

TEST(AgentAnswer, AtLeastOnePercentWhileAnyWorkerServes) {
  // 0% would be weight 0: HAProxy's drain.
  EXPECT_EQ(agentAnswer(serving(4, 4, 0)).line, "up ready 1%\n");
  EXPECT_EQ(agentAnswer(serving(200, 1, 1)).line, "up ready 1%\n");
}

TEST(AgentAnswer, DownWithAReasonWhenNoWorkerServes) {
  AgentAnswer a = agentAnswer(serving(2, 0, 0));
  EXPECT_EQ(a.kind, AgentAnswerKind::kDown);
  EXPECT_EQ(a.line, "down #0 of 2 workers serving\n");
  AgentView stalled = serving(2, 0, 0);
  stalled.stalled = 2;
  EXPECT_EQ(agentAnswer(stalled).line, "down #2 of 2 workers stalled\n");
  AgentView starting = serving(2, 0, 0);
  starting.starting = true;
  EXPECT_EQ(agentAnswer(starting).line, "down #starting\n");
}

TEST(AgentAnswer, DrainWinsOverAnyWeight) {
  AgentView v = serving(4, 4, 4);
  v.draining = true;
  AgentAnswer a = agentAnswer(v);
  EXPECT_EQ(a.kind, AgentAnswerKind::kDrain);
  EXPECT_EQ(a.line, "drain\n");
  // Even with nothing left serving: a graceful stop's workers flush what they owe.
  v = serving(4, 0, 0);
  v.draining = true;
  EXPECT_EQ(agentAnswer(v).line, "drain\n");
}

TEST(AgentAnswer, AFastStopIsDown) {
  AgentView v = serving(4, 4, 4);
  v.draining = true;
  v.stoppingFast = true;
  EXPECT_EQ(agentAnswer(v).line, "down #fast stop\n");
}

TEST(AgentAnswer, NamesAreTheMetricLabels) {
  EXPECT_EQ(agentAnswerName(AgentAnswerKind::kUp), "up");
  EXPECT_EQ(agentAnswerName(AgentAnswerKind::kDrain), "drain");
  EXPECT_EQ(agentAnswerName(AgentAnswerKind::kDown), "down");
}

}  // namespace
}  // namespace tcpfork
