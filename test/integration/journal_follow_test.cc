// tcpfork-journal follow against real workers: every record two workers
// write, through their rotations, in each writer's order, whole; stopped and
// started again with its cursor, it goes on where it stopped, with no gap
// and no repeat; segments retention deleted before it read them are skipped
// and said.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test/integration/journal_fixture.h"
#include "test/integration/process.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

// tcpfork-journal follow running with `args`, its output (stdout and
// stderr) in a file of its own.
class Follow {
 public:
  explicit Follow(std::vector<std::string> args) : output_(tempPath("follow.out")) {
    args.insert(args.begin(), {binary("tcpfork-journal"), "follow", "--json"});
    process_ = std::make_unique<ChildProcess>(args, std::vector<int>{}, output_);
  }
  // SIGTERM, and its exit code (-1 when it did not stop).
  int stop() {
    process_->signal(SIGTERM);
    auto status = process_->waitExit(10s);
    return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
  }
  std::vector<nlohmann::json> records() const {
    std::vector<nlohmann::json> records;
    std::istringstream lines(readFile(output_));
    std::string line;
    // A line still being written at the end of the file is left for later.
    while (std::getline(lines, line) && !lines.eof()) {
      if (!line.empty() && line[0] == '{') records.push_back(nlohmann::json::parse(line));
    }
    return records;
  }
  std::set<std::string> ids() const {
    std::set<std::string> ids;
    for (const auto& r : records()) ids.insert(r["id"].get<std::string>());
    return ids;
  }
  std::string output() const { return readFile(output_); }

 private:
  std::string output_;
  std::unique_ptr<ChildProcess> process_;
};

bool allIn(const std::vector<uint64_t>& acked, const std::set<std::string>& seen) {
  for (uint64_t n : acked) {
    if (!seen.count(idText(n))) return false;
  }
  return true;
}

// Within each writer's records, (segment sequence, offset) only grows.
void expectWritersOrder(const std::vector<nlohmann::json>& records, std::set<std::string>& writers,
                        std::set<std::string>& files) {
  std::regex name(R"(.*/(w\d+-[0-9T.]+Z-\d+)-(\d+)\.journal(\.open)?)");
  std::map<std::string, std::pair<int, uint64_t>> last;
  for (const auto& record : records) {
    std::string file = record["file"].get<std::string>();
    std::smatch m;
    ASSERT_TRUE(std::regex_match(file, m, name)) << file;
    std::pair<int, uint64_t> at{std::stoi(m[2].str()), record["offset"].get<uint64_t>()};
    auto [it, first] = last.emplace(m[1].str(), at);
    if (!first) {
      EXPECT_LT(it->second, at) << file << " at " << at.second << " after sequence " << it->second.first << " offset "
                                << it->second.second;
      it->second = at;
    }
    writers.insert(m[1].str());
    files.insert(m[1].str() + "-" + m[2].str());
    std::string payload = record["payload"].get<std::string>();
    if (payload != "hello") {
      EXPECT_EQ(payload.substr(0, 9), "p" + record["id"].get<std::string>());
    }
  }
}

