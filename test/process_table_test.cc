// The supervisor's state machine: the edges listed in process_table.h and no
// others, pair by pair; a move along one that is missing is reported as the
// bug it is, and the row still follows its process.

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "master/supervise/process_table.h"

namespace tcpfork {
namespace {

using enum ProcessState;

const std::vector<ProcessState> kAll = {kNew, kStarting, kServing, kDraining, kKilled, kHung, kBackoff, kFatal, kGone};

using Edge = std::pair<ProcessState, ProcessState>;

// "from, from -- why --> to" lines of the list in process_table.h, one by one.
std::set<Edge> edgesFrom(std::initializer_list<ProcessState> from, ProcessState to) {
  std::set<Edge> edges;
  for (ProcessState f : from) edges.insert({f, to});
  return edges;
}

const std::set<Edge> kDrawn = [] {
  std::set<Edge> all;
  for (const std::set<Edge>& line : {
           edgesFrom({kNew, kBackoff, kFatal}, kStarting),            // spawned
           edgesFrom({kNew, kBackoff, kFatal}, kBackoff),             // spawn failed
           edgesFrom({kStarting}, kServing),                          // its slot says serving
           edgesFrom({kStarting, kServing, kHung}, kBackoff),         // exited: due at once, or later in a crash loop
           edgesFrom({kStarting, kServing}, kFatal),                  // exited with the fatal code
           edgesFrom({kStarting, kServing}, kHung),                   // heartbeat or accepting stalled
           edgesFrom({kServing}, kKilled),                            // past max_rss_hard
           edgesFrom({kStarting, kServing}, kDraining),               // not wanted
           edgesFrom({kDraining}, kDraining),                         // fast stop
           edgesFrom({kDraining}, kKilled),                           // drain deadline, heartbeat
           edgesFrom({kStarting, kHung}, kKilled),                    // reload abandoned, not wanted
           edgesFrom({kBackoff, kFatal}, kGone),                      // not wanted
           edgesFrom({kStarting, kServing, kDraining, kKilled, kHung}, kGone),  // exited
       }) {
    all.insert(line.begin(), line.end());
  }
  return all;
}();

std::string describe(Edge edge) {
  return std::string(processStateName(edge.first)) + " -> " + std::string(processStateName(edge.second));
}

// The default logger's output while it lives.
class CapturedLog {
 public:
  CapturedLog() : saved_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("captured", std::make_shared<spdlog::sinks::ostream_sink_st>(text_));
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(std::move(logger));
  }
  ~CapturedLog() { spdlog::set_default_logger(saved_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  std::string take() {
    std::string text = text_.str();
    text_.str("");
    return text;
  }

 private:
  std::shared_ptr<spdlog::logger> saved_;
  std::ostringstream text_;
};

TEST(ProcessTable, AProcessLivesFromItsSpawnUntilItIsReaped) {
  std::vector<ProcessState> alive = {kStarting, kServing, kDraining, kKilled, kHung};
  for (ProcessState s : kAll) {
    ProcessRow row;
    row.state = s;
    bool expected = std::find(alive.begin(), alive.end(), s) != alive.end();
    EXPECT_EQ(live(row), expected) << processStateName(s);
  }
}

TEST(ProcessTable, HasTheListedEdgesOnly) {
  for (ProcessState from : kAll) {
    for (ProcessState to : kAll) {
      bool drawn = kDrawn.contains({from, to});
      EXPECT_EQ(edgeExists(from, to), drawn) << describe({from, to}) << (drawn ? " is listed" : " is not listed");
    }
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
}

// Every move is made: a row that refused one would no longer follow its
// process (a reaped worker's row left live, say). A move the list lacks is
// logged as a bug, naming both states; one it has is not.
TEST(ProcessTable, AMoveTheListLacksIsLoggedAsABugAndStillMade) {
  CapturedLog log;
  for (ProcessState from : kAll) {
    for (ProcessState to : kAll) {
      ProcessRow row;
      row.state = from;
      transition(row, to);
      EXPECT_EQ(row.state, to) << describe({from, to});
      std::string said = log.take();
      bool reported = said.find(describe({from, to}) + ", an edge the state diagram lacks") != std::string::npos;
      EXPECT_EQ(reported, !kDrawn.contains({from, to})) << describe({from, to}) << ": " << said;
    }
  }
}

}  // namespace
}  // namespace tcpfork
