// The journal module against real disk faults, in real workers under
// pipelined load: a full file system (a small tmpfs the test mounts), EIO
// from write and from fdatasync (test/journal_faults/journal_faults.c,
// preloaded into the master and its workers), and segments damaged while
// the server was stopped. Every request is answered; what was acked 0 is in
// the journal.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <cstring>
#include <optional>
#include <set>
#include <sstream>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "handlers/journal/format.h"
#include "handlers/journal/segment_files.h"
#include "test/integration/journal_fixture.h"
#include "test/integration/requirements.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

// A tmpfs of `size` mounted at a fresh directory; detached when done (a
// lazy unmount: nothing the test left running can keep it busy).
class Tmpfs {
 public:
  explicit Tmpfs(const std::string& size) : path_(tempPath("tmpfs")) {
    fs::create_directories(path_);
    std::string options = "size=" + size + ",mode=0755";
    mounted_ = ::mount("tmpfs", path_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) == 0;
    if (!mounted_) error_ = std::string("mount(tmpfs, ") + path_ + "): " + std::strerror(errno);
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;

  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool mounted_ = false;
  std::string error_;
};

// Fills `path` with zeros until the file system refuses more (ENOSPC), but
// for `leave` bytes it cuts back off the end; returns the bytes it holds.
uint64_t fillUpTo(const std::string& path, uint64_t leave) {
  std::ofstream out(path, std::ios::binary);
  std::vector<char> block(64 << 10, 0);
  uint64_t written = 0;
  for (int i = 0; i < 100'000 && out.write(block.data(), long(block.size())); ++i) written += block.size();
  out.close();
  written = fs::file_size(path);
  uint64_t keep = written > leave ? written - leave : 0;
  fs::resize_file(path, keep);
  return keep;
}

double workersCpu(const std::set<pid_t>& pids) {
  double sum = 0;
  for (pid_t pid : pids) sum += cpuSeconds(pid);
  return sum;
}

// The workers ("worker.N") whose log lines in `log` say `what`.
std::set<std::string> workersThatSaid(const std::string& log, const std::string& what) {
  std::set<std::string> who;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    size_t at = line.find("[worker.");
    if (at == std::string::npos || line.find(what) == std::string::npos) continue;
    size_t end = line.find(' ', at);
    if (end != std::string::npos) who.insert(line.substr(at + 1, end - at - 1));
  }
  return who;
}

// The journal's directory on a file system that fills up under load from
// several connections, then gets room again.
TEST(JournalFaults, AFullFileSystemIsAnsweredNotStoredAndStoringResumesOnceThereIsRoom) {
  TCPFORK_REQUIRE(::geteuid() == 0, "needs root: it mounts a small tmpfs to fill up");
  Tmpfs tmpfs("16m");
  ASSERT_TRUE(tmpfs.mounted()) << tmpfs.error();
  std::string dir = tmpfs.path() + "/journal";
  std::string filler = tmpfs.path() + "/filler";
  // About 1.5 MiB of room: thousands of records, then a full disk.
  uint64_t fillerBytes = fillUpTo(filler, 1536 << 10);
  ASSERT_GT(fillerBytes, 8u << 20);

  RunningMaster master(2, journalYaml(dir, "segment_bytes: 256KiB"));
  ASSERT_TRUE(master.waitForLog("journal in " + dir + " (fsync: always", 10s, 2)) << master.log();
  std::set<pid_t> workers = master.servingPids();
  ASSERT_EQ(workers.size(), 2u);

  auto load = std::make_unique<JournalLoad>(master.port(), 6, 32, 100);
  ASSERT_TRUE(waitUntil([&] { return load->acked() >= 2000; }, 30s)) << load->acked() << "\n" << master.log();
  // Full: every worker says when it stopped storing, once.
  ASSERT_TRUE(waitUntil([&] { return load->notStored() >= 5000; }, 60s))
      << load->notStored() << " answered 'not stored'\n" << master.log();
  EXPECT_TRUE(master.waitForLog("journal stopped storing", 10s)) << master.log();
  size_t logAtFull = master.log().size();
  double cpuBefore = workersCpu(workers);
  auto refusingFrom = std::chrono::steady_clock::now();
  load->mark();
  std::this_thread::sleep_for(2s);  // a window of refusing under load, observed, not waited on
  double loadedCpu = workersCpu(workers) - cpuBefore;
  double loadedSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - refusingFrom).count();
  uint64_t refusedInWindow = load->notStoredSinceMark();
  uint64_t ackedInWindow = load->ackedSinceMark();
  // A few may still be acked 0 (and are then in the journal, checked below):
  // a full tmpfs takes a small write into the unused end of a file's last page.
  load->stop();
  uint64_t nextId = load->nextId();
  const uint64_t refusedUnderLoad = load->notStored();
  std::vector<uint64_t> acked = load->ackedIds();
  EXPECT_EQ(load->lostConnections(), 0) << "a connection was closed or went unanswered\n" << master.log();
  EXPECT_EQ(load->wrongAcks(), 0);
  load.reset();

