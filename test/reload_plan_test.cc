// What a HUP may change: restart-only keys are put back and named; the rest
// of the new file applies; too many workers refuse the reload.

#include <gtest/gtest.h>

#include "master/reload_plan.h"

namespace tcpfork {
namespace {

TEST(ReloadPlan, PutsBackWhatChangesOnlyOnRestart) {
  Config running;
  running.name = "edge";
  running.user = "nobody";
  Config next = running;
  next.name = "renamed";
  next.pidFile = "/tmp/other.pid";
  next.maxWorkers = 8;
  next.metricsListen = "127.0.0.1:9999";
  next.profile.dir = "/tmp/elsewhere";
  next.profile.http = true;
  next.user = "root";
  next.group = "adm";
  next.workers = 3;
  next.worker.maxConnections = 7;
  next.worker.limits.idleTimeout = std::chrono::seconds(5);
  next.metricsNamespace = "tcp_server_demo2";
  ReloadPlan plan = planReload(running, next);
  EXPECT_EQ(plan.kept, (std::vector<std::string>{"name", "pid_file", "max_workers", "metrics.listen", "profile.dir",
                                                  "profile.http", "user", "group"}));
  EXPECT_EQ(plan.next.name, "edge");
  EXPECT_EQ(plan.next.pidFile, running.pidFile);
  EXPECT_EQ(plan.next.maxWorkers, running.maxWorkers);
  EXPECT_EQ(plan.next.metricsListen, running.metricsListen);
  EXPECT_EQ(plan.next.profile.dir, running.profile.dir);
  EXPECT_FALSE(plan.next.profile.http);
  EXPECT_EQ(plan.next.user, "nobody");
  EXPECT_EQ(plan.next.group, "");
  // What a reload is for goes through.
  EXPECT_EQ(plan.next.workers, 3u);
  EXPECT_EQ(plan.next.worker.maxConnections, 7u);
  EXPECT_EQ(plan.next.worker.limits.idleTimeout, std::chrono::seconds(5));
  EXPECT_EQ(plan.next.metricsNamespace, "tcp_server_demo2");
  EXPECT_TRUE(plan.refusal.empty());
}

TEST(ReloadPlan, AnUnchangedFileKeepsNothingBack) {
  Config running;
  ReloadPlan plan = planReload(running, running);
  EXPECT_TRUE(plan.kept.empty());
  EXPECT_TRUE(plan.refusal.empty());
}

// max_workers sizes the stats segment, so the running one bounds the new workers.
TEST(ReloadPlan, RefusesMoreWorkersThanTheRunningMaxWorkers) {
  Config running;
  running.maxWorkers = 4;
  Config next = running;
  next.maxWorkers = 16;
  next.workers = 8;
  ReloadPlan plan = planReload(running, next);
  EXPECT_EQ(plan.refusal, "workers 8 exceeds max_workers 4");
}

}  // namespace
}  // namespace tcpfork
