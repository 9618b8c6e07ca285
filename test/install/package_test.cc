// The Debian packages as an administrator gets them: `make deb`'s tcpfork and
// tcpfork-dev installed with dpkg on this machine, the handbook's links
// working in /usr/share/doc/tcpfork, the installed master serving as the
// tcpfork user the package created (as its systemd unit runs it), then
// `dpkg --purge` leaving nothing behind: no file, directory, user, group or
// enabled unit. Needs root (skips otherwise). Where tcpfork is
// installed already, or where anything the package would own exists, it
// fails and says so rather than destroy it.

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "stats/segment.h"
#include "test/install/handbook_links.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kPackages = {"tcpfork", "tcpfork-dev"};
// Made by the maintainer scripts and the service, not listed by dpkg -L.
const std::vector<std::string> kMadeAtInstall = {"/etc/tcpfork", "/var/lib/tcpfork", "/var/log/tcpfork"};
// deb-systemd-helper enables the units on install, with or without a running systemd.
const std::vector<std::string> kEnablementLinks = {"/etc/systemd/system/multi-user.target.wants/tcpfork.service",
                                                   "/etc/systemd/system/sockets.target.wants/tcpfork.socket"};
const std::string kJournalDir = "/var/lib/tcpfork/journal";

// dpkg and its tools, with a root PATH for the maintainer scripts (ldconfig,
// adduser and userdel are in sbin) and no question asked.
ToolRun runDpkg(std::vector<std::string> argv, std::chrono::milliseconds timeout = 60s) {
  argv.insert(argv.begin(), {"/usr/bin/env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                             "DEBIAN_FRONTEND=noninteractive"});
  return runCommand(argv, timeout);
}

std::string trimmed(const std::string& text) { return text.substr(0, text.find_last_not_of(" \n") + 1); }

// dpkg's state of `package` ("installed", "config-files", ...), or
// "not-installed" when dpkg knows nothing of it.
std::string packageState(const std::string& package) {
  ToolRun query = runDpkg({"dpkg-query", "-W", "-f=${db:Status-Status}", package}, 30s);
  return query.exitCode == 0 ? trimmed(query.output) : "not-installed";
}

std::string debFile(const std::string& package, const std::string& arch) {
  return std::string(TCPFORK_DEB_DIR) + "/" + package + "_" + TCPFORK_VERSION + "_" + arch + ".deb";
}

// The paths a .deb holds, absolute ("/usr/bin/tcpfork"); directories end in '/'.
std::vector<std::string> debContents(const std::string& deb) {
  ToolRun list = runDpkg({"dpkg-deb", "--contents", deb}, 30s);
  if (list.exitCode != 0) throw std::runtime_error("dpkg-deb --contents " + deb + ":\n" + list.output);
  // "drwxr-xr-x root/root 0 2026-01-01 00:00 ./etc/": the path is the sixth field.
  std::vector<std::string> paths;
  std::istringstream lines(list.output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string mode, owner, size, date, time, path;
    if (fields >> mode >> owner >> size >> date >> time >> path && path.starts_with("./") && path != "./") {
      paths.push_back(path.substr(1));
    }
  }
  return paths;
}

bool present(const std::string& path) {
  std::error_code ec;
  return fs::symlink_status(path, ec).type() != fs::file_type::not_found;
}

// What installing would overwrite or take over, as one message; empty when
// the machine holds nothing of tcpfork.
std::string whatIsThereAlready(const std::vector<std::string>& debPaths) {
  std::string found;
  for (const auto& package : kPackages) {
    std::string state = packageState(package);
    if (state != "not-installed") found += "  package " + package + " (dpkg state: " + state + ")\n";
  }
  if (::getpwnam("tcpfork")) found += "  user tcpfork\n";
  if (::getgrnam("tcpfork")) found += "  group tcpfork\n";
  for (const auto& path : kMadeAtInstall) {
    if (present(path)) found += "  " + path + "\n";
  }
  // Shared directories (/usr/bin) are there, of course; a file is not ours
  // to overwrite (`make install PREFIX=/usr` puts some in the same places).
  for (const auto& path : debPaths) {
    if (!path.ends_with("/") && present(path)) found += "  " + path + "\n";
  }
  return found;
}

// Purges the packages when the test ends, however it ends: a failed check
// must not leave them installed (and the next run refusing to start).
class Installation {
 public:
  Installation() = default;
  Installation(const Installation&) = delete;
  Installation& operator=(const Installation&) = delete;
  ~Installation() {
    if (installed_) purge();
  }

  ToolRun install(const std::vector<std::string>& debs) {
    installed_ = true;  // a half-done install is purged too
    std::vector<std::string> argv = {"dpkg", "--install"};
    argv.insert(argv.end(), debs.begin(), debs.end());
    return runDpkg(argv, 300s);
  }

  ToolRun purge() {
    installed_ = false;
    std::vector<std::string> argv = {"dpkg", "--purge"};
    argv.insert(argv.end(), kPackages.begin(), kPackages.end());
    return runDpkg(argv, 300s);
  }

 private:
  bool installed_ = false;
};

// `argv` run as uid and gid and no other group: what User= and Group= give
// the unit (the tcpfork user is in no other group).
std::vector<std::string> asUser(uid_t uid, gid_t gid, std::vector<std::string> argv) {
  argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(gid),
                             "--clear-groups"});
  return argv;
}