  // Idle and still full: nothing to do, so no CPU to burn.
  cpuBefore = workersCpu(workers);
  std::this_thread::sleep_for(2s);  // the idle window observed
  double idleCpu = workersCpu(workers) - cpuBefore;
  EXPECT_LT(idleCpu, 0.2) << "a worker spun while the file system was full";
  EXPECT_EQ(master.servingPids(), workers) << "a worker died\n" << master.log();

  // Room again, and no restart: storing resumes, and each worker says so.
  ASSERT_TRUE(fs::remove(filler));
  load = std::make_unique<JournalLoad>(master.port(), 6, 32, 100, nextId);
  load->mark();
  EXPECT_TRUE(waitUntil([&] { return load->ackedSinceMark() >= 2000; }, 30s))
      << load->ackedSinceMark() << "\n" << master.log();
  load->stop();
  // A request now and then, on a new connection each (so to every worker
  // that stopped storing: SO_REUSEPORT may have given the load to one):
  // an outage ends once writes have gone well for a second.
  std::vector<uint64_t> roundTrips;
  uint64_t failedTrips = 0;
  uint64_t id = load->nextId();
  EXPECT_TRUE(waitUntil(
      [&] {
        if (master.roundTrip(id)) {
          roundTrips.push_back(id);
        } else {
          ++failedTrips;
        }
        ++id;
        std::string log = master.log();
        return workersThatSaid(log, "journal stores again") == workersThatSaid(log, "journal stopped storing");
      },
      20s))
      << master.log();
  EXPECT_EQ(load->lostConnections(), 0) << master.log();
  EXPECT_EQ(load->wrongAcks(), 0);
  // Every 'not stored' the clients got, counted (what the alert on refusals reads).
  EXPECT_EQ(master.metric("tcp_server_handler_journal_not_stored_total"), double(refusedUnderLoad + load->notStored() + failedTrips));
  std::vector<uint64_t> after = load->ackedIds();
  acked.insert(acked.end(), after.begin(), after.end());
  acked.insert(acked.end(), roundTrips.begin(), roundTrips.end());
  EXPECT_EQ(master.servingPids(), workers) << "a worker was replaced\n" << master.log();

  // A stop and a resume per worker that wrote while the disk was full (the
  // load's connections may all have gone to one), and a line each 10 s at
  // most between them: not a line per refused request (hundreds of
  // thousands) nor one a second.
  std::string log = master.log();
  std::string whileFull = log.substr(logAtFull);
  std::set<std::string> stopped = workersThatSaid(log, "journal stopped storing");
  EXPECT_FALSE(stopped.empty()) << log;
  EXPECT_LE(count(log, "error: [journal]") + count(log, "warning: [journal]"), 3 * stopped.size())
      << whileFull.substr(0, 4000);
  EXPECT_EQ(count(log, "journal stopped storing"), stopped.size()) << "once per worker";
  EXPECT_EQ(count(log, "journal stores again"), stopped.size()) << "once per worker";
  EXPECT_EQ(workersThatSaid(log, "journal stores again"), stopped);
  EXPECT_GE(master.metric("tcp_server_handler_journal_errors_total"), 1);

  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();
  EXPECT_TRUE(filesIn(dir, journal::kOpenSuffix).empty()) << "segments left open after a graceful stop";
  JournalContents journal = readJournal(dir);
  EXPECT_EQ(journal.exitCode, 0) << journal.output.substr(0, 2000);
  size_t missing = expectAllInJournal(acked, journal);
  EXPECT_EQ(missing, 0u);
  ToolRun verify = runTool("tcpfork-journal", {"verify", dir}, 60s);
  EXPECT_EQ(verify.exitCode, 0) << verify.output.substr(0, 2000);
  std::cout << "journal ENOSPC: " << acked.size() << " acked 0 (" << missing << " missing from the journal), "
            << refusedUnderLoad << " answered 'not stored'; refusing under load: " << loadedCpu << " s CPU of the "
            << workers.size() << " workers in " << loadedSeconds << " s for " << refusedInWindow
            << " refused requests (" << ackedInWindow << " acked 0); idle while full: " << idleCpu << " s CPU in 2 s\n";
}

