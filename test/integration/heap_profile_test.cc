// Heap profiles: a worker running a module that leaks in a named function
// serves its sampled heap over HTTP, read by google-pprof and `go tool pprof`
// from the URL alone with that function on top of in-use space; the index
// checks of /debug/pprof/profile; `tcpfork -s heap` writes every worker's.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>

#include "test/integration/http_get.h"
#include "test/integration/pprof_run.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/test_module.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

// The function name of the first row of a pprof text report (flat order).
std::string topFunction(const std::string& report) {
  std::istringstream lines(report);
  static const std::regex kRow(R"(^\s*[0-9.]+[A-Za-z]*\s+[0-9.]+%\s+[0-9.]+%\s+[0-9.]+[A-Za-z]*\s+[0-9.]+%\s+(\S+))");
  for (std::string line; std::getline(lines, line);) {
    if (std::smatch m; std::regex_search(line, m, kRow)) return m[1];
  }
  return "";
}

std::string leakingMasterYaml(const std::string& dir) {
  return testModuleYaml("{leak_bytes: 4096}") + "profile:\n  dir: " + dir + "\n  http: true\n";
}

// 32768 requests of 4 KiB leaked: 128 MiB in use in leak_memory, some 250
// samples at the default 512 KiB (tcmalloc takes fewer than that suggests
// from a thread's first few MiB).
void leak(const RunningMaster& master) {
  ToolRun bench = runClient({"bench", "--addr", "127.0.0.1:" + std::to_string(master.port()), "-c", "4", "-w", "8",
                             "-n", "32768", "-d", "60", "-q"});
  ASSERT_EQ(bench.exitCode, 0) << bench.output;
}

TEST(HeapProfile, BothPprofToolsPutTheLeakingFunctionOnTopOfInUseSpace) {
  TempDir dir("profiles");
  RunningMaster master(1, leakingMasterYaml(dir.path));
  std::string base = "http://127.0.0.1:" + std::to_string(master.metricsPort());
#ifdef TCPFORK_SYSTEM_ALLOCATOR
  HttpResponse r = httpGet(master.metricsPort(), "/debug/pprof/heap?worker=0");
  EXPECT_EQ(r.status, 501) << r.body;
  EXPECT_NE(r.body.find("unavailable"), std::string::npos) << r.body;
  GTEST_SKIP() << "a sanitizer build allocates with the system allocator: no heap profiles (answered 501)";
#endif
  TCPFORK_REQUIRE(::access("/usr/bin/go", X_OK) == 0, "go (Debian package golang-go) missing");
  TCPFORK_REQUIRE(::access("/usr/bin/google-pprof", X_OK) == 0, "google-pprof (Debian package google-perftools) missing");
  leak(master);

  ToolRun go = runPprof({"/usr/bin/go", "tool", "pprof", "-top", base + "/debug/pprof/heap?worker=0"}, dir.path);
  EXPECT_EQ(go.exitCode, 0) << go.output;
  EXPECT_NE(go.output.find("Type: space"), std::string::npos) << go.output;
  EXPECT_EQ(topFunction(go.output), "leak_memory") << go.output;
  // On this host go tool pprof finds the worker binary and names its frames
  // with Go's own DWARF reader, which names no C++ member function; with
  // -symbolize=remote the names come from the worker, every frame named.
  ToolRun remote = runPprof(
      {"/usr/bin/go", "tool", "pprof", "-traces", "-symbolize=remote", base + "/debug/worker/0/pprof/heap"}, dir.path);
  EXPECT_EQ(remote.exitCode, 0) << remote.output;
  EXPECT_NE(remote.output.find("tcpfork::Connection::onReadable"), std::string::npos) << remote.output;
  EXPECT_EQ(remote.output.find("[tcpfork-worker]"), std::string::npos) << remote.output;

  ToolRun perl = runPprof({"/usr/bin/google-pprof", "--text", base + "/debug/worker/0/pprof/heap"}, dir.path);
  EXPECT_EQ(perl.exitCode, 0) << perl.output;
  EXPECT_EQ(topFunction(perl.output), "leak_memory") << perl.output;
  EXPECT_FALSE(filesEndingWith(dir.path, ".heap").empty());
  EXPECT_TRUE(filesEndingWith(dir.path, ".tmp").empty());
}

