// `make install` into a staging directory: the same `cmake --install` the
// Makefile's install target runs, with DESTDIR and --prefix /usr. Every file
// lands where Debian expects it and nothing else is installed; and what was
// installed works: the binaries print their version, the example config
// passes -t, the installed master runs the tcpfork-worker installed beside
// it, the man pages render cleanly, and the logrotate snippet makes a running
// master reopen its log. `make uninstall` takes it all back but the
// administrator's files.

#include <dlfcn.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>

#include "tcpfork/handler.h"
#include "test/install/handbook_links.h"
#include "test/install/man_page.h"
#include "test/integration/running_master.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kBinaries = {"tcpfork", "tcpfork-worker", "tcpfork-client", "tcpfork-stats",
                                            "tcpfork-journal"};
const std::vector<std::string> kManPages = {"man8/tcpfork.8", "man8/tcpfork-worker.8", "man1/tcpfork-client.1",
                                            "man1/tcpfork-stats.1", "man1/tcpfork-journal.1", "man5/tcpfork.yaml.5"};

ToolRun install(const std::string& destdir, const std::string& prefix) {
  fs::create_directories(destdir);
  return runCommand(
      {"/usr/bin/env", "DESTDIR=" + destdir, TCPFORK_CMAKE_COMMAND, "--install", TCPFORK_BUILD_DIR, "--prefix", prefix},
      120s);
}

// Paths of the regular files under `root`, relative to it with a leading "/".
std::set<std::string> filesUnder(const std::string& root) {
  std::set<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (!entry.is_directory()) files.insert("/" + fs::relative(entry.path(), root).string());
  }
  return files;
}

// Replaces the one occurrence of `from` in `text`; false when there is none.
bool replaceIn(std::string& text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  if (at == std::string::npos) return false;
  text.replace(at, from.size(), to);
  return true;
}

// The installed master with one worker on an ephemeral loopback port, ready.
// Killed with its workers (by pid) and its stats segment removed at the end.
class InstalledMaster {
 public:
  InstalledMaster(const std::string& binary, const std::string& extraYaml, const std::string& readyLog = "")
      : name_("tcpfork-install-test-" + uniqueTag()),
        config_(tempPath("installed.yaml")),
        output_(tempPath("installed.out")) {
    std::ofstream(config_) << RunningMaster::baseYaml(name_, tempPath("installed.pid"), 1, tempPath("profiles"))
                           << extraYaml;
    process_.emplace(std::vector<std::string>{binary, "-c", config_}, std::vector<int>{}, output_);
    std::string log = readyLog.empty() ? output_ : readyLog;
    if (!waitUntil([&] { return readFile(log).find("ready:") != std::string::npos || !process_->running(); }, 30s) ||
        !process_->running()) {
      throw std::runtime_error("the installed master did not become ready:\n" + readFile(output_) + readFile(log));
    }
    port_ = portsInLog(readFile(log)).listen;
  }

  ~InstalledMaster() { killMasterAndWorkers(*process_, name_); }

  int port() const { return port_; }
  const std::string& config() const { return config_; }
  std::string output() const { return readFile(output_); }

  // Worker pids from the stats segment, in whatever state.
  std::set<pid_t> workerPids() const { return test::workerPids(name_); }

 private:
  std::string name_;
  std::string config_;
  std::string output_;
  std::optional<ChildProcess> process_;
  int port_ = 0;
};

class Install : public ::testing::Test {
 protected:
  void SetUp() override {
    ToolRun run = install(root_, "/usr");
    ASSERT_EQ(run.exitCode, 0) << run.output;
  }

  std::string at(const std::string& path) const { return root_ + path; }

  std::string root_ = tempPath("destdir");
};