// EIO from write(2): like a full disk, the batch it hit is answered 'not
// stored' and the next batch tries again; the worker goes on once writes
// succeed.
TEST(JournalFaults, EioOnWriteIsAnsweredNotStoredAndStoringResumesInTheSameWorker) {
  std::string dir = tempPath("journal");
  PreloadedFaults faults(dir, tempPath("faults"));
  RunningMaster master(1, journalYaml(dir, "segment_bytes: 256KiB"));
  faults.restore();
  ASSERT_TRUE(master.waitForLog("journal in " + dir, 10s)) << master.log();
  std::set<pid_t> workers = master.servingPids();
  ASSERT_EQ(workers.size(), 1u);
  JournalLoad load(master.port(), 4, 32);
  ASSERT_TRUE(waitUntil([&] { return load.acked() >= 2000; }, 30s)) << load.acked() << "\n" << master.log();

  faults.arm("pwrite");
  ASSERT_TRUE(master.waitForLog("journal stopped storing", 10s)) << master.log();
  EXPECT_TRUE(master.waitForLog("pwrite: Input/output error", 1s)) << master.log();
  load.mark();
  ASSERT_TRUE(waitUntil([&] { return load.notStoredSinceMark() >= 2000; }, 30s)) << master.log();
  EXPECT_EQ(load.ackedSinceMark(), 0u) << "acked 0 while every write failed";

  faults.arm("");
  ASSERT_TRUE(master.waitForLog("journal stores again", 10s)) << master.log();
  load.mark();
  EXPECT_TRUE(waitUntil([&] { return load.ackedSinceMark() >= 2000; }, 30s)) << master.log();
  load.stop();
  EXPECT_EQ(load.wrongAcks(), 0);
  EXPECT_EQ(load.lostConnections(), 0) << master.log();
  EXPECT_EQ(master.servingPids(), workers) << "the worker was replaced\n" << master.log();
  EXPECT_EQ(master.metric("tcp_server_handler_journal_not_stored_total"), double(load.notStored()));

  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();
  JournalContents journal = readJournal(dir);
  EXPECT_EQ(journal.exitCode, 0) << journal.output.substr(0, 2000);
  std::vector<uint64_t> acked = load.ackedIds();
  EXPECT_EQ(expectAllInJournal(acked, journal), 0u);
  ToolRun verify = runTool("tcpfork-journal", {"verify", dir}, 60s);
  EXPECT_EQ(verify.exitCode, 0) << verify.output.substr(0, 2000);
  std::cout << "journal EIO on write: " << acked.size() << " acked 0, all in the journal; " << load.notStored()
            << " answered 'not stored'\n";
}

