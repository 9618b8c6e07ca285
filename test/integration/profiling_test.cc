// CPU profiling in production: SIGTRAP through the master and to one worker,
// auto-stop, the profile directory's safety, the auto-profiler and the HTTP
// endpoint; every profile is read back with google-pprof.

#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>
#include <thread>

#include "test/integration/http_get.h"
#include "test/integration/pprof_run.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/test_module.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

ToolRun pprofText(const std::string& profile) {
  std::string log = tempPath("pprof.out");
  ChildProcess pprof({"/usr/bin/google-pprof", "--text", binary("tcpfork-worker"), profile}, {}, log);
  auto status = pprof.waitExit(60s);
  return ToolRun{status ? WEXITSTATUS(*status) : -1, readFile(log), {}};
}

std::string profileYaml(const std::string& dir, const std::string& more = "") {
  return "profile:\n  dir: " + dir + "\n" + more;
}

BackgroundClient load(const RunningMaster& master, int seconds) {
  return BackgroundClient({"--addr", "127.0.0.1:" + std::to_string(master.port()), "-c", "8", "-w", "64", "-d",
                           std::to_string(seconds), "-q"});
}

// How many workers hold at least one client connection, from /metrics.
size_t workersWithClients(const RunningMaster& master) {
  const std::string prefix = "tcp_server_worker_client_connected{";
  std::istringstream lines(master.scrape());
  size_t busy = 0;
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(prefix)) continue;
    if (std::stod(line.substr(line.rfind(' ') + 1)) > 0) ++busy;
  }
  return busy;
}

// Load that every worker takes a share of. SO_REUSEPORT spreads connections by
// a hash of their ports, so with few connections a worker can get none and its
// profile no samples (8 over 2 workers: 1 run in 128); 32 connections make that
// 1 in 2^31, and the wait below turns even that into a clear failure.
BackgroundClient loadOnEveryWorker(const RunningMaster& master, size_t workers, int seconds) {
  BackgroundClient bench({"--addr", "127.0.0.1:" + std::to_string(master.port()), "-c", "32", "-w", "16", "-d",
                          std::to_string(seconds), "-q"});
  bool spread = waitUntil([&] { return workersWithClients(master) == workers; }, 10s);
  EXPECT_TRUE(spread) << "the load reached only " << workersWithClients(master) << " of " << workers << " workers";
  return bench;
}

class Profiling : public ::testing::Test {
 protected:
  void SetUp() override {
    TCPFORK_REQUIRE(::access("/usr/bin/google-pprof", X_OK) == 0,
                    "google-pprof (Debian package google-perftools) missing");
  }
};