// Gone, or a zombie its new parent has yet to reap.
bool exited(pid_t pid) {
  std::string stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  return close == std::string::npos || stat.compare(close + 1, 3, " Z ") == 0;
}

// The installed master as the packaged unit runs it: as the tcpfork user,
// here with one worker on ephemeral loopback ports and the installed journal
// module storing into the package's state directory. Its config, pidfile and
// profiles live in a directory of the user's own; its log in the test's.
// Killed by pid with its workers, and all of it removed, at the end.
class InstalledMasterAsItsUser {
 public:
  InstalledMasterAsItsUser(uid_t uid, gid_t gid)
      : name_("tcpfork-package-test-" + uniqueTag()), dir_(ownDir(uid, gid)), log_(tempPath("package-master.log")) {
    std::string config = dir_ + "/tcpfork.yaml";
    std::ofstream(config) << RunningMaster::baseYaml(name_, dir_ + "/tcpfork.pid", 1, dir_ + "/profiles")
                          << "handler:\n  module: /usr/lib/tcpfork/handlers/journal.so\n  config: {dir: " << kJournalDir
                          << "}\n";
    process_.emplace(asUser(uid, gid, {"/usr/bin/tcpfork", "-c", config}), std::vector<int>{}, log_);
    if (!waitUntil([&] { return log().find("ready:") != std::string::npos || !process_->running(); }, 30s) ||
        !process_->running()) {
      throw std::runtime_error("the installed master did not become ready; its log:\n" + log());
    }
    port_ = portsInLog(log()).listen;
  }

  ~InstalledMasterAsItsUser() {
    killMasterAndWorkers(*process_, name_);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  InstalledMasterAsItsUser(const InstalledMasterAsItsUser&) = delete;
  InstalledMasterAsItsUser& operator=(const InstalledMasterAsItsUser&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return process_->pid(); }
  std::set<pid_t> workers() const { return workerPids(name_); }
  std::string log() const { return readFile(log_); }

  // SIGQUIT, as `systemctl stop` sends: workers drain and exit, then the
  // master. Its wait status, or nullopt when it did not exit in time.
  std::optional<int> stop() {
    process_->signal(SIGQUIT);
    return process_->waitExit(30s);
  }

 private:
  // Under /tmp itself: the test's own temp dir is root's alone (0700).
  static std::string ownDir(uid_t uid, gid_t gid) {
    char pattern[] = "/tmp/tcpfork-package-test-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp(/tmp/tcpfork-package-test-XXXXXX) failed");
    if (::chown(pattern, uid, gid) != 0) {
      fs::remove(pattern);
      throw std::runtime_error(std::string("chown(") + pattern + ") failed");
    }
    return pattern;
  }

  std::string name_;
  std::string dir_;
  std::string log_;
  std::optional<ChildProcess> process_;
  int port_ = 0;
};

// The installed master as the installed unit starts it: its ExecStart line,
// as the tcpfork user, with /run/tcpfork made as RuntimeDirectory= makes it,
// and the installed config (so the instance name "tcpfork"); here on
// ephemeral loopback ports instead of 0.0.0.0:8888. Its stderr, the journal
// under systemd, goes to the test's log. Killed by pid with its workers, and
// /run/tcpfork removed, at the end.
class InstalledUnitMaster {
 public:
  static constexpr const char* kRuntimeDir = "/run/tcpfork";

