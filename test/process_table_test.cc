// The supervisor's state machine: the edges drawn in process_table.h and no
// others, and a row that moves along one that is missing still follows its
// process.

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "master/supervise/process_table.h"

namespace tcpfork {
namespace {

using enum ProcessState;

TEST(ProcessTable, AProcessLivesFromItsSpawnUntilItIsReaped) {
  std::vector<ProcessState> all = {kNew, kStarting, kServing, kDraining, kKilled, kHung, kBackoff, kFatal, kGone};
  std::vector<ProcessState> alive = {kStarting, kServing, kDraining, kKilled, kHung};
  for (ProcessState s : all) {
    ProcessRow row;
    row.state = s;
    bool expected = std::find(alive.begin(), alive.end(), s) != alive.end();
    EXPECT_EQ(live(row), expected) << processStateName(s);
  }
}

TEST(ProcessTable, HasTheDrawnEdgesOnly) {
  // A worker's life: spawned, serving, told to drain, killed at its deadline.
  EXPECT_TRUE(edgeExists(kNew, kStarting));
  EXPECT_TRUE(edgeExists(kStarting, kServing));
  EXPECT_TRUE(edgeExists(kServing, kDraining));
  EXPECT_TRUE(edgeExists(kDraining, kKilled));
  EXPECT_TRUE(edgeExists(kKilled, kGone));
  // Crashes and hangs.
  EXPECT_FALSE(edgeExists(kServing, kStarting));  // restarted through backoff, by reconcile
  EXPECT_TRUE(edgeExists(kServing, kBackoff));
  EXPECT_TRUE(edgeExists(kServing, kFatal));
  EXPECT_TRUE(edgeExists(kServing, kHung));
  EXPECT_TRUE(edgeExists(kHung, kBackoff));
  EXPECT_TRUE(edgeExists(kBackoff, kStarting));
  EXPECT_TRUE(edgeExists(kFatal, kStarting));
  // max_rss_hard: a serving worker killed at once.
  EXPECT_TRUE(edgeExists(kServing, kKilled));
  // What never happens: a process once told to go never serves again, and
  // nothing comes back from removal or into a new row.
  EXPECT_FALSE(edgeExists(kDraining, kServing));
  EXPECT_FALSE(edgeExists(kKilled, kServing));
  EXPECT_FALSE(edgeExists(kKilled, kStarting));
  EXPECT_FALSE(edgeExists(kHung, kServing));
  EXPECT_FALSE(edgeExists(kBackoff, kServing));
  EXPECT_FALSE(edgeExists(kNew, kServing));
  for (ProcessState to : {kNew, kStarting, kServing, kDraining, kKilled, kHung, kBackoff, kFatal, kGone}) {
    EXPECT_FALSE(edgeExists(kGone, to)) << processStateName(to);
    EXPECT_FALSE(edgeExists(to, kNew)) << processStateName(to);
  }
}

TEST(ProcessTable, ATransitionSetsTheStateAndItsDeadline) {
  ProcessRow row;
  auto at = ProcessClock::now() + std::chrono::seconds(3);
  transition(row, kBackoff, at);
  EXPECT_EQ(row.state, kBackoff);
  ASSERT_TRUE(row.deadline);
  EXPECT_EQ(*row.deadline, at);
  transition(row, kStarting);
  EXPECT_EQ(row.state, kStarting);
  EXPECT_FALSE(row.deadline);
  // A missing edge is logged as a bug and taken: the row follows the process.
  transition(row, kNew);
  EXPECT_EQ(row.state, kNew);
}

}  // namespace
}  // namespace tcpfork