TEST_F(Profiling, TrapThroughTheMasterProfilesEveryWorker) {
  TempDir dir("profiles");
  RunningMaster master(2, profileYaml(dir.path, "  duration: 30s\n"));
  BackgroundClient bench = loadOnEveryWorker(master, 2, 60);
  ToolRun start = runTool("tcpfork", {"-c", master.configPath(), "-s", "profile"});
  ASSERT_EQ(start.exitCode, 0) << start.output;
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_profiling_active") == 2; }, 5s)) << master.log();
  // Let the profilers take samples under load: this wait is the profiling window.
  std::this_thread::sleep_for(1500ms);
  runTool("tcpfork", {"-c", master.configPath(), "-s", "profile"});
  ASSERT_TRUE(master.waitForLog("wrote CPU profile", 5s, 2)) << master.log();
  EXPECT_EQ(master.metric("tcp_server_profiling_active"), 0);

  auto profiles = filesEndingWith(dir.path, ".prof");
  ASSERT_EQ(profiles.size(), 2u);
  EXPECT_TRUE(filesEndingWith(dir.path, ".tmp").empty());
  for (pid_t pid : master.servingPids()) {
    EXPECT_EQ(std::count_if(profiles.begin(), profiles.end(),
                            [&](const std::string& p) { return p.find("-" + std::to_string(pid) + "-") != std::string::npos; }),
              1)
        << "one profile per worker";
  }
  struct stat st {};
  ASSERT_EQ(::stat(dir.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const auto& profile : profiles) {
    EXPECT_NE(master.log().find("wrote CPU profile " + profile), std::string::npos) << master.log();
    ToolRun text = pprofText(profile);
    EXPECT_EQ(text.exitCode, 0) << text.output;
    EXPECT_NE(text.output.find("Total:"), std::string::npos) << text.output;
    EXPECT_NE(text.output.find("tcpfork::"), std::string::npos) << "no worker functions in:\n" << text.output;
  }
  bench.interrupt();
  bench.finish();
}

TEST_F(Profiling, TrapToOneWorkerStopsByItself) {
  TempDir dir("profiles");
  RunningMaster master(2, profileYaml(dir.path, "  duration: 500ms\n"));
  pid_t one = *master.servingPids().begin();
  ::kill(one, SIGTRAP);
  ASSERT_TRUE(waitUntil([&] { return filesEndingWith(dir.path, ".prof").size() == 1; }, 5s)) << master.log();
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_profiling_active") == 0; }, 3s));
  auto profiles = filesEndingWith(dir.path, ".prof");
  EXPECT_NE(profiles[0].find("-" + std::to_string(one) + "-"), std::string::npos) << profiles[0];
  EXPECT_EQ(pprofText(profiles[0]).exitCode, 0);
}

TEST_F(Profiling, AWorkerKilledMidProfileLeavesNoBrokenFile) {
  TempDir dir("profiles");
  RunningMaster master(1, profileYaml(dir.path));
  pid_t victim = *master.servingPids().begin();
  ::kill(victim, SIGTRAP);
  ASSERT_TRUE(waitUntil([&] { return filesEndingWith(dir.path, ".tmp").size() == 1; }, 5s));
  ::kill(victim, SIGKILL);
  ASSERT_TRUE(master.waitForLog("removed 1 unfinished CPU profile(s) of worker pid " + std::to_string(victim), 5s))
      << master.log();
  EXPECT_TRUE(filesEndingWith(dir.path, ".tmp").empty());
  EXPECT_TRUE(filesEndingWith(dir.path, ".prof").empty());
  EXPECT_TRUE(master.waitServing(1, 5s));
  EXPECT_EQ(master.metric("tcp_server_profiling_active"), 0) << "the replacement inherited a stale flag";
}

TEST_F(Profiling, RefusesAProfileDirectoryThatIsASymlink) {
  TempDir target("profiles");
  ASSERT_EQ(::mkdir(target.path.c_str(), 0777), 0);
  std::string planted = tempPath("planted");
  ASSERT_EQ(::symlink(target.path.c_str(), planted.c_str()), 0);
  std::string config = tempPath("symlink.yaml");
  std::ofstream(config) << RunningMaster::baseYaml("tcpfork-test-symlink-" + uniqueTag(),
                                                   tempPath("symlink.pid"), 1, planted);
  ToolRun run = runTool("tcpfork", {"-c", config}, 10s);
  EXPECT_EQ(run.exitCode, 1);
  EXPECT_NE(run.output.find("a symlink is refused"), std::string::npos) << run.output;
  ::unlink(planted.c_str());
}

TEST_F(Profiling, AutoProfilerTriggersOnceThenCoolsDown) {
  TempDir dir("profiles");
  RunningMaster master(1, profileYaml(dir.path, "  duration: 300ms\n  auto:\n    enabled: true\n    interval: 200ms\n"
                                                "    threshold: 0.001\n    consecutive: 2\n    cooldown: 1h\n"));
  BackgroundClient bench = load(master, 4);
  ASSERT_TRUE(master.waitForLog("auto-profiling worker 0", 5s)) << master.log();
  ASSERT_TRUE(waitUntil([&] { return filesEndingWith(dir.path, ".prof").size() == 1; }, 5s)) << master.log();
  // Load continues above the threshold for many more samples: the cooldown holds.
  bench.finish();
  EXPECT_EQ(master.metric("tcp_server_auto_profiles_total"), 1);
  EXPECT_EQ(filesEndingWith(dir.path, ".prof").size(), 1u);
}

TEST_F(Profiling, HttpEndpointReturnsAProfilePprofReads) {
  TempDir dir("profiles");
  RunningMaster master(2, profileYaml(dir.path, "  http: true\n"));
  // Load for longer than the test needs (sanitizer builds are slow); stopped below.
  BackgroundClient bench = loadOnEveryWorker(master, 2, 60);
  HttpResponse r = httpGet(master.metricsPort(), "/debug/worker/1/pprof/profile?seconds=1");
  ASSERT_EQ(r.status, 200) << r.body;
  std::string file = tempPath("http.prof");
  std::ofstream(file, std::ios::binary) << r.body;
  ToolRun text = pprofText(file);
  EXPECT_EQ(text.exitCode, 0) << text.output;
  EXPECT_NE(text.output.find("Total:"), std::string::npos) << text.output;

  // google-pprof fetching the URL itself, in the form operators type.
  std::string log = tempPath("pprof-url.out");
  // PPROF_TMPDIR: google-pprof keeps a copy of fetched profiles there (default ~/pprof).
  ChildProcess fetch({"/usr/bin/env", "PPROF_TMPDIR=" + dir.path, "/usr/bin/google-pprof", "--text", binary("tcpfork-worker"),
                      "http://127.0.0.1:" + std::to_string(master.metricsPort()) + "/debug/pprof/profile?seconds=1"},
                     {}, log);
  auto status = fetch.waitExit(60s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 0) << readFile(log);
  EXPECT_NE(readFile(log).find("Total:"), std::string::npos) << readFile(log);

  EXPECT_EQ(httpGet(master.metricsPort(), "/debug/pprof/profile?seconds=0").status, 400);
  EXPECT_EQ(httpGet(master.metricsPort(), "/debug/pprof/profile?seconds=1&worker=9").status, 404);
  bench.interrupt();
  bench.finish();
}

// The pprof tools name a fetched profile's frames through the symbol
// protocol: `go tool pprof` POSTs its addresses to /debug/pprof/symbol (which
// answered 413 while the admin port refused every body), and google-pprof
// without a binary asks /debug/worker/K/pprof/symbol and .../cmdline.
TEST_F(Profiling, PprofToolsNameTheFramesOfAProfileFromItsUrlAlone) {
  TCPFORK_REQUIRE(::access("/usr/bin/go", X_OK) == 0, "go (Debian package golang-go) missing");
  TempDir dir("profiles");
  RunningMaster master(1, testModuleYaml("{burn_us: 300}") + profileYaml(dir.path, "  http: true\n"));
  BackgroundClient bench = loadOnEveryWorker(master, 1, 60);
  std::string base = "http://127.0.0.1:" + std::to_string(master.metricsPort());
  auto run = [&](const std::vector<std::string>& argv) { return runPprof(argv, dir.path); };
  ToolRun go = run({"/usr/bin/go", "tool", "pprof", "-top", "-cum", base + "/debug/pprof/profile?seconds=2&worker=0"});
  EXPECT_EQ(go.exitCode, 0) << go.output;
  EXPECT_EQ(go.output.find("server response"), std::string::npos) << go.output;
  EXPECT_TRUE(std::regex_search(go.output, std::regex(R"( burn_cpu\n)"))) << go.output;
  EXPECT_TRUE(std::regex_search(go.output, std::regex(R"( test_handle\n)"))) << go.output;

  // -symbolize=remote on the worker's own URL (go asks its
  // /debug/worker/0/pprof/symbol): the worker's C++ frames named too, which
  // Go's reader of the binary on this host leaves as [tcpfork-worker].
  ToolRun remote = run({"/usr/bin/go", "tool", "pprof", "-top", "-cum", "-symbolize=remote",
                        base + "/debug/worker/0/pprof/profile?seconds=2"});
  EXPECT_EQ(remote.exitCode, 0) << remote.output;
  EXPECT_TRUE(std::regex_search(remote.output, std::regex(R"( burn_cpu\n)"))) << remote.output;
  EXPECT_NE(remote.output.find(" tcpfork::Connection::onReadable\n"), std::string::npos) << remote.output;

  ToolRun perl = run({"/usr/bin/google-pprof", "--text", "--cum", "--seconds=2", base + "/debug/worker/0/pprof/profile"});
  EXPECT_EQ(perl.exitCode, 0) << perl.output;
  EXPECT_TRUE(std::regex_search(perl.output, std::regex(R"( burn_cpu\n)"))) << perl.output;
  EXPECT_TRUE(std::regex_search(perl.output, std::regex(R"( test_handle\n)"))) << perl.output;
  bench.interrupt();
  bench.finish();
}

// format=folded: the worker's stacks, named, root first; a module burning
// CPU in burn_cpu() under test_handle has most of the samples there.
TEST_F(Profiling, FoldedCpuStacksNameTheBurningFunctionWithMostSamples) {
  TempDir dir("profiles");
  RunningMaster master(1, testModuleYaml("{burn_us: 300}") + profileYaml(dir.path, "  http: true\n"));
  BackgroundClient bench = loadOnEveryWorker(master, 1, 60);
  HttpResponse r = httpGet(master.metricsPort(), "/debug/pprof/profile?seconds=2&worker=0&format=folded");
  ASSERT_EQ(r.status, 200) << r.body;
  auto stacks = foldedStacks(r.body);
  ASSERT_FALSE(stacks.empty()) << r.body;
  uint64_t total = 0, burning = 0;
  for (const auto& [frames, count] : stacks) {
    total += count;
    auto handle = std::find(frames.begin(), frames.end(), "test_handle");
    if (handle != frames.end() && handle + 1 != frames.end() && handle[1] == "burn_cpu") burning += count;
  }
  EXPECT_GT(burning * 2, total) << "test_handle;burn_cpu holds " << burning << " of " << total << " samples:\n"
                                << r.body;
  EXPECT_EQ(httpGet(master.metricsPort(), "/debug/pprof/profile?seconds=1&worker=0&format=svg").status, 400);
  bench.interrupt();
  bench.finish();
}

// The symbol page answers the tools' probe, takes only "0x..+0x.." bodies of
// bounded size, and a body on any other path is still refused.
TEST_F(Profiling, SymbolRequestsAreBoundedAndOtherPathsTakeNoBody) {
  TempDir dir("profiles");
  RunningMaster master(1, profileYaml(dir.path, "  http: true\n"));
  int port = master.metricsPort();
  HttpResponse probe = httpGet(port, "/debug/pprof/symbol");
  EXPECT_EQ(probe.status, 200);
  EXPECT_EQ(probe.body, "num_symbols: 1\n");
  EXPECT_EQ(httpGet(port, "/debug/worker/0/pprof/cmdline").body, "tcpfork-worker\n");
  auto post = [&](const std::string& path, const std::string& body) {
    // A file, not the command line: a body of 400 KiB is past the limit of one argument.
    std::string file = tempPath("symbol-request");
    std::ofstream(file, std::ios::binary) << body;
    return runCommand({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@" + file,
                       "http://127.0.0.1:" + std::to_string(port) + path},
                      90s)
        .output;
  };
  EXPECT_EQ(post("/debug/pprof/symbol", "0x1000+0x2000"), "404") << "no profile served yet";
  ASSERT_EQ(httpGet(port, "/debug/worker/0/pprof/profile?seconds=1").status, 200);
  EXPECT_EQ(post("/debug/pprof/symbol", "0x1000+0x2000"), "200");
  EXPECT_EQ(post("/debug/worker/0/pprof/symbol", "0x1000"), "200");
  EXPECT_EQ(post("/debug/worker/1/pprof/symbol", "0x1000"), "404");
  EXPECT_EQ(post("/debug/pprof/symbol", "0x1000+rm -rf"), "400");
  EXPECT_EQ(post("/debug/pprof/symbol", "0x11112222333344445"), "400");
  std::string many;
  for (int i = 0; i < 16385; ++i) many += "0x1+";
  EXPECT_EQ(post("/debug/pprof/symbol", many), "413");
  EXPECT_EQ(post("/debug/pprof/symbol", std::string(400 << 10, '1')), "413");
  EXPECT_EQ(post("/debug/pprof/profile?seconds=1", "x"), "413");
  EXPECT_EQ(post("/metrics", "x"), "413");
  EXPECT_EQ(httpGet(port, "/healthz").status, 200);
}

// worker=4294967296 once wrapped to worker 0; and two requests for one
// worker both passed the "already profiling" check, the second SIGTRAP then
// stopping the first profile.
TEST_F(Profiling, HttpRefusesAWrappingIndexAndASecondRequestForTheSameWorker) {
  TempDir dir("profiles");
  RunningMaster master(1, profileYaml(dir.path, "  http: true\n"));
  EXPECT_EQ(httpGet(master.metricsPort(), "/debug/pprof/profile?seconds=1&worker=4294967296").status, 400);
  EXPECT_EQ(httpGet(master.metricsPort(), "/debug/pprof/profile?seconds=1&worker=99999999999999999999").status, 400);
  EXPECT_EQ(master.log().find("pprof: "), std::string::npos) << "no profile may start:\n" << master.log();

  auto ask = [&] { return httpGet(master.metricsPort(), "/debug/worker/0/pprof/profile?seconds=1"); };
  auto first = std::async(std::launch::async, ask);
  auto second = std::async(std::launch::async, ask);
  std::multiset<int> statuses = {first.get().status, second.get().status};
  EXPECT_EQ(statuses, (std::multiset<int>{200, 409})) << master.log();
}

// Profiles toggled faster than the master looks at the workers are each
// reported: the log accounts for every file written.
TEST_F(Profiling, EveryProfileOfATrapStormIsReported) {
  TempDir dir("profiles");
  RunningMaster master(2, profileYaml(dir.path, "  duration: 1s\n"));
  ASSERT_TRUE(master.waitServing(2, 5s));
  for (int i = 0; i < 50; ++i) {
    master.process().signal(SIGTRAP);
    std::this_thread::sleep_for(5ms);  // paces the storm: 200 toggles a second, 20 per look of the master
  }
  auto reported = [&] {
    static const std::regex kLine(R"(wrote (?:CPU profile |(\d+) CPU profiles))");
    std::string log = master.log();
    size_t n = 0;
    for (std::sregex_iterator it(log.begin(), log.end(), kLine), end; it != end; ++it) {
      n += (*it)[1].matched ? std::stoul((*it)[1]) : 1;
    }
    return n;
  };
  // Toggles may still be on their way to the workers, and an odd number of
  // them leaves a profile running until profile.duration: both sides are
  // read afresh until the storm is over and they agree.
  auto settled = [&] {
    size_t written = filesEndingWith(dir.path, ".prof").size();
    return written > 4 && master.metric("tcp_server_profiling_active") == 0 && reported() == written;
  };
  EXPECT_TRUE(waitUntil(settled, 15s)) << reported() << " reported, " << filesEndingWith(dir.path, ".prof").size()
                                       << " written:\n" << master.log();
}

// As root, with `user: nobody` and profile.http on: the profile directory is
// nobody's, and a process of that user (plant_profiles, under setpriv)
// replaces each new profile in it the moment a worker renames it into place.
class PlantedProfiles : public Profiling {
 protected:
  void SetUp() override {
    Profiling::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    TCPFORK_REQUIRE(::geteuid() == 0, "needs root: the workers run as nobody and the master reads as root");
    TCPFORK_SKIP_UNLESS_NOBODY_REACHES_THE_BUILD();
    nobody_ = ::getpwnam("nobody");
    ASSERT_NE(nobody_, nullptr);
    // The test's temp dir is 0700: the workers need a way in to profile.dir.
    char pattern[] = "/tmp/tcpfork-planted-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    shared_ = pattern;
    ASSERT_EQ(::chmod(shared_.c_str(), 0755), 0);
  }
  void TearDown() override {
    attacker_.reset();
    std::error_code ec;
    if (!shared_.empty()) fs::remove_all(shared_, ec);
  }

  std::string profileDir() const { return shared_ + "/profiles"; }

  // `how`: "symlink TARGET" or "fifo". Waits until it watches the directory.
  void startPlanting(const std::vector<std::string>& how) {
    std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=" + std::to_string(nobody_->pw_uid),
                                     "--regid=" + std::to_string(nobody_->pw_gid), "--clear-groups",
                                     binary("plant_profiles"), profileDir()};
    argv.insert(argv.end(), how.begin(), how.end());
    attacker_ = std::make_unique<ChildProcess>(argv, std::vector<int>{}, attackerLog_);
    // Its inotify watch shows in /proc as soon as it is set.
    auto watching = [&] {
      std::error_code ec;
      for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(attacker_->pid()) + "/fdinfo", ec)) {
        if (readFile(fd.path().string()).find("inotify wd:") != std::string::npos) return true;
      }
      return false;
    };
    ASSERT_TRUE(waitUntil(watching, 5s)) << readFile(attackerLog_);
  }
  size_t swaps() const {
    std::string log = readFile(attackerLog_);
    size_t n = 0;
    for (size_t at = log.find("swapped "); at != std::string::npos; at = log.find("swapped ", at + 1)) ++n;
    return n;
  }

  passwd* nobody_ = nullptr;
  std::string shared_;
  std::string attackerLog_ = tempPath("plant.log");
  std::unique_ptr<ChildProcess> attacker_;
};