TEST_F(Install, PutsEachFileWhereDebianExpectsIt) {
  std::set<std::string> expected = {
      "/usr/share/doc/tcpfork/README.md",
      "/usr/share/doc/tcpfork/examples/tcpfork.yaml",
      "/etc/tcpfork/tcpfork.yaml",
      "/etc/logrotate.d/tcpfork",
  };
  expected.insert("/usr/share/doc/tcpfork/LICENSE");
  // The handbook, as README.md's links expect it: docs/*.md, their images
  // and the man page sources docs/index.md links.
  fs::path docs = fs::path(TCPFORK_SOURCE_DIR) / "docs";
  for (const auto& entry : fs::recursive_directory_iterator(docs)) {
    std::string ext = entry.path().extension().string();
    if (entry.is_regular_file() && (ext == ".md" || ext == ".png" || ext == ".scd")) {
      expected.insert("/usr/share/doc/tcpfork/docs/" + fs::relative(entry.path(), docs).string());
    }
  }
  for (const auto& b : kBinaries) expected.insert("/usr/bin/" + b);
  for (const auto& page : kManPages) expected.insert("/usr/share/man/" + page);
  expected.insert("/usr/lib/systemd/system/tcpfork.service");
  expected.insert("/usr/lib/systemd/system/tcpfork.socket");
  expected.insert("/usr/include/tcpfork/handler.h");
  expected.insert("/usr/share/pkgconfig/tcpfork-handler.pc");
  expected.insert("/usr/lib/tcpfork/handlers/journal.so");
  EXPECT_EQ(filesUnder(root_), expected);
  // The service runs the binary and reads the config where this prefix put them.
  std::string unit = readFile(at("/usr/lib/systemd/system/tcpfork.service"));
  EXPECT_NE(unit.find("ExecStart=/usr/bin/tcpfork -c /etc/tcpfork/tcpfork.yaml "), std::string::npos) << unit;
  EXPECT_EQ(unit.find("/usr/local"), std::string::npos) << unit;

  for (const auto& b : kBinaries) EXPECT_EQ(::access(at("/usr/bin/" + b).c_str(), X_OK), 0) << b;
  for (const auto& page : kManPages) {
    EXPECT_EQ(readFile(at("/usr/share/man/" + page)), readFile(manPagePath(page.substr(5)))) << page;
  }
  std::string example = readFile(std::string(TCPFORK_SOURCE_DIR) + "/deploy/tcpfork.yaml");
  EXPECT_EQ(readFile(at("/usr/share/doc/tcpfork/examples/tcpfork.yaml")), example);
  // The installed config is the unit's: its profiles go to the unit's state
  // directory, the one difference from the example.
  std::string installed = example;
  ASSERT_TRUE(replaceIn(installed, "  # dir: /tmp/tcpfork_profile\n", "  dir: /var/lib/tcpfork/profiles\n"));
  EXPECT_EQ(readFile(at("/etc/tcpfork/tcpfork.yaml")), installed);
  EXPECT_EQ(readFile(at("/usr/include/tcpfork/handler.h")),
            readFile(std::string(TCPFORK_SOURCE_DIR) + "/include/tcpfork/handler.h"));
}

// The handbook as installed: README.md and docs/*.md in share/doc/tcpfork
// as in the source tree, each link reaching a file installed with them.
TEST_F(Install, TheHandbooksLinksReachInstalledFiles) {
  fs::path doc = at("/usr/share/doc/tcpfork");
  EXPECT_EQ(handbookPages(doc), handbookPages(TCPFORK_SOURCE_DIR));
  EXPECT_EQ(linksToNoFile(doc), std::vector<std::string>{});
}