TEST(JournalFollow, EveryRecordOfTwoWorkersThroughRotationsThenOnFromItsCursor) {
  std::string dir = tempPath("journal");
  std::string cursor = tempPath("cursor");
  RunningMaster master(2, journalYaml(dir, "segment_bytes: 64KiB"));
  ASSERT_TRUE(master.waitForLog("journal in " + dir, 10s, 2)) << master.log();
  // Both workers write: a new connection each time until each has a segment.
  std::vector<uint64_t> acked;
  uint64_t id = 90'000'000;  // apart from the loads' IDs
  ASSERT_TRUE(waitUntil(
      [&] {
        if (master.roundTrip(id)) acked.push_back(id);
        ++id;
        return filesIn(dir, ".journal.open").size() == 2;
      },
      20s))
      << master.log();

  Follow first({"--from-start", "--cursor", cursor, dir});
  {
    JournalLoad load(master.port(), 8, 32, 100);
    ASSERT_TRUE(waitUntil([&] { return load.acked() >= 6000; }, 30s)) << load.acked() << "\n" << master.log();
    load.stop();
    EXPECT_EQ(load.notStored(), 0u);
    auto ids = load.ackedIds();
    acked.insert(acked.end(), ids.begin(), ids.end());
  }
  EXPECT_TRUE(waitUntil([&] { return allIn(acked, first.ids()); }, 30s)) << first.output().substr(0, 2000);
  EXPECT_EQ(first.stop(), 0);
  std::vector<nlohmann::json> seenFirst = first.records();

  // Written while no one follows; then followed from the cursor alone.
  std::vector<uint64_t> ackedLater;
  {
    JournalLoad load(master.port(), 8, 32, 100, 10'000'000);
    ASSERT_TRUE(waitUntil([&] { return load.acked() >= 6000; }, 30s)) << load.acked() << "\n" << master.log();
    load.stop();
    ackedLater = load.ackedIds();
  }
  Follow second({"--cursor", cursor, dir});
  {
    JournalLoad load(master.port(), 8, 32, 100, 20'000'000);
    ASSERT_TRUE(waitUntil([&] { return load.acked() >= 2000; }, 30s)) << load.acked() << "\n" << master.log();
    load.stop();
    auto ids = load.ackedIds();
    ackedLater.insert(ackedLater.end(), ids.begin(), ids.end());
  }
  EXPECT_TRUE(waitUntil([&] { return allIn(ackedLater, second.ids()); }, 30s)) << second.output().substr(0, 2000);
  EXPECT_EQ(second.stop(), 0);
  std::vector<nlohmann::json> seenSecond = second.records();

  std::set<std::string> writers, files;
  expectWritersOrder(seenFirst, writers, files);
  expectWritersOrder(seenSecond, writers, files);
  EXPECT_EQ(writers.size(), 2u);
  EXPECT_GE(files.size(), 6u) << "rotations";
  std::set<std::string> firstIds = first.ids();
  size_t repeated = 0;
  for (const auto& r : seenSecond) repeated += firstIds.count(r["id"].get<std::string>());
  EXPECT_EQ(repeated, 0u) << "printed again after a clean stop";
  EXPECT_EQ(firstIds.size(), seenFirst.size()) << "a record printed twice";
  EXPECT_EQ(first.output().find("tcpfork-journal:"), std::string::npos) << first.output().substr(0, 2000);
  EXPECT_EQ(second.output().find("tcpfork-journal:"), std::string::npos) << second.output().substr(0, 2000);
  std::cout << "journal follow: " << seenFirst.size() << " records, then " << seenSecond.size()
            << " from the cursor, from " << writers.size() << " writers in " << files.size() << " segments; "
            << repeated << " repeated\n";
}

TEST(JournalFollow, SegmentsDeletedBeforeTheyWereReadAreSkippedAndSaid) {
  std::string dir = tempPath("journal");
  std::string cursor = tempPath("cursor");
  RunningMaster master(1, journalYaml(dir, "fsync: never, segment_bytes: 64KiB, retention: {max_bytes: 256KiB}"));
  ASSERT_TRUE(master.roundTrip(1));
  {
    Follow early({"--from-start", "--cursor", cursor, dir});
    EXPECT_TRUE(waitUntil([&] { return early.ids().count(idText(1)) == 1; }, 10s)) << early.output();
    EXPECT_EQ(early.stop(), 0);
  }
  // About 2 MB while no one follows: retention deletes most of it.
  {
    JournalLoad load(master.port(), 4, 32, 1000, 100);
    ASSERT_TRUE(waitUntil([&] { return load.acked() >= 2000; }, 30s)) << load.acked() << "\n" << master.log();
    load.stop();
  }
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_handler_journal_segments_deleted_total") >= 4; }, 10s))
      << master.scrape();
  Follow late({"--cursor", cursor, dir});
  JournalContents kept = readJournal(dir);  // what is still there, as cat sees it
  ASSERT_FALSE(kept.ids.empty());
  EXPECT_TRUE(waitUntil(
      [&] {
        auto seen = late.ids();
        for (const auto& id : kept.ids) {
          if (!seen.count(id) && fs::exists(dir)) return false;
        }
        return true;
      },
      20s))
      << late.output().substr(0, 2000);
  EXPECT_EQ(late.stop(), 0);
  EXPECT_NE(late.output().find("deleted before it was read to its end"), std::string::npos)
      << late.output().substr(0, 2000);
}