// A process of the workers' user swapped each new profile for a symlink to
// /etc/shadow, and the root master served /etc/shadow byte for byte.
TEST_F(PlantedProfiles, AProfileSwappedForASymlinkIsNeverFollowed) {
  std::string secret = tempPath("root-only");  // in the test's 0700 directory
  std::string content = "root-only " + uniqueTag() + "\n";
  std::ofstream(secret) << content;
  ASSERT_EQ(::chmod(secret.c_str(), 0600), 0);
  RunningMaster master(1, "user: nobody\n" + profileYaml(profileDir(), "  http: true\n"));
  startPlanting({"symlink", secret});
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = httpRequest(master.metricsPort(), "GET", "/debug/pprof/profile?seconds=1&worker=0", {}, 15s);
    EXPECT_EQ(r.body.find(content), std::string::npos) << "the master served the root-only file";
    EXPECT_TRUE(r.status == 200 || r.status == 500) << r.status << ": " << r.body;
  }
  // It may still be swapping the last one when the master has answered.
  EXPECT_TRUE(waitUntil([&] { return swaps() == 3; }, 5s))
      << "the attacker did not swap every profile; the test proved less:\n" << readFile(attackerLog_);
  EXPECT_TRUE(master.process().running());
}

// A FIFO in place of the profile blocked the master's open() for ever: its
// loop stopped, /healthz with it.
TEST_F(PlantedProfiles, AProfileSwappedForAFifoDoesNotBlockTheMaster) {
  RunningMaster master(1, "user: nobody\n" + profileYaml(profileDir(), "  http: true\n"));
  startPlanting({"fifo"});
  for (int i = 0; i < 2; ++i) {
    HttpResponse r = httpRequest(master.metricsPort(), "GET", "/debug/pprof/profile?seconds=1&worker=0", {}, 15s);
    EXPECT_TRUE(r.status == 200 || r.status == 500) << r.status << ": " << r.body;
    EXPECT_EQ(httpGet(master.metricsPort(), "/healthz").status, 200);
  }
  // It may still be swapping the last one when the master has answered.
  EXPECT_TRUE(waitUntil([&] { return swaps() == 2; }, 5s))
      << "the attacker did not swap every profile; the test proved less:\n" << readFile(attackerLog_);
}

TEST_F(Profiling, HttpEndpointIsOffByDefault) {
  RunningMaster master(1);
  EXPECT_EQ(httpGet(master.metricsPort(), "/debug/pprof/profile?seconds=1").status, 404);
}

}  // namespace
}  // namespace tcpfork::test