// What a module author outside the project does: pkg-config for the flags,
// the C compiler, the installed header and nothing else of tcpfork. The
// module then loads and answers as the ABI says.
TEST_F(Install, AModuleBuildsFromTheInstalledHeaderAndPkgConfigAlone) {
  ToolRun flags = runCommand({"/usr/bin/env", "PKG_CONFIG_SYSROOT_DIR=" + root_,
                              "PKG_CONFIG_LIBDIR=" + at("/usr/share/pkgconfig"), "pkg-config", "--cflags",
                              "tcpfork-handler"},
                             10s);
  ASSERT_EQ(flags.exitCode, 0) << flags.output;
  std::string cflags = flags.output.substr(0, flags.output.find_last_not_of(" \n") + 1);
  ASSERT_EQ(cflags, "-I" + at("/usr/include"));

  std::string module = tempPath("ack.so");
  ToolRun cc = runCommand({"/usr/bin/env", "cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC",
                           "-fvisibility=hidden", "-o", module, std::string(TCPFORK_SOURCE_DIR) + "/examples/handlers/ack.c",
                           cflags},
                          60s);
  ASSERT_EQ(cc.exitCode, 0) << cc.output;

  void* so = ::dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(so, nullptr) << ::dlerror();
  auto entry = reinterpret_cast<const tcpfork_handler* (*)()>(::dlsym(so, "tcpfork_handler_entry"));
  ASSERT_NE(entry, nullptr) << ::dlerror();
  const tcpfork_handler* handler = entry();
  EXPECT_EQ(handler->abi_version, uint32_t(TCPFORK_HANDLER_ABI_VERSION));
  EXPECT_STREQ(handler->name, "ack");
  char err[64] = "";
  void* state = handler->init(nullptr, nullptr, "{}", err, sizeof err);
  ASSERT_NE(state, nullptr) << err;
  tcpfork_request request{7, TCPFORK_SUBMIT, "abcdefgh", nullptr, 0};
  EXPECT_EQ(handler->handle(state, &request, nullptr), 0);
  ::dlclose(so);
}

TEST_F(Install, InstalledBinariesPrintTheirVersionAndRevision) {
  for (const auto& b : kBinaries) {
    ToolRun installed = runCommand({at("/usr/bin/" + b), "--version"}, 10s);
    EXPECT_EQ(installed.exitCode, 0) << b << ": " << installed.output;
    EXPECT_TRUE(std::regex_match(installed.output,
                                 std::regex(b + R"( \d+\.\d+\.\d+ \(git ([0-9a-f]{7,}(-dirty)?|unknown)\)\n)")))
        << installed.output;
    EXPECT_EQ(installed.output, runCommand({binary(b), "--version"}, 10s).output) << b;
  }
}

TEST_F(Install, InstalledConfigPassesTheCheck) {
  ToolRun run = runCommand({at("/usr/bin/tcpfork"), "-t", "-c", at("/etc/tcpfork/tcpfork.yaml")}, 10s);
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_NE(run.output.find("is valid"), std::string::npos) << run.output;
}

TEST_F(Install, ManPagesRenderWithoutWarnings) {
  for (const auto& page : kManPages) {
    ToolRun run = renderManPage(at("/usr/share/man/" + page));
    EXPECT_EQ(run.exitCode, 0) << page << ": " << run.output;
    EXPECT_EQ(run.output, "") << "man --warnings on " << page;
  }
}

TEST_F(Install, InstalledMasterServesWithTheWorkerBesideIt) {
  InstalledMaster master(at("/usr/bin/tcpfork"), "");
  ToolRun send = runCommand(
      {at("/usr/bin/tcpfork-client"), "send", "--addr", "127.0.0.1:" + std::to_string(master.port()), "--id", "7"},
      30s);
  EXPECT_EQ(send.exitCode, 0) << send.output;
  EXPECT_NE(send.output.find("SubmitAck id=00000007 result=0"), std::string::npos) << send.output;

  std::set<pid_t> workers = master.workerPids();
  ASSERT_EQ(workers.size(), 1u) << master.output();
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/" + std::to_string(*workers.begin()) + "/exe", ec);
  EXPECT_EQ(exe, fs::canonical(at("/usr/bin/tcpfork-worker"))) << ec.message();
}

