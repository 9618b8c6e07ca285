// The master's lifecycle (master/lifecycle.h): the edges drawn there, what
// each asks the Master to do, and that an event without an edge changes
// nothing.

#include <gtest/gtest.h>

#include "master/lifecycle.h"

namespace tcpfork {
namespace {

using L = Lifecycle;
using enum Lifecycle::EventKind;
using namespace std::chrono_literals;

const L::Clock::time_point t0 = L::Clock::now();

L::Actions on(L& lifecycle, L::EventKind kind, L::Clock::time_point now = t0, Millis drain = Millis(5000)) {
  return lifecycle.on({kind, now, drain});
}

TEST(MasterLifecycle, AnnouncesReadyOnceEveryWorkerServes) {
  L l;
  EXPECT_EQ(l.phase(), L::Phase::kStarting);
  EXPECT_EQ(on(l, kWorkersServe).bits(), L::kAnnounceReady);
  EXPECT_EQ(l.phase(), L::Phase::kServing);
  EXPECT_TRUE(on(l, kWorkersServe).none()) << "ready is announced once";
}

TEST(MasterLifecycle, AReloadOwesReadyUntilItsGenerationSettles) {
  L l;
  on(l, kWorkersServe);
  EXPECT_TRUE(on(l, kReloadSettled).none()) << "nothing to settle";
  EXPECT_EQ(on(l, kReloadAsked).bits(), L::kNotifyReloading | L::kReadConfig);
  EXPECT_EQ(l.reload(), L::Reload::kReading);
  EXPECT_TRUE(on(l, kReloadStarted).none());
  EXPECT_EQ(l.reload(), L::Reload::kSwitching);
  EXPECT_EQ(on(l, kReloadSettled).bits(), L::kNotifyReady);
  EXPECT_EQ(l.reload(), L::Reload::kIdle);
  EXPECT_TRUE(on(l, kReloadSettled).none());
}

TEST(MasterLifecycle, ARefusedReloadSaysReadyAtOnce) {
  L l;
  on(l, kWorkersServe);
  on(l, kReloadAsked);
  EXPECT_EQ(on(l, kReloadRefused).bits(), L::kNotifyReady);
  EXPECT_EQ(l.reload(), L::Reload::kIdle);
}

TEST(MasterLifecycle, AReloadAskedForDuringASwitchRunsOnceItSettles) {
  L l;
  on(l, kWorkersServe);
  on(l, kReloadAsked);
  on(l, kReloadStarted);
  EXPECT_EQ(on(l, kReloadAsked).bits(), L::kSayReloadWaits);
  EXPECT_EQ(on(l, kReloadAsked).bits(), L::kSayReloadWaits);
  EXPECT_EQ(l.reload(), L::Reload::kQueued);
  // One reload for both HUPs, of the file as it is then.
  EXPECT_EQ(on(l, kReloadSettled).bits(), L::kNotifyReloading | L::kReadConfig);
  on(l, kReloadStarted);
  EXPECT_EQ(on(l, kReloadSettled).bits(), L::kNotifyReady);
}

TEST(MasterLifecycle, AStopEndsAReloadWithoutReady) {
  L l;
  on(l, kWorkersServe);
  on(l, kReloadAsked);
  on(l, kReloadStarted);
  on(l, kReloadAsked);
  EXPECT_EQ(on(l, kQuit).bits(), L::kStopWorkers);
  EXPECT_EQ(l.reload(), L::Reload::kIdle);
  EXPECT_TRUE(on(l, kReloadSettled).none());
  EXPECT_TRUE(on(l, kReloadAsked).none()) << "no reload while stopping";
}

TEST(MasterLifecycle, AQuitWhileTheNewMasterStartsWaitsUntilItServes) {
  L l;
  on(l, kWorkersServe);
  EXPECT_EQ(on(l, kUpgradeAsked).bits(), L::kStartUpgrade);
  EXPECT_EQ(l.upgrade(), L::Upgrade::kNone) << "not before it runs";
  on(l, kUpgradeStarted);
  EXPECT_TRUE(on(l, kUpgradeAsked).none()) << "one upgrade at a time";
  EXPECT_EQ(on(l, kQuit).bits(), L::kSayQuitWaits);
  EXPECT_FALSE(l.stopping());
  EXPECT_TRUE(on(l, kQuit).none()) << "said once";
  EXPECT_EQ(on(l, kUpgradeServes, t0, Millis(5000)).bits(), L::kStopWorkers);
  EXPECT_EQ(l.phase(), L::Phase::kStoppingGracefully);
  EXPECT_TRUE(l.handedOver());
  EXPECT_EQ(l.stopDeadline(), t0 + 5s + L::kStopGrace);
}

TEST(MasterLifecycle, AfterAHandOverTheOldMasterServesUntilQuit) {
  L l;
  on(l, kWorkersServe);
  on(l, kUpgradeAsked);
  on(l, kUpgradeStarted);
  EXPECT_TRUE(on(l, kUpgradeServes).none());
  EXPECT_TRUE(l.handedOver());
  EXPECT_FALSE(l.stopping());
  EXPECT_TRUE(on(l, kUpgradeAsked).none());
  EXPECT_EQ(on(l, kQuit).bits(), L::kStopWorkers);
  EXPECT_TRUE(l.handedOver()) << "the stop leaves the service to the new master";
}

TEST(MasterLifecycle, AFailedUpgradeGivesTheServiceBackAndDropsTheQuitItHeld) {
  L l;
  on(l, kWorkersServe);
  on(l, kUpgradeAsked);
  on(l, kUpgradeStarted);
  on(l, kQuit);
  EXPECT_EQ(on(l, kUpgradeFailed).bits(), L::kNotifyMainPid | L::kReclaimService);
  EXPECT_EQ(l.upgrade(), L::Upgrade::kNone);
  EXPECT_FALSE(l.stopping());
  EXPECT_EQ(on(l, kUpgradeAsked).bits(), L::kStartUpgrade) << "another try";
  EXPECT_EQ(on(l, kQuit).bits(), L::kStopWorkers);
}

TEST(MasterLifecycle, AFastStopKillsANewMasterStillStarting) {
  L l;
  on(l, kWorkersServe);
  on(l, kUpgradeAsked);
  on(l, kUpgradeStarted);
  EXPECT_EQ(on(l, kFastStop).bits(), L::kAbortUpgrade | L::kStopWorkers);
  EXPECT_TRUE(l.stoppingFast());
  // The abort reports the upgrade failed: no READY=1 from a stopping master.
  EXPECT_EQ(on(l, kUpgradeFailed).bits(), L::kReclaimService);
  EXPECT_TRUE(on(l, kUpgradeAsked).none());
}

TEST(MasterLifecycle, AStopKillsWhatOutlivesItsDeadlineThenExitsWhenNoWorkerRuns) {
  L l;
  on(l, kWorkersServe);
  EXPECT_TRUE(on(l, kTick, t0 + 1h).none()) << "no deadline before a stop";
  EXPECT_TRUE(on(l, kWorkersGone).none()) << "no worker is no reason to exit before a stop";
  on(l, kQuit, t0, Millis(5000));
  EXPECT_TRUE(on(l, kQuit).none());
  EXPECT_TRUE(on(l, kTick, t0 + 5s + L::kStopGrace - 1ms).none());
  EXPECT_EQ(on(l, kTick, t0 + 5s + L::kStopGrace).bits(), L::kKillWorkers);
  EXPECT_TRUE(on(l, kTick, t0 + 5s + L::kStopGrace + 1ms).none()) << "killed once per grace";
  EXPECT_EQ(on(l, kTick, t0 + 5s + 2 * L::kStopGrace).bits(), L::kKillWorkers);
  EXPECT_EQ(on(l, kWorkersGone).bits(), L::kExitLoop);
  EXPECT_EQ(l.phase(), L::Phase::kDone);
  EXPECT_TRUE(on(l, kWorkersGone).none());
  EXPECT_TRUE(on(l, kFastStop).none());
  EXPECT_TRUE(on(l, kTick, t0 + 1h).none());
}

TEST(MasterLifecycle, TermHurriesAGracefulStop) {
  L l;
  on(l, kWorkersServe);
  on(l, kQuit, t0, Millis(30000));
  EXPECT_EQ(on(l, kFastStop, t0 + 1s).bits(), L::kStopWorkers);
  EXPECT_TRUE(l.stoppingFast());
  EXPECT_EQ(l.stopDeadline(), t0 + 1s + L::kStopGrace);
  EXPECT_EQ(on(l, kFastStop, t0 + 2s).bits(), L::kStopWorkers) << "TERM again tells the workers again";
  EXPECT_EQ(l.stopDeadline(), t0 + 2s + L::kStopGrace);
  EXPECT_TRUE(on(l, kQuit).none()) << "QUIT does not slow a fast stop";
  EXPECT_TRUE(l.stoppingFast());
}

TEST(MasterLifecycle, AStartingMasterStopsToo) {
  L l;
  EXPECT_EQ(on(l, kFastStop).bits(), L::kStopWorkers);
  EXPECT_TRUE(on(l, kWorkersServe).none()) << "a stopping master is never announced ready";
}

}  // namespace
}  // namespace tcpfork
