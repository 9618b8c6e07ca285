// Waits that silence alone does not bound. A frame that trickles in is cut
// off at its start + idle_timeout, not at the first read after that (a drip
// just under the timeout lived twice as long). A connection whose pending
// requests never complete (a stuck backend) closes once none has completed
// for handler.pending_timeout, whether its client stays silent or has gone
// (its socket was left in CLOSE-WAIT, reading paused, holding a descriptor
// and a max_connections slot for good).

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/socket.h"
#include "test/integration/process.h"
#include "test/integration/running_master.h"
#include "test/integration/test_module.h"

namespace tcpfork::test {
namespace {

// A module that never completes what it defers: a stuck backend.
std::string holdingModuleYaml(unsigned maxPending) {
  return testModuleYaml("{defer_every: 1, hold: true}",
                        "  max_pending: " + std::to_string(maxPending) + "\n  pending_timeout: 2s\n");
}

TEST(Deadlines, AFrameDrippingJustUnderIdleTimeoutIsCutOffAtItsStartPlusTheTimeout) {
  RunningMaster master(1, "idle_timeout: 3s\n");
  TestConnection c(master.port(), 5s);
  setNoDelay(c.fd());
  std::vector<std::byte> frame = submitFrame(1, std::string(100, 'd'));
  c.send(std::span<const std::byte>(frame).first(1));
  // A byte every 2.8 s: each one restarts the idle timer, so only the
  // frame's own deadline (3 s after its first byte) can end it.
  EXPECT_FALSE(c.closedWithin(2800ms)) << "closed before idle_timeout";
  c.send(std::span<const std::byte>(frame).subspan(1, 1));
  // Before: cut at the first read past the deadline (5.6 s), or idle at 5.8 s.
  EXPECT_TRUE(c.closedWithin(2s)) << "not cut off at the frame's start + idle_timeout";
  EXPECT_TRUE(master.waitForLog("a frame has trickled in for over idle_timeout", 2s)) << master.log();
  EXPECT_EQ(master.metric("tcp_server_idle_timeouts_total"), 1);
}

TEST(Deadlines, ASilentClientWhosePendingRequestNeverCompletesIsClosed) {
  RunningMaster master(1, holdingModuleYaml(1024));
  TestConnection c(master.port(), 5s);
  c.send(submitFrame(7));
  // Before: the idle timer saw a request pending and re-armed for ever.
  EXPECT_TRUE(c.closedWithin(15s)) << master.log();
  EXPECT_TRUE(master.waitForLog("1 requests pending in the handler and none completed for handler.pending_timeout", 2s))
      << master.log();
  EXPECT_EQ(master.metric("tcp_server_idle_timeouts_total"), 1);
  EXPECT_TRUE(waitUntil([&] { return master.metric("tcp_server_client_connected") == 0; }, 5s)) << master.scrape();
}

TEST(Deadlines, ClientsThatCloseWhilePausedOnPendingRequestsDoNotLeakTheirConnections) {
  RunningMaster master(1, holdingModuleYaml(4));
  constexpr int kClients = 20;
  {
    std::vector<std::unique_ptr<TestConnection>> clients;
    std::vector<std::byte> burst;
    for (uint64_t id = 0; id < 64; ++id) burst = concat(std::move(burst), submitFrame(id));
    for (int i = 0; i < kClients; ++i) {
      clients.push_back(std::make_unique<TestConnection>(master.port(), 5s));
      clients.back()->send(burst);  // 4 pending: reading pauses with the rest unread
    }
    ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_client_connected") == kClients; }, 10s))
        << master.scrape();
  }  // every client closes
  // Before: reading stayed paused, EOF was never seen, and all 20 stayed
  // open (CLOSE-WAIT) for as long as the worker lived.
  EXPECT_TRUE(waitUntil([&] { return master.metric("tcp_server_client_connected") == 0; }, 20s)) << master.scrape();
  EXPECT_EQ(master.metric("tcp_server_idle_timeouts_total"), kClients);
}

}  // namespace
}  // namespace tcpfork::test