// The journal as installed: the config names the module under the prefix,
// and an acked request is a record in its directory.
TEST_F(Install, TheInstalledJournalModuleStoresWhatItAcks) {
  std::string dir = tempPath("journal");
  InstalledMaster master(at("/usr/bin/tcpfork"),
                         "handler:\n  module: " + at("/usr/lib/tcpfork/handlers/journal.so") + "\n  config: {dir: " + dir + "}\n");
  ToolRun send = runCommand(
      {at("/usr/bin/tcpfork-client"), "send", "--addr", "127.0.0.1:" + std::to_string(master.port()), "--id", "7"},
      30s);
  EXPECT_EQ(send.exitCode, 0) << send.output;
  EXPECT_NE(send.output.find("SubmitAck id=00000007 result=0"), std::string::npos) << send.output;
  size_t segments = 0;
  for (const auto& entry : fs::directory_iterator(dir)) segments += entry.path().string().ends_with(".journal.open");
  EXPECT_EQ(segments, 1u) << master.output();
  ToolRun cat = runCommand({at("/usr/bin/tcpfork-journal"), "cat", "--json", dir}, 30s);
  EXPECT_EQ(cat.exitCode, 0) << cat.output;
  EXPECT_NE(cat.output.find(R"("id":"00000007")"), std::string::npos) << cat.output;
}

TEST_F(Install, LogrotateSnippetMakesTheMasterReopenItsLog) {
  std::string logDir = tempPath("log");
  fs::create_directories(logDir);
  std::string log = logDir + "/tcpfork.log";
  InstalledMaster master(at("/usr/bin/tcpfork"), "log:\n  file: " + log + "\n", log);

  // The installed snippet as it is, pointed at this test's log, binary and config.
  std::string snippet = readFile(at("/etc/logrotate.d/tcpfork"));
  ASSERT_TRUE(replaceIn(snippet, "/var/log/tcpfork/tcpfork.log {", log + " {")) << snippet;
  ASSERT_TRUE(replaceIn(snippet, "/usr/bin/tcpfork -s reopen -c /etc/tcpfork/tcpfork.yaml ",
                        at("/usr/bin/tcpfork") + " -s reopen -c " + master.config() + " "))
      << snippet;
  std::string conf = tempPath("logrotate.conf");
  std::ofstream(conf) << snippet;
  ::chmod(conf.c_str(), 0644);  // logrotate ignores a config others can write

  ToolRun rotate = runCommand({"/usr/sbin/logrotate", "-f", "-s", tempPath("logrotate.state"), conf}, 30s);
  ASSERT_EQ(rotate.exitCode, 0) << rotate.output;
  EXPECT_NE(readFile(log + ".1").find("ready:"), std::string::npos) << "not rotated to " << log << ".1";
  EXPECT_TRUE(waitUntil(
      [&] {
        std::string fresh = readFile(log);
        return fresh.find("log reopened") != std::string::npos && fresh.find("reopened log file") != std::string::npos;
      },
      10s))
      << "the master and its worker did not reopen " << log << "; it holds:\n"
      << readFile(log);
}

TEST_F(Install, KeepsAnEditedConfigOnReinstall) {
  for (const char* path : {"/etc/tcpfork/tcpfork.yaml", "/etc/logrotate.d/tcpfork"}) {
    std::ofstream(at(path), std::ios::app) << "# edited here\n";
  }
  ToolRun again = install(root_, "/usr");
  ASSERT_EQ(again.exitCode, 0) << again.output;
  for (const char* path : {"/etc/tcpfork/tcpfork.yaml", "/etc/logrotate.d/tcpfork"}) {
    EXPECT_NE(readFile(at(path)).find("# edited here"), std::string::npos) << path << " was overwritten";
  }
  EXPECT_EQ(readFile(at("/usr/share/doc/tcpfork/examples/tcpfork.yaml")),
            readFile(std::string(TCPFORK_SOURCE_DIR) + "/deploy/tcpfork.yaml"));
}

