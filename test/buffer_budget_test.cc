// BufferBudget without a worker: when it sheds, and when it asks the
// allocator to return freed pages at once (its pressure hook).
#include "worker/buffer_budget.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

namespace tcpfork {
namespace {

constexpr size_t kLimit = 1000;

struct Budget {
  PendingTable pendings;
  std::vector<bool> pressure;  // every call of the hook, in order
  size_t rounds = 0;
  BufferBudget budget{kLimit, pendings,
                      {[](bool) {},
                       [this] {
                         ++rounds;
                         return BufferBudget::Round{};
                       },
                       [] {}, [this](bool on) { pressure.push_back(on); }}};
};

TEST(BufferBudget, PressureBeginsPastHalfTheBudgetAndEndsAtATickUnderAQuarter) {
  Budget b;
  BufferBudget::Share one, two;
  b.budget.report(one, kLimit / 2);  // half is not past half
  EXPECT_TRUE(b.pressure.empty());
  b.budget.report(two, 1);
  EXPECT_EQ(b.pressure, std::vector<bool>{true});
  b.budget.report(two, 100);  // still pressed: not called again
  EXPECT_EQ(b.pressure, std::vector<bool>{true});
  b.budget.report(one, kLimit / 4 - 100);  // the sum at a quarter exactly: not under it
  b.budget.tick();
  EXPECT_EQ(b.pressure, std::vector<bool>{true});
  b.budget.leave(two);  // under a quarter, but only a tick ends the pressure
  EXPECT_EQ(b.pressure, std::vector<bool>{true});
  b.budget.tick();
  EXPECT_EQ((b.pressure), (std::vector<bool>{true, false}));
  b.budget.tick();
  EXPECT_EQ((b.pressure), (std::vector<bool>{true, false}));
  EXPECT_EQ(b.rounds, 0u);
}

TEST(BufferBudget, PastTheBudgetAShedRoundRunsUnderPressure) {
  Budget b;
  BufferBudget::Share one;
  b.budget.report(one, kLimit + 1);
  EXPECT_EQ(b.pressure, std::vector<bool>{true});
  EXPECT_EQ(b.rounds, 1u);
}

}  // namespace
}  // namespace tcpfork
