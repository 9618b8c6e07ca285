// The steering decision (steering/policy.h): who takes new connections.
#include <gtest/gtest.h>

#include "steering/policy.h"

namespace tcpfork::steering {
namespace {

using V = std::vector<unsigned>;

WorkerView healthy(unsigned index) { return {index, true, 40, 0}; }
WorkerView overloaded(unsigned index) {
  WorkerView v = healthy(index);
  v.overloaded = true;
  return v;
}

TEST(SteeringPolicy, EveryHealthyWorkerIsEligible) {
  Decision d = decide({healthy(0), healthy(1), healthy(2)}, {}, {});
  EXPECT_EQ(d.eligible, (V{0, 1, 2}));
  EXPECT_FALSE(d.everyoneOut);
}

TEST(SteeringPolicy, AStaleHeartbeatOrALongQueueTakesAWorkerOut) {
  std::vector<WorkerView> views = {healthy(0), {1, true, 251, 0}, {2, true, 40, 257}, {3, false, 0, 0}};
  Decision d = decide(views, {250, 256}, {});
  EXPECT_EQ(d.eligible, (V{0}));
  EXPECT_EQ(d.why, (std::vector<Exclusion>{Exclusion::kNone, Exclusion::kStale, Exclusion::kQueue,
                                           Exclusion::kNotServing}));
  // Exactly at the limits is still in.
  d = decide({{0, true, 250, 256}}, {250, 256}, {});
  EXPECT_EQ(d.eligible, (V{0}));
}

TEST(SteeringPolicy, AWorkerAtMaxConnectionsIsTakenOut) {
  WorkerView full = healthy(1);
  full.full = true;
  Decision d = decide({healthy(0), full}, {250, 256}, {});
  EXPECT_EQ(d.eligible, std::vector<unsigned>{0});
  EXPECT_EQ(d.why[1], Exclusion::kFull);
  EXPECT_EQ(exclusionName(d.why[1]), "full");
}

TEST(SteeringPolicy, AWorkerOutForItsQueueComesBackAtHalfOfIt) {
  std::vector<Exclusion> out = {Exclusion::kNone, Exclusion::kQueue};
  EXPECT_EQ(decide({healthy(0), {1, true, 40, 129}}, {250, 256}, out).eligible, (V{0}));
  EXPECT_EQ(decide({healthy(0), {1, true, 40, 128}}, {250, 256}, out).eligible, (V{0, 1}));
  // One that was in stays in up to the limit.
  EXPECT_EQ(decide({healthy(0), {1, true, 40, 200}}, {250, 256}, {}).eligible, (V{0, 1}));
}

TEST(SteeringPolicy, WithEveryoneOutAllServingWorkersTakeTheirShare) {
  Decision d = decide({{0, true, 900, 0}, {1, true, 40, 999}, {2, false, 0, 0}}, {250, 256}, {});
  EXPECT_TRUE(d.everyoneOut);
  EXPECT_EQ(d.eligible, (V{0, 1}));
  // Nobody serves (all starting): every index, as plain SO_REUSEPORT would.
  d = decide({{0, false, 0, 0}, {1, false, 0, 0}}, {250, 256}, {});
  EXPECT_EQ(d.eligible, (V{0, 1}));
}

TEST(SteeringPolicy, AnOverloadedWorkerIsOutWhileAnotherIsNot) {
  Decision d = decide({healthy(0), overloaded(1), overloaded(2)}, {250, 256}, {});
  EXPECT_EQ(d.eligible, (V{0}));
  EXPECT_EQ(d.why, (std::vector<Exclusion>{Exclusion::kNone, Exclusion::kOverloaded, Exclusion::kOverloaded}));
  EXPECT_EQ(exclusionName(d.why[1]), "overloaded");
  EXPECT_FALSE(d.everyoneOut);
  // Its flag down again, it is back at the next decision.
  d = decide({healthy(0), healthy(1), overloaded(2)}, {250, 256}, d.why);
  EXPECT_EQ(d.eligible, (V{0, 1}));
}

TEST(SteeringPolicy, WithEveryQualifyingWorkerOverloadedNoneIsTakenOutForIt) {
  Decision d = decide({overloaded(0), overloaded(1)}, {250, 256}, {});
  EXPECT_EQ(d.eligible, (V{0, 1}));
  EXPECT_EQ(d.why, (std::vector<Exclusion>{Exclusion::kNone, Exclusion::kNone}));
  EXPECT_FALSE(d.everyoneOut);
  // The one that is not overloaded is stale: it does not count, so the
  // overloaded one keeps taking new connections.
  d = decide({overloaded(0), {1, true, 900, 0}}, {250, 256}, {});
  EXPECT_EQ(d.eligible, (V{0}));
  EXPECT_EQ(d.why[0], Exclusion::kNone);
  // Nor does one that does not serve, nor a full one.
  WorkerView full = healthy(2);
  full.full = true;
  d = decide({overloaded(0), {1, false, 0, 0}, full}, {250, 256}, {});
  EXPECT_EQ(d.eligible, (V{0}));
}

TEST(SteeringPolicy, AnOverloadedWorkerOutForAnotherReasonSaysThatReason) {
  WorkerView stale = overloaded(1);
  stale.heartbeatAgeMs = 900;
  Decision d = decide({healthy(0), stale}, {250, 256}, {});
  EXPECT_EQ(d.why[1], Exclusion::kStale);
}

}  // namespace
}  // namespace tcpfork::steering