  InstalledUnitMaster(uid_t uid, gid_t gid) : log_(tempPath("unit-master.log")) {
    std::vector<std::string> argv = execStart();
    if (argv.empty()) throw std::runtime_error("no ExecStart= in the installed unit");
    argv.insert(argv.end(), {"--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"});
    if (::mkdir(kRuntimeDir, 0755) != 0 || ::chown(kRuntimeDir, uid, gid) != 0) {
      throw std::runtime_error(std::string("mkdir/chown ") + kRuntimeDir + ": " + std::strerror(errno));
    }
    process_.emplace(asUser(uid, gid, argv), std::vector<int>{}, log_);
    if (!waitForLog("ready:", 30s) || !process_->running()) {
      throw std::runtime_error("the unit's master did not become ready; its log:\n" + log());
    }
  }

  ~InstalledUnitMaster() {
    std::set<pid_t> workers = workerPids("tcpfork");
    process_->signal(SIGKILL);
    process_->waitExit(5s);
    for (pid_t pid : workers) ::kill(pid, SIGKILL);
    stats::StatsSegment::remove("tcpfork");
    std::error_code ec;
    fs::remove_all(kRuntimeDir, ec);
  }

  InstalledUnitMaster(const InstalledUnitMaster&) = delete;
  InstalledUnitMaster& operator=(const InstalledUnitMaster&) = delete;

  ChildProcess& process() { return *process_; }
  std::string log() const { return readFile(log_); }
  bool waitForLog(const std::string& text, std::chrono::milliseconds timeout) const {
    return waitUntil([&] { return log().find(text) != std::string::npos; }, timeout);
  }

 private:
  static std::vector<std::string> execStart() {
    std::istringstream unit(readFile("/lib/systemd/system/tcpfork.service"));
    std::vector<std::string> argv;
    for (std::string line; std::getline(unit, line);) {
      if (line.rfind("ExecStart=", 0) != 0) continue;
      std::istringstream words(line.substr(10));
      for (std::string word; words >> word;) argv.push_back(word);
    }
    return argv;
  }

  std::string log_;
  std::optional<ChildProcess> process_;
};

// Profiles in `dir` (written complete: renamed into place as *.prof).
size_t profilesIn(const std::string& dir) {
  size_t found = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    found += entry.is_regular_file() && entry.path().extension() == ".prof";
  }
  return found;
}

// Paths from `dpkg -L`, which lists every directory the package has a file
// in, shared ones (/usr/bin) too.
std::vector<std::string> listedFiles(const std::string& package) {
  ToolRun list = runDpkg({"dpkg", "--listfiles", package}, 30s);
  std::vector<std::string> paths;
  std::istringstream lines(list.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("/", 0) == 0 && line != "/.") paths.push_back(line);
  }
  return paths;
}