// format=folded: COUNT is the estimated bytes in use; the heaviest stack
// ends in the leaking function (the allocator's own frames left out).
TEST(HeapProfile, FoldedHeapStacksEndTheHeaviestInTheLeakingFunction) {
  TempDir dir("profiles");
  RunningMaster master(1, leakingMasterYaml(dir.path));
#ifdef TCPFORK_SYSTEM_ALLOCATOR
  GTEST_SKIP() << "a sanitizer build allocates with the system allocator: no heap profiles";
#endif
  leak(master);
  HttpResponse r = httpGet(master.metricsPort(), "/debug/worker/0/pprof/heap?format=folded");
  ASSERT_EQ(r.status, 200) << r.body;
  auto stacks = foldedStacks(r.body);
  ASSERT_FALSE(stacks.empty()) << r.body;
  auto heaviest = std::max_element(stacks.begin(), stacks.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
  EXPECT_EQ(heaviest->first.back(), "leak_memory") << r.body;
  EXPECT_EQ(heaviest->first.front(), "_start") << r.body;
  // 128 MiB leaked; the sampled estimate is within a few percent of it.
  EXPECT_GT(heaviest->second, uint64_t(64) << 20) << r.body;
  EXPECT_LT(heaviest->second, uint64_t(256) << 20) << r.body;
  EXPECT_EQ(httpGet(master.metricsPort(), "/debug/pprof/heap?worker=0&format=svg").status, 400);
}

TEST(HeapProfile, AWrappedOrAbsentWorkerIndexIsRefusedAsForCpuProfiles) {
  TempDir dir("profiles");
  RunningMaster master(1, leakingMasterYaml(dir.path));
  int port = master.metricsPort();
  for (const char* path : {"/debug/pprof/heap?worker=4294967296", "/debug/pprof/heap?worker=99999999999999999999",
                           "/debug/pprof/heap?worker=-1"}) {
    HttpResponse r = httpGet(port, path);
#ifdef TCPFORK_SYSTEM_ALLOCATOR
    EXPECT_EQ(r.status, 501) << path << ": " << r.body;
#else
    EXPECT_EQ(r.status, 400) << path << ": " << r.body;
#endif
  }
#ifndef TCPFORK_SYSTEM_ALLOCATOR
  EXPECT_EQ(httpGet(port, "/debug/pprof/heap?worker=9").status, 404);
  EXPECT_EQ(httpGet(port, "/debug/worker/9/pprof/heap").status, 404);
  EXPECT_EQ(master.log().find("pprof: heap profile"), std::string::npos) << "none may be asked for:\n" << master.log();
  EXPECT_EQ(httpGet(port, "/debug/pprof/heap").status, 200) << "worker 0 by default";
#endif
}

TEST(HeapProfile, SignalThroughTheMasterWritesEveryWorkersHeap) {
  TempDir dir("profiles");
  RunningMaster master(2, "profile:\n  dir: " + dir.path + "\n");
  ToolRun run = runTool("tcpfork", {"-c", master.configPath(), "-s", "heap"});
  ASSERT_EQ(run.exitCode, 0) << run.output;
#ifdef TCPFORK_SYSTEM_ALLOCATOR
  EXPECT_TRUE(master.waitForLog("no heap profile: this worker allocates with the system allocator", 10s, 2))
      << master.log();
  GTEST_SKIP() << "a sanitizer build allocates with the system allocator: no heap profiles (logged)";
#endif
  ASSERT_TRUE(master.waitForLog("SIGURG: heap profile written to", 10s, 2)) << master.log();
  auto heaps = filesEndingWith(dir.path, ".heap");
  ASSERT_EQ(heaps.size(), 2u);
  EXPECT_TRUE(filesEndingWith(dir.path, ".tmp").empty());
  for (pid_t pid : master.servingPids()) {
    EXPECT_EQ(std::count_if(heaps.begin(), heaps.end(),
                            [&](const std::string& h) { return h.find("-" + std::to_string(pid) + "-") != std::string::npos; }),
              1)
        << "one heap profile per worker";
  }
  for (const auto& heap : heaps) {
    EXPECT_NE(master.log().find("heap profile written to " + heap), std::string::npos) << master.log();
    std::string text = readFile(heap);
    EXPECT_TRUE(text.starts_with("heap profile: ")) << text.substr(0, 200);
    EXPECT_NE(text.find("@ heap_v2/524288"), std::string::npos) << text.substr(0, 200);
  }
}

TEST(HeapProfile, OffUnlessProfileHttpIsOn) {
  RunningMaster master(1);
  EXPECT_EQ(httpGet(master.metricsPort(), "/debug/pprof/heap?worker=0").status, 404);
}

}  // namespace
}  // namespace tcpfork::test