// EIO from fdatasync: the kernel may have dropped the pages it could not
// write, and a later fdatasync can succeed without them (PostgreSQL's
// "fsyncgate", 2018), so the journal never retries: every later request of
// that worker is answered 'not stored', the worker stops gracefully, and the
// master starts another, which recovers its unsealed segment. The fault is
// switched off at once: what is refused is refused for the earlier failure.
TEST(JournalFaults, EioOnFdatasyncRefusesEveryLaterRequestUntilTheMasterReplacesTheWorker) {
  std::string dir = tempPath("journal");
  PreloadedFaults faults(dir, tempPath("faults"));
  RunningMaster master(1, journalYaml(dir));
  faults.restore();
  ASSERT_TRUE(master.waitForLog("journal in " + dir, 10s)) << master.log();
  std::set<pid_t> workers = master.servingPids();
  ASSERT_EQ(workers.size(), 1u);
  const pid_t failing = *workers.begin();
  JournalLoad load(master.port(), 4, 32);
  ASSERT_TRUE(waitUntil([&] { return load.acked() >= 2000; }, 30s)) << load.acked() << "\n" << master.log();

  faults.arm("fdatasync");
  ASSERT_TRUE(master.waitForLog("fdatasync: Input/output error", 10s)) << master.log();
  faults.arm("");
  // Every request sent from here on that the failing worker answers is
  // answered 'not stored'; its successor stores them.
  const uint64_t failedAt = load.nextId();
  load.mark();
  EXPECT_TRUE(master.waitForLog("can no longer be called stored", 10s)) << master.log();
  pid_t successor = 0;
  ASSERT_TRUE(waitUntil(
      [&] {
        std::set<pid_t> now = master.servingPids();
        if (now.size() != 1 || now.count(failing)) return false;
        successor = *now.begin();
        return true;
      },
      30s))
      << master.log();
  // The master names why the worker went, counts no crash, and starts its
  // successor at once (no backoff).
  std::string retired = "worker 0 (pid " + std::to_string(failing) + ") retired itself (exit status 3): its handler "
                        "module journal";
  EXPECT_TRUE(master.waitForLog(retired, 1s)) << master.log();
  EXPECT_TRUE(master.waitForLog("stopped it: journal: an fdatasync failed: what this worker writes can no longer be "
                                "called stored",
                                1s))
      << master.log();
  EXPECT_TRUE(master.waitForLog("; starting its successor now", 1s)) << master.log();
  EXPECT_EQ(count(master.log(), "died unexpectedly"), 0u) << master.log();
  EXPECT_EQ(count(master.log(), "successor in"), 0u) << master.log();
  EXPECT_EQ(master.metric("tcp_server_worker_restarts_total"), 0) << master.log();
  EXPECT_TRUE(master.waitForLog("left open by workers that died", 10s)) << master.log();
  EXPECT_TRUE(waitUntil([&] { return load.ackedSinceMark() >= 2000; }, 30s)) << master.log();
  load.stop();
  EXPECT_EQ(load.wrongAcks(), 0);
  EXPECT_GE(load.notStored(), 1u) << "the requests the failed fdatasync covered";

  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();
  EXPECT_TRUE(filesIn(dir, journal::kOpenSuffix).empty()) << "segments left open after a graceful stop";
  JournalContents journal = readJournal(dir);
  EXPECT_EQ(journal.exitCode, 0) << journal.output.substr(0, 2000);
  std::vector<uint64_t> acked = load.ackedIds();
  EXPECT_EQ(expectAllInJournal(acked, journal), 0u);
  // Acked 0 after the failure: only by the successor.
  std::set<std::string> ackedLater;
  for (uint64_t n : acked) {
    if (n >= failedAt) ackedLater.insert(idText(n));
  }
  size_t byFailing = 0;
  for (const auto& record : journal.records) {
    if (ackedLater.count(record["id"].get<std::string>()) && record["pid"].get<pid_t>() != successor) ++byFailing;
  }
  EXPECT_EQ(byFailing, 0u) << "requests acked 0 by the worker whose fdatasync failed";
  ToolRun verify = runTool("tcpfork-journal", {"verify", dir}, 60s);
  EXPECT_EQ(verify.exitCode, 0) << verify.output.substr(0, 2000);
  std::cout << "journal EIO on fdatasync: " << acked.size() << " acked 0, all in the journal; "
            << load.notStoredSinceMark() << " answered 'not stored' after the failure, " << ackedLater.size()
            << " acked 0 after it, all by the successor (pid " << successor << ")\n";
}

// A disk whose fdatasync keeps failing: each worker retires itself at its
// first sync, and its successor does the same. The first four are replaced
// at once; the fifth within 10 s starts the backoff (100 ms, then growing),
// so the workers do not spin. Once the disk is sound the next successor
// stores.
TEST(JournalFaults, WorkersThatKeepRetiringThemselvesAreStartedAgainAfterAGrowingDelay) {
  std::string dir = tempPath("journal");
  PreloadedFaults faults(dir, tempPath("faults"));
  RunningMaster master(1, journalYaml(dir));
  faults.restore();
  ASSERT_TRUE(master.waitForLog("journal in " + dir, 10s)) << master.log();
  faults.arm("fdatasync");
  JournalLoad load(master.port(), 2, 16);
  ASSERT_TRUE(master.waitForLog("retired itself again (exit status 3)", 30s)) << master.log();
  EXPECT_TRUE(master.waitForLog("5 times in the last 10s: starting its successor in 0.1s", 1s)) << master.log();
  EXPECT_TRUE(master.waitForLog("successor in 0.2s", 10s)) << master.log();
  std::string log = master.log();
  size_t firstBackoff = log.find("retired itself again");
  EXPECT_EQ(count(log.substr(0, firstBackoff), "starting its successor now"), 4u) << log;
  EXPECT_EQ(count(log, "died unexpectedly"), 0u) << log;
  EXPECT_EQ(load.acked(), 0u) << "acked 0 while every fdatasync failed";

  faults.arm("");
  load.mark();
  EXPECT_TRUE(waitUntil([&] { return load.ackedSinceMark() >= 1000; }, 30s)) << master.log();
  load.stop();
  EXPECT_EQ(load.wrongAcks(), 0);
  size_t retirements = count(master.log(), "retired itself");
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();
  JournalContents journal = readJournal(dir);
  std::vector<uint64_t> acked = load.ackedIds();
  EXPECT_EQ(expectAllInJournal(acked, journal), 0u);
  std::cout << "journal fdatasync failing: " << retirements << " workers retired themselves, "
            << count(master.log(), "retired itself again") << " of them started again after a delay; then "
            << acked.size() << " acked 0, all in the journal\n";
}