TEST(Package, InstallsServesAsItsUserAndPurgesLeavingNothing) {
  TCPFORK_REQUIRE(::geteuid() == 0, "installing a Debian package needs root; run the install tests as root");

  std::string arch = trimmed(runDpkg({"dpkg", "--print-architecture"}, 10s).output);
  std::vector<std::string> debs = {debFile("tcpfork", arch), debFile("tcpfork-dev", "all")};
  std::vector<std::string> debPaths;
  for (const auto& deb : debs) {
    ASSERT_TRUE(fs::exists(deb)) << deb << " is missing: `make deb` builds it (`make test` does first)";
    for (auto& path : debContents(deb)) debPaths.push_back(path);
  }
  if (std::string there = whatIsThereAlready(debPaths); !there.empty()) {
    FAIL() << "this machine already holds some of tcpfork, which installing and purging the package would "
              "overwrite or delete:\n"
           << there << "Remove it (`dpkg --purge tcpfork tcpfork-dev`, `make uninstall`) or run this test elsewhere.";
  }
  std::set<std::string> dirsBefore;
  for (const auto& path : debPaths) {
    if (path.ends_with("/") && fs::is_directory(path)) dirsBefore.insert(path.substr(0, path.size() - 1));
  }

  Installation installation;
  ToolRun install = installation.install(debs);
  ASSERT_EQ(install.exitCode, 0) << install.output;
  for (const auto& package : kPackages) {
    ToolRun query = runDpkg({"dpkg-query", "-W", "-f=${Version} ${db:Status-Status}", package}, 30s);
    EXPECT_EQ(query.output, std::string(TCPFORK_VERSION) + " installed") << package;
  }
  ToolRun version = runCommand({"/usr/bin/tcpfork", "--version"}, 10s);
  EXPECT_EQ(version.output.rfind("tcpfork " TCPFORK_VERSION " (git ", 0), 0u) << version.output;

  // The handbook in /usr/share/doc/tcpfork laid out as in the source tree,
  // its pages uncompressed, so that every link between them reaches a file.
  const fs::path docDir = "/usr/share/doc/tcpfork";
  EXPECT_EQ(handbookPages(docDir), handbookPages(TCPFORK_SOURCE_DIR));
  EXPECT_EQ(linksToNoFile(docDir), std::vector<std::string>{});

  // The administrator's files are conffiles: an upgrade keeps an edited one.
  ToolRun conffiles = runDpkg({"dpkg-query", "-W", "-f=${Conffiles}", "tcpfork"}, 30s);
  EXPECT_NE(conffiles.output.find(" /etc/tcpfork/tcpfork.yaml "), std::string::npos) << conffiles.output;
  EXPECT_NE(conffiles.output.find(" /etc/logrotate.d/tcpfork "), std::string::npos) << conffiles.output;

  // A system user and its own group, which owns the state and log directories.
  passwd* user = ::getpwnam("tcpfork");
  ASSERT_NE(user, nullptr) << "no tcpfork user after installing\n" << install.output;
  const uid_t uid = user->pw_uid;
  const gid_t gid = user->pw_gid;
  EXPECT_LT(uid, 1000u) << "not a system user";
  EXPECT_EQ(std::string(user->pw_shell), "/usr/sbin/nologin");
  group* own = ::getgrnam("tcpfork");
  ASSERT_NE(own, nullptr) << "no tcpfork group after installing";
  EXPECT_EQ(gid, own->gr_gid);
  for (const char* dir : {"/var/lib/tcpfork", "/var/log/tcpfork"}) {
    struct stat st {};
    ASSERT_EQ(::stat(dir, &st), 0) << dir;
    EXPECT_EQ(st.st_uid, uid) << dir;
  }

  // The configuration shipped passes the check the unit runs before starting
  // (ExecStartPre), as the user the unit runs it as.
  ToolRun check = runCommand(
      asUser(uid, gid, {"/usr/bin/tcpfork", "-t", "-c", "/etc/tcpfork/tcpfork.yaml"}), 10s);
  EXPECT_EQ(check.exitCode, 0) << check.output;
  EXPECT_NE(check.output.find("is valid"), std::string::npos) << check.output;

  // The unit, with the package's drop-in, names the installed paths and user.
  std::string unit = readFile("/lib/systemd/system/tcpfork.service");
  EXPECT_NE(unit.find("\nExecStart=/usr/bin/tcpfork -c /etc/tcpfork/tcpfork.yaml "), std::string::npos) << unit;
  EXPECT_EQ(unit.find("/usr/local"), std::string::npos) << unit;
  std::string dropIn = readFile("/lib/systemd/system/tcpfork.service.d/tcpfork-user.conf");
  EXPECT_NE(dropIn.find("\nDynamicUser=no\nUser=tcpfork\nGroup=tcpfork\n"), std::string::npos) << dropIn;
  if (fs::exists("/usr/bin/systemd-analyze")) {
    // Offline: parses the unit and its drop-in, resolves the binaries it runs.
    ToolRun verify = runCommand({"/usr/bin/systemd-analyze", "verify", "/lib/systemd/system/tcpfork.service",
                                 "/lib/systemd/system/tcpfork.socket"},
                                60s);
    EXPECT_EQ(verify.exitCode, 0) << verify.output;
    EXPECT_EQ(verify.output.find("ignoring"), std::string::npos) << verify.output;
  }
  for (const auto& link : kEnablementLinks) EXPECT_TRUE(present(link)) << link << ": the unit is not enabled";

  {
    InstalledMasterAsItsUser master(uid, gid);
    // Real, effective, saved and filesystem uid.
    std::string uids = statusField(master.pid(), "Uid");
    EXPECT_NE(("\t" + uids).find("\t" + std::to_string(uid) + "\t"), std::string::npos) << uids;
    std::set<pid_t> workers = master.workers();
    ASSERT_EQ(workers.size(), 1u) << master.log();

    TestConnection connection(master.port());
    connection.send(submitFrame(7));
    EXPECT_EQ(connection.read(kAckBytes), submitAckFrame(7)) << master.log();
    connection.close();
    ToolRun journal = runCommand({"/usr/bin/tcpfork-journal", "cat", "--json", kJournalDir}, 30s);
    EXPECT_EQ(journal.exitCode, 0) << journal.output;
    EXPECT_NE(journal.output.find(R"("id":"00000007")"), std::string::npos) << journal.output;

    std::optional<int> status = master.stop();
    ASSERT_TRUE(status.has_value()) << "the master did not exit within 30 s of SIGQUIT:\n" << master.log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status << "\n" << master.log();
    for (pid_t pid : workers) EXPECT_TRUE(waitUntil([&] { return exited(pid); }, 10s)) << "worker " << pid;
  }

  {
    // What README, docs/OPERATIONS.md and the unit's comments tell an
    // operator to type, against the master the unit starts (its pidfile is
    // the unit's --pid-file, not the one the config implies).
    InstalledUnitMaster master(uid, gid);
    auto tcpfork = [](const std::string& action) {
      return runCommand({"/usr/bin/tcpfork", "-c", "/etc/tcpfork/tcpfork.yaml", "-s", action}, 30s);
    };
    ToolRun reload = tcpfork("reload");
    EXPECT_EQ(reload.exitCode, 0) << reload.output;
    EXPECT_TRUE(master.waitForLog("reload: generation 2 serving", 30s)) << master.log();

    // Profiles land where the installed config says: the unit's state
    // directory, not its private /tmp.
    ToolRun start = tcpfork("profile");
    EXPECT_EQ(start.exitCode, 0) << start.output;
    EXPECT_TRUE(master.waitForLog("CPU profiling started", 10s)) << master.log();
    ToolRun stop = tcpfork("profile");
    EXPECT_EQ(stop.exitCode, 0) << stop.output;
    EXPECT_TRUE(master.waitForLog("CPU profile written to /var/lib/tcpfork/profiles/", 20s)) << master.log();
    EXPECT_GE(profilesIn("/var/lib/tcpfork/profiles"), 1u) << master.log();

    ToolRun quit = tcpfork("quit");
    EXPECT_EQ(quit.exitCode, 0) << quit.output;
    std::optional<int> status = master.process().waitExit(30s);
    ASSERT_TRUE(status.has_value()) << master.log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << "wait status " << *status << "\n" << master.log();
  }

  std::vector<std::string> listed;
  for (const auto& package : kPackages) {
    for (auto& path : listedFiles(package)) listed.push_back(path);
  }
  ASSERT_FALSE(listed.empty());

  ToolRun purge = installation.purge();
  ASSERT_EQ(purge.exitCode, 0) << purge.output;
  for (const auto& package : kPackages) {
    ToolRun status = runDpkg({"dpkg", "--status", package}, 30s);
    EXPECT_NE(status.exitCode, 0) << status.output;
    EXPECT_NE(status.output.find("is not installed"), std::string::npos) << status.output;
  }
  // A directory may stay only if it was there before (/usr/bin, /usr/share/man/man1).
  for (const auto& path : listed) {
    EXPECT_TRUE(!present(path) || (dirsBefore.contains(path) && fs::is_directory(path))) << path << " is left";
  }
  for (const auto& path : kMadeAtInstall) EXPECT_FALSE(present(path)) << path << " is left";
  for (const auto& link : kEnablementLinks) EXPECT_FALSE(present(link)) << link << " is left";
  EXPECT_EQ(::getpwnam("tcpfork"), nullptr) << "the tcpfork user is left";
  EXPECT_EQ(::getgrnam("tcpfork"), nullptr) << "the tcpfork group is left";
  // Nor a file of the removed user's, which a user created later with the same uid would own.
  ToolRun owned = runCommand({"/usr/bin/find", "/etc", "/var", "/run", "/dev/shm", "/tmp", "-xdev", "-uid",
                              std::to_string(uid), "-print"},
                             60s);
  std::string left;
  std::istringstream lines(owned.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("/", 0) == 0) left += line + "\n";
  }
  EXPECT_EQ(left, "") << "files still owned by uid " << uid << " (the tcpfork user's)";
}

}  // namespace
}  // namespace tcpfork::test