// With fsync: always a record is durable once the fdatasync that covers it
// has returned; before that it is in the segment, whole and checked, but an
// OS crash can still take it. follow prints it only once it is durable: the
// shim holds every fdatasync while requests are written, and a follower
// started then prints what was synced before, nothing after, until the
// syncs go through.
TEST(JournalFollow, ARecordWrittenButNotYetSyncedIsNotPrinted) {
  std::string dir = tempPath("journal");
  PreloadedFaults faults(dir, tempPath("faults"));
  RunningMaster master(1, journalYaml(dir));
  faults.restore();
  ASSERT_TRUE(master.waitForLog("journal in " + dir, 10s)) << master.log();
  for (uint64_t n = 1; n <= 5; ++n) ASSERT_TRUE(master.roundTrip(n));  // acked 0: synced

  faults.arm("holdsync");
  JournalLoad load(master.port(), 2, 16, 0, 1000);
  auto heldInFile = [&] {
    size_t n = 0;
    for (const auto& id : readJournal(dir).ids) n += id >= idText(1000);
    return n;
  };
  // Both connections' bursts are in the segment (cat reads whatever is
  // written), and none is acked: their sync waits.
  ASSERT_TRUE(waitUntil([&] { return heldInFile() >= 32; }, 10s)) << heldInFile() << "\n" << master.log();
  EXPECT_EQ(load.acked(), 0u) << "acked while every fdatasync was held";
  Follow follow({"--from-start", dir});
  // Its first poll reads every segment there: the five synced records, and
  // the held ones written before it started.
  ASSERT_TRUE(waitUntil([&] { return follow.ids().size() >= 5; }, 10s)) << follow.output();
  std::set<std::string> synced;
  for (uint64_t n = 1; n <= 5; ++n) synced.insert(idText(n));
  EXPECT_EQ(follow.ids(), synced) << "printed records whose fdatasync had not returned\n" << follow.output().substr(0, 2000);
  EXPECT_EQ(load.acked(), 0u);
  const size_t held = heldInFile();

  faults.arm("");
  ASSERT_TRUE(waitUntil([&] { return load.acked() >= 200; }, 20s)) << load.acked() << "\n" << master.log();
  load.stop();
  std::vector<uint64_t> acked = load.ackedIds();
  EXPECT_TRUE(waitUntil([&] { return allIn(acked, follow.ids()); }, 20s)) << follow.output().substr(0, 2000);
  EXPECT_EQ(follow.stop(), 0);
  EXPECT_EQ(load.wrongAcks(), 0);
  EXPECT_EQ(load.lostConnections(), 0) << master.log();
  std::cout << "journal follow, syncs held: " << synced.size() << " synced records printed, none of the "
            << held << " written meanwhile until their sync returned; then " << acked.size() << " acked, all printed\n";
}

TEST(JournalFollow, SinceBeginsWithTheFirstRecordReceivedAtThatTime) {
  std::string dir = tempPath("journal");
  RunningMaster master(1, journalYaml(dir, "fsync: never"));
  for (uint64_t n = 1; n <= 10; ++n) ASSERT_TRUE(master.roundTrip(n));
  JournalContents written = readJournal(dir);
  ASSERT_EQ(written.records.size(), 10u) << written.output;
  std::string since = written.records[5]["time"].get<std::string>();  // the sixth, to the microsecond
  Follow follow({"--since", since, dir});
  EXPECT_TRUE(waitUntil([&] { return follow.ids().size() >= 5; }, 10s)) << follow.output();
  EXPECT_EQ(follow.stop(), 0);
  std::set<std::string> expected;
  for (uint64_t n = 6; n <= 10; ++n) expected.insert(idText(n));
  EXPECT_EQ(follow.ids(), expected) << "since " << since << ":\n" << follow.output();

  ToolRun bad = runTool("tcpfork-journal", {"follow", "--since", "yesterday", dir}, 10s);
  EXPECT_EQ(bad.exitCode, 2) << bad.output;
  EXPECT_NE(bad.output.find("--since: expected a UTC time"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace tcpfork::test