// What `make install` records for `make uninstall` (the install tests hold a
// lock on the build tree's manifest), and what `make uninstall` runs.
std::string recordInstall(const std::string& destdir) {
  std::string record = tempPath("installed.txt");
  std::ofstream(record) << "DESTDIR=" << destdir << "\n" << readFile(TCPFORK_BUILD_DIR "/install_manifest.txt");
  return record;
}

ToolRun uninstall(const std::string& record) {
  return runCommand({TCPFORK_CMAKE_COMMAND, "-DINSTALLED=" + record, "-P",
                     std::string(TCPFORK_SOURCE_DIR) + "/cmake/uninstall.cmake"},
                    60s);
}

// CMake wraps an error message over lines and indents them: the text as one line.
std::string unwrapped(const std::string& text) {
  return std::regex_replace(text, std::regex(R"(\s+)"), " ");
}

TEST_F(Install, UninstallLeavesOnlyTheAdministratorsFiles) {
  std::string record = recordInstall(root_);
  std::ofstream(at("/etc/tcpfork/tcpfork.yaml"), std::ios::app) << "# edited here\n";
  std::ofstream(at("/usr/share/doc/tcpfork/notes.txt")) << "an administrator's own file\n";
  ToolRun run = uninstall(record);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_EQ(filesUnder(root_), (std::set<std::string>{"/etc/tcpfork/tcpfork.yaml", "/etc/logrotate.d/tcpfork",
                                                      "/usr/share/doc/tcpfork/notes.txt"}));
  EXPECT_NE(readFile(at("/etc/tcpfork/tcpfork.yaml")).find("# edited here"), std::string::npos);
  EXPECT_NE(run.output.find("Kept, if present: " + at("/etc/tcpfork/tcpfork.yaml")), std::string::npos) << run.output;
  EXPECT_FALSE(fs::exists(at("/usr/share/doc/tcpfork/examples"))) << "our own directory, left empty";
  EXPECT_FALSE(fs::exists(at("/usr/include/tcpfork"))) << "our own directory, left empty";
  EXPECT_TRUE(fs::is_directory(at("/usr/share/man/man8"))) << "a shared directory stays";

  // Nothing is installed any more: a second run says so.
  ToolRun again = uninstall(record);
  EXPECT_NE(again.exitCode, 0);
  EXPECT_NE(unwrapped(again.output).find("nothing was installed with `make install` from this build tree"),
            std::string::npos)
      << again.output;
}

TEST(Uninstall, RefusesARecordWithoutItsDestdir) {
  std::string record = tempPath("bad-installed.txt");
  std::ofstream(record) << "/usr/bin/tcpfork\n";
  ToolRun run = uninstall(record);
  EXPECT_NE(run.exitCode, 0);
  EXPECT_NE(unwrapped(run.output).find("does not start with a DESTDIR= line"), std::string::npos) << run.output;
}

TEST(InstallPrefix, UsrLocalKeepsTheConfigUnderThePrefix) {
  std::string root = tempPath("destdir-local");
  ToolRun run = install(root, "/usr/local");
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_TRUE(fs::exists(root + "/usr/local/bin/tcpfork"));
  EXPECT_TRUE(fs::exists(root + "/usr/local/share/man/man8/tcpfork.8"));
  EXPECT_TRUE(fs::exists(root + "/usr/local/etc/tcpfork/tcpfork.yaml"));
  EXPECT_FALSE(fs::exists(root + "/etc")) << "nothing goes to /etc with the /usr/local prefix";
  std::string snippet = readFile(root + "/usr/local/etc/logrotate.d/tcpfork");
  EXPECT_NE(snippet.find("/usr/local/bin/tcpfork -s reopen -c /usr/local/etc/tcpfork/tcpfork.yaml "),
            std::string::npos)
      << snippet;
}

}  // namespace
}  // namespace tcpfork::test