// The IDs of the records of one segment file, in order, with their offsets.
std::vector<std::pair<std::string, uint64_t>> recordsOf(const std::string& path) {
  std::vector<std::pair<std::string, uint64_t>> records;
  for (const auto& record : readJournal(path).records) {
    records.emplace_back(record["id"].get<std::string>(), record["offset"].get<uint64_t>());
  }
  return records;
}

// Every thread of `pid` is stopped (state T): what it has written stays put.
bool allThreadsStopped(pid_t pid) {
  std::error_code ec;
  bool any = false;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::string stat = readFile(task.path().string() + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'T') return false;
    any = true;
  }
  return any;
}

void flipByte(const std::string& path, uint64_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(long(offset));
  char c = 0;
  file.get(c);
  file.seekp(long(offset));
  file.put(char(c ^ 0x40));
}

// Segments damaged while the server is stopped (after a kill -9, so each
// worker left an open one): an open segment cut short (a torn tail: cut off
// and sealed at start), an open one with a damaged record in the middle
// (logged and sealed, not cut: no record is thrown away on a guess), a sealed one cut
// short and a sealed one damaged (not read at start: verify finds them).
// The server starts and stores as before; every record before a damage is
// still read.
TEST(JournalFaults, SegmentsDamagedWhileStoppedAreRecoveredAsDocumented) {
  std::string dir = tempPath("journal");
  std::vector<uint64_t> ackedBefore;
  {
    RunningMaster master(2, journalYaml(dir, "segment_bytes: 64KiB"));
    ASSERT_TRUE(master.waitForLog("journal in " + dir, 10s, 2)) << master.log();
    // Both workers get records: a new connection each time, until the
    // kernel has handed one to each.
    uint64_t id = 10'000'000;
    ASSERT_TRUE(waitUntil([&] { return master.roundTrip(id++) && filesIn(dir, journal::kOpenSuffix).size() == 2; }, 20s))
        << master.log();
    JournalLoad load(master.port(), 8, 32, 100);
    ASSERT_TRUE(waitUntil([&] { return load.acked() >= 4000; }, 30s)) << load.acked() << "\n" << master.log();
    // A power cut, as near as a test gets: the master stopped first so that
    // it starts no successor to recover what the workers leave open.
    std::set<pid_t> workers = master.servingPids();
    master.process().signal(SIGSTOP);
    // Killed as they stand once each open segment holds the three records
    // the damage below needs: a worker that has just rotated holds fewer,
    // so until then the workers are let run on, a few ms at a time (they
    // rotate every ~500 records).
    auto eachOpenHoldsThree = [&] {
      for (const std::string& name : filesIn(dir, journal::kOpenSuffix)) {
        if (recordsOf(dir + "/" + name).size() < 3) return false;
      }
      return true;
    };
    ASSERT_TRUE(waitUntil(
        [&] {
          for (pid_t pid : workers) ::kill(pid, SIGSTOP);
          if (!waitUntil([&] { return std::all_of(workers.begin(), workers.end(), allThreadsStopped); }, 10s)) {
            return false;
          }
          if (eachOpenHoldsThree()) return true;
          for (pid_t pid : workers) ::kill(pid, SIGCONT);
          return false;
        },
        20s))
        << master.log();
    for (pid_t pid : workers) ::kill(pid, SIGKILL);
    killMasterAndWorkers(master.process(), master.name());
    load.stop();
    ackedBefore = load.ackedIds();
  }
  std::vector<std::string> open = filesIn(dir, journal::kOpenSuffix);
  std::vector<std::string> sealed = filesIn(dir, journal::kSealedSuffix);
  // One per worker killed, or two for one that was sealing a segment it
  // had just rotated past: the two with most records are damaged.
  ASSERT_GE(open.size(), 2u) << "one open segment per worker killed";
  std::sort(open.begin(), open.end(), [&](const std::string& a, const std::string& b) {
    return fs::file_size(dir + "/" + a) > fs::file_size(dir + "/" + b);
  });
  ASSERT_GE(sealed.size(), 2u);
  // Each damage, and the IDs it may cost: those at and after it in its file.
  std::set<std::string> mayBeLost;
  auto damage = [&](const std::string& name, bool cut) -> std::pair<std::string, uint64_t> {
    std::string path = dir + "/" + name;
    auto records = recordsOf(path);
    EXPECT_GE(records.size(), 3u) << name;
    if (records.size() < 3) return {"", 0};
    size_t at = cut ? records.size() - 1 : records.size() / 2;
    for (size_t i = at; i < records.size(); ++i) mayBeLost.insert(records[i].first);
    uint64_t offset = records[at].second;
    if (cut) {
      fs::resize_file(path, fs::file_size(path) - 5);
    } else {
      flipByte(path, offset + journal::kRecordPrefixBytes + journal::kIdBytes + 2);  // in its receive time
    }
    return {records[at].first, offset};
  };
  auto [tornId, tornAt] = damage(open[0], true);
  auto [corruptOpenId, corruptOpenAt] = damage(open[1], false);
  damage(sealed[0], true);
  damage(sealed[1], false);
  uint64_t tornBytes = fs::file_size(dir + "/" + open[0]) - tornAt;
  uint64_t corruptOpenSize = fs::file_size(dir + "/" + open[1]);

  RunningMaster master(2, journalYaml(dir, "segment_bytes: 64KiB"));
  ASSERT_TRUE(master.waitForLog("journal in " + dir, 10s, 2)) << master.log();
  EXPECT_TRUE(master.waitForLog(open[0] + ": torn tail of " + std::to_string(tornBytes) + " bytes at offset " +
                                    std::to_string(tornAt),
                                1s))
      << master.log();
  EXPECT_TRUE(master.waitForLog(open[1] + ": corrupt record at offset " + std::to_string(corruptOpenAt), 1s))
      << master.log();
  EXPECT_TRUE(fs::exists(dir + "/" + journal::sealedName(open[0]))) << "the torn one is sealed";
  EXPECT_TRUE(fs::exists(dir + "/" + journal::sealedName(open[1]))) << "the corrupt one is sealed, not cut";
  EXPECT_EQ(fs::file_size(dir + "/" + journal::sealedName(open[1])), corruptOpenSize);
  EXPECT_GE(master.metric("tcp_server_handler_journal_torn_tails_total"), 1) << master.scrape();
  JournalLoad load(master.port(), 4, 32, 100, 1'000'000);
  EXPECT_TRUE(waitUntil([&] { return load.acked() >= 2000; }, 30s)) << load.acked() << "\n" << master.log();
  load.stop();
  EXPECT_EQ(load.notStored(), 0u);
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();

  JournalContents journal = readJournal(dir);
  EXPECT_EQ(journal.exitCode, 1) << "damage found\n" << journal.output.substr(0, 2000);
  std::vector<uint64_t> expected = load.ackedIds();
  for (uint64_t n : ackedBefore) {
    if (!mayBeLost.count(idText(n))) expected.push_back(n);
  }
  EXPECT_EQ(expectAllInJournal(expected, journal), 0u);
  EXPECT_EQ(journal.ids.count(tornId), 0u) << "the torn record was cut off";
  ToolRun verify = runTool("tcpfork-journal", {"verify", dir}, 60s);
  EXPECT_EQ(verify.exitCode, 1) << verify.output;
  EXPECT_NE(verify.output.find(journal::sealedName(open[1]) + ": "), std::string::npos) << verify.output;
  EXPECT_NE(verify.output.find("corrupt record at offset " + std::to_string(corruptOpenAt)), std::string::npos)
      << verify.output;
  EXPECT_NE(verify.output.find(sealed[0] + ": "), std::string::npos) << verify.output;
  EXPECT_NE(verify.output.find("3 problems"), std::string::npos) << verify.output;
  std::cout << "journal damaged while stopped: " << ackedBefore.size() << " acked before, " << mayBeLost.size()
            << " of them in damaged records or after them, " << expected.size() << " expected and found\n";
}

}  // namespace
}  // namespace tcpfork::test
