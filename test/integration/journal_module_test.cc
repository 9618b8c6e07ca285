// The journal module (handlers/journal) in real workers: an ack means the
// record is in the worker's segment files (and, with fsync: always, synced),
// so a worker killed with SIGKILL under load loses no acked record; a torn
// tail left by a dead writer is cut off at the next start, and a file a live
// writer holds is left alone; segments rotate at segment_bytes; the config is
// checked with its keys named.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "handlers/journal/format.h"
#include "handlers/journal/segment_files.h"
#include "protocol/codec.h"
#include "test/integration/journal_fixture.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

TEST(Journal, AWorkerKilledUnderLoadLosesNoAckedRecord) {
  std::string dir = tempPath("journal");
  RunningMaster master(2, journalYaml(dir));
  ASSERT_TRUE(master.waitForLog("journal in " + dir + " (fsync: always", 10s, 2)) << master.log();
  JournalLoad load(master.port(), 8, 32);
  ASSERT_TRUE(waitUntil([&] { return load.acked() >= 5000; }, 30s)) << load.acked() << "\n" << master.log();
  // The victim is a worker that has written records: its open segment is
  // named with its pid (w<index>-<start>-<pid>-<seq>.journal.open).
  auto open = filesIn(dir, journal::kOpenSuffix);
  ASSERT_FALSE(open.empty());
  std::smatch m;
  ASSERT_TRUE(std::regex_match(open.front(), m, std::regex(R"(w\d+-[0-9T.]+Z-(\d+)-\d+\.journal\.open)"))) << open.front();
  pid_t victim = pid_t(std::stol(m[1].str()));
  ASSERT_EQ(master.servingPids().count(victim), 1u) << open.front();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  // Its successor finds the victim's open segment and seals it.
  ASSERT_TRUE(master.waitForLog("left open by workers that died", 20s)) << master.log();
  uint64_t atRestart = load.acked();
  ASSERT_TRUE(waitUntil([&] { return load.acked() >= atRestart + 5000; }, 30s)) << load.acked() << "\n" << master.log();
  load.stop();
  EXPECT_GE(load.lostConnections(), 1) << "no connection was on the killed worker";
  EXPECT_EQ(load.wrongAcks(), 0);
  EXPECT_EQ(load.notStored(), 0u);

  // A graceful stop seals every segment; then every acked ID must be there.
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();
  EXPECT_TRUE(filesIn(dir, journal::kOpenSuffix).empty()) << "segments left open after a graceful stop";
  JournalContents journal = readJournal(dir);
  EXPECT_EQ(journal.exitCode, 0) << journal.output.substr(0, 2000);
  std::vector<uint64_t> acked = load.ackedIds();
  size_t missing = 0;
  for (uint64_t n : acked) {
    if (journal.ids.count(idText(n)) == 0 && ++missing <= 10) ADD_FAILURE() << "acked ID " << idText(n) << " is not in the journal";
  }
  EXPECT_EQ(missing, 0u);
  for (const auto& record : journal.records) {
    EXPECT_EQ(record["payload"].get<std::string>(), "p" + record["id"].get<std::string>());
  }
  ToolRun verify = runTool("tcpfork-journal", {"verify", dir}, 60s);
  EXPECT_EQ(verify.exitCode, 0) << verify.output.substr(0, 2000);
  std::cout << "journal kill -9: " << acked.size() << " acks (" << load.ackedOnLostConnections()
            << " on the killed worker's connections), " << missing << " of them missing; " << journal.records.size()
            << " records in the journal\n";
}

// rm -rf of the journal directory under load. Writing on into files that
// have no name any more would ack records that vanish when the worker exits:
// from the removal on, requests are answered 1 (not stored) and the workers
// say why; once the directory is there again they journal into it, and every
// request acked 0 after the removal is in it. In each fsync mode: with always
// the sync thread asks before it acks, with interval and never the loop does.
class JournalDirectoryRemoved : public ::testing::TestWithParam<std::string> {};

TEST_P(JournalDirectoryRemoved, AnswersNotStoredUntilItIsBackAndLosesNoAckedRecord) {
  std::string dir = tempPath("journal");
  RunningMaster master(2, journalYaml(dir, "fsync: " + GetParam()));
  ASSERT_TRUE(master.waitForLog("journal in " + dir + " (fsync: " + GetParam(), 10s, 2)) << master.log();
  JournalLoad load(master.port(), 8, 32);
  ASSERT_TRUE(waitUntil([&] { return load.acked() >= 5000; }, 30s)) << load.acked() << "\n" << master.log();

  // As `rm -rf`: the files, then the directory. A worker may make a new
  // segment while the files go (the last rm then finds the directory not
  // empty, as rm -rf would): what it stored there goes with the next try.
  std::error_code ec;
  for (int attempt = 0; attempt < 10 && fs::exists(dir); ++attempt) fs::remove_all(dir, ec);
  ASSERT_FALSE(fs::exists(dir)) << dir << ": " << ec.message();
  const uint64_t removed = load.nextId();  // IDs from here on were sent after the removal
  EXPECT_TRUE(master.waitForLog("journal directory " + dir + " is gone", 20s)) << master.log();
  EXPECT_TRUE(master.waitForLog("answered 'not stored' until it is there again", 10s)) << master.log();
  load.mark();
  EXPECT_TRUE(waitUntil([&] { return load.notStoredSinceMark() >= 2000; }, 30s))
      << load.notStoredSinceMark() << " answered 'not stored'\n" << master.log();
  // Every request sent since it was said was answered while the directory
  // was still gone.
  EXPECT_EQ(load.ackedSinceMark(), 0u) << "acked 0 with no directory to store them in";

  ASSERT_TRUE(fs::create_directory(dir));
  EXPECT_TRUE(master.waitForLog("journal directory " + dir + " is back", 20s)) << master.log();
  const uint64_t back = load.acked();
  EXPECT_TRUE(waitUntil([&] { return load.acked() >= back + 5000; }, 30s)) << load.acked() << "\n" << master.log();
  load.stop();
  EXPECT_EQ(load.wrongAcks(), 0);

  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();
  EXPECT_TRUE(filesIn(dir, journal::kOpenSuffix).empty()) << "segments left open after a graceful stop";
  JournalContents journal = readJournal(dir);
  EXPECT_EQ(journal.exitCode, 0) << journal.output.substr(0, 2000);
  size_t checked = 0;
  size_t missing = 0;
  for (uint64_t n : load.ackedIds()) {
    if (n < removed) continue;  // stored, then deleted with the directory
    ++checked;
    if (journal.ids.count(idText(n)) == 0 && ++missing <= 10) {
      ADD_FAILURE() << "acked ID " << idText(n) << " is not in the journal";
    }
  }
  EXPECT_GE(checked, 5000u);
  EXPECT_EQ(missing, 0u);
  std::cout << "journal rm -rf, fsync: " << GetParam() << ": " << load.notStored() << " answered 'not stored', "
            << checked << " acked 0 after the removal, " << missing << " of them missing\n";
}

INSTANTIATE_TEST_SUITE_P(EveryFsyncMode, JournalDirectoryRemoved, ::testing::Values("always", "interval", "never"),
                         [](const auto& info) { return info.param; });

// The open segment file deleted on its own (rm of one file): the requests
// written to it since are answered 1, and a second later the worker goes on
// in a new segment, whose records are all there at the end.
class JournalSegmentDeleted : public ::testing::TestWithParam<std::string> {};

TEST_P(JournalSegmentDeleted, AnswersNotStoredThenGoesOnInANewSegment) {
  std::string dir = tempPath("journal");
  RunningMaster master(1, journalYaml(dir, "fsync: " + GetParam()));
  TestConnection conn(master.port(), 10s);
  uint64_t next = 0;
  std::vector<uint64_t> stored;
  // One burst of 32 requests; how many were answered 'not stored'.
  auto burst = [&]() -> int {
    std::vector<std::byte> frames;
    uint64_t first = next;
    for (int i = 0; i < 32; ++i) frames = concat(std::move(frames), submitFrame(next++));
    conn.send(frames);
    std::vector<std::byte> acks = conn.read(32 * kAckBytes);
    EXPECT_EQ(acks.size(), 32 * kAckBytes);
    int notStored = 0;
    for (size_t i = 0; i + kAckBytes <= acks.size(); i += kAckBytes) {
      uint8_t result = uint8_t(acks[i + kAckBytes - 1]);
      EXPECT_LE(result, 1) << "ID " << first + i / kAckBytes;
      if (result == 0) stored.push_back(first + i / kAckBytes);
      notStored += result == 1;
    }
    return notStored;
  };
  ASSERT_EQ(burst(), 0);
  auto open = filesIn(dir, journal::kOpenSuffix);
  ASSERT_EQ(open.size(), 1u);
  ASSERT_TRUE(fs::remove(dir + "/" + open[0]));
  const uint64_t deleted = next;
  EXPECT_EQ(burst(), 32) << master.log();
  EXPECT_TRUE(master.waitForLog(open[0] + ": deleted while open", 10s)) << master.log();
  EXPECT_TRUE(waitUntil([&] { return burst() == 0; }, 20s)) << master.log();
  EXPECT_GE(master.metric("tcp_server_handler_journal_errors_total"), 1) << master.scrape();
  conn.close();  // a graceful stop waits for open connections
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();

  auto sealed = filesIn(dir, journal::kSealedSuffix);
  ASSERT_EQ(sealed.size(), 1u) << "the new segment";
  EXPECT_NE(sealed[0], journal::sealedName(open[0]));
  JournalContents journal = readJournal(dir);
  size_t missing = 0;
  for (uint64_t n : stored) {
    if (n >= deleted && journal.ids.count(idText(n)) == 0) ++missing;
  }
  EXPECT_EQ(missing, 0u) << journal.output.substr(0, 2000);
}

INSTANTIATE_TEST_SUITE_P(EveryFsyncMode, JournalSegmentDeleted, ::testing::Values("always", "interval", "never"),
                         [](const auto& info) { return info.param; });

// A segment as a writer that died mid-write leaves it: a header, `records`
// good records, then the first `cut` bytes of one more.
std::string writeDeadSegment(const std::string& dir, const std::string& name, int records, size_t cut) {
  fs::create_directories(dir);
  auto header = journal::encodeHeader({1, 0, 1, 4242});
  std::vector<std::byte> bytes(header.begin(), header.end());
  for (int i = 0; i < records; ++i) {
    std::string id = idText(uint64_t(100 + i));
    std::string payload = "payload " + std::to_string(i);
    journal::appendRecord(bytes, id.data(), 1, reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
  }
  std::vector<std::byte> extra;
  std::string id = idText(999);
  journal::appendRecord(extra, id.data(), 1, reinterpret_cast<const uint8_t*>("cut"), 3);
  bytes.insert(bytes.end(), extra.begin(), extra.begin() + long(cut));
  std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), long(bytes.size()));
  return path;
}

TEST(Journal, ATornTailOfADeadWriterIsCutOffAtStartAndALiveWritersFileIsLeftAlone) {
  std::string dir = tempPath("journal");
  std::string dead = writeDeadSegment(dir, "w000-20260101T000000.000000Z-4242-000001.journal.open", 3, 17);
  uint64_t goodBytes = fs::file_size(dead) - 17;
  // As a live writer holds its file: locked, so recovery must not touch it.
  std::string live = writeDeadSegment(dir, "w001-20260101T000000.000000Z-4343-000001.journal.open", 2, 5);
  uint64_t liveBytes = fs::file_size(live);
  int liveFd = ::open(live.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(liveFd, 0);
  ASSERT_EQ(::flock(liveFd, LOCK_EX | LOCK_NB), 0);

  RunningMaster master(1, journalYaml(dir));
  ASSERT_TRUE(master.waitForLog("torn tail of 17 bytes at offset " + std::to_string(goodBytes), 10s)) << master.log();
  EXPECT_TRUE(master.waitForLog("recovered 1 segment left open", 10s)) << master.log();
  std::string sealed = journal::sealedName(dead);
  ASSERT_TRUE(fs::exists(sealed)) << master.log();
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_EQ(fs::file_size(sealed), goodBytes);
  EXPECT_EQ(master.metric("tcp_server_handler_journal_torn_tails_total"), 1) << master.scrape();
  EXPECT_EQ(master.metric("tcp_server_handler_journal_torn_bytes_total"), 17);
  EXPECT_TRUE(fs::exists(live));
  EXPECT_EQ(fs::file_size(live), liveBytes);
  ::close(liveFd);

  ToolRun verify = runTool("tcpfork-journal", {"verify", sealed}, 30s);
  EXPECT_EQ(verify.exitCode, 0) << verify.output;
  JournalContents contents = readJournal(sealed);
  EXPECT_EQ(contents.records.size(), 3u) << contents.output;
}

TEST(Journal, SegmentsRotateAtSegmentBytesAndKeepEveryRecordInOrder) {
  std::string dir = tempPath("journal");
  RunningMaster master(1, journalYaml(dir, "fsync: never, segment_bytes: 64KiB"));
  TestConnection conn(master.port(), 10s);
  // A Conn goes through unjournaled, acked 0.
  std::vector<std::byte> login(protocol::requestFrameBytes(0));
  protocol::encodeRequest(protocol::Command::kConn, protocol::formatId(7), {}, login.data());
  conn.send(login);
  std::vector<std::byte> loginAck(kAckBytes);
  protocol::encodeAck(protocol::Command::kConnAck, protocol::formatId(7), 0, loginAck.data());
  ASSERT_EQ(conn.read(kAckBytes), loginAck);
  constexpr uint64_t kRecords = 4000;
  const std::string payload(100, 'x');
  for (uint64_t start = 0; start < kRecords; start += 100) {
    std::vector<std::byte> burst, expected;
    for (uint64_t n = start; n < start + 100; ++n) {
      burst = concat(std::move(burst), submitFrame(n, payload));
      expected = concat(std::move(expected), submitAckFrame(n));
    }
    conn.send(burst);
    ASSERT_EQ(conn.read(expected.size()), expected) << "burst at " << start;
  }
  EXPECT_EQ(master.metric("tcp_server_handler_journal_records_total"), double(kRecords));
  EXPECT_EQ(master.metric("tcp_server_handler_journal_fsyncs_total"), 0);
  conn.close();  // a graceful stop waits for open connections
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();

  auto segments = filesIn(dir, journal::kSealedSuffix);
  const uint64_t perRecord = journal::recordBytes(payload.size());
  EXPECT_GE(segments.size(), kRecords * perRecord / (64 << 10)) << "too few segments";
  for (size_t i = 0; i < segments.size(); ++i) {
    uint64_t size = fs::file_size(dir + "/" + segments[i]);
    EXPECT_LE(size, uint64_t(64 << 10)) << segments[i];
    if (i + 1 < segments.size()) {
      EXPECT_GT(size + perRecord, uint64_t(64 << 10)) << segments[i] << " rotated early";
    }
  }
  JournalContents contents = readJournal(dir);
  ASSERT_EQ(contents.records.size(), kRecords) << contents.output.substr(0, 2000);
  for (uint64_t n = 0; n < kRecords; ++n) {
    EXPECT_EQ(contents.records[n]["id"].get<std::string>(), idText(n));
    EXPECT_EQ(contents.records[n]["payload"].get<std::string>(), payload);
  }
}

TEST(Journal, IntervalModeSyncsInTheBackgroundAndCountsIt) {
  std::string dir = tempPath("journal");
  RunningMaster master(1, journalYaml(dir, "fsync: interval, fsync_interval: 20ms"));
  TestConnection conn(master.port(), 10s);
  // The syncer's figures reach the counters at the loop's next batch end.
  uint64_t n = 0;
  EXPECT_TRUE(waitUntil(
      [&] {
        conn.send(submitFrame(n));
        if (conn.read(kAckBytes) != submitAckFrame(n)) return false;
        ++n;
        return master.metric("tcp_server_handler_journal_fsyncs_total") >= 2;
      },
      20s))
      << master.scrape();
  EXPECT_GT(master.metric("tcp_server_handler_journal_fsync_nanoseconds_total"), 0);
  EXPECT_EQ(master.metric("tcp_server_handler_journal_errors_total"), 0);
}

TEST(JournalConfig, TheConfigTestNamesTheBadKey) {
  struct Case {
    std::string config;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"{dir: relative/path}", "dir: must be an absolute path, got 'relative/path'"},
      {"{dir: /tmp, fsync: sometimes}", "fsync: expected always, interval or never"},
      {"{dir: /tmp, segment_bytes: 10}", "segment_bytes: must be from 64KiB to 1TiB"},
      {"{dir: /tmp, fsync_interval: 5ms}", "fsync_interval: is for fsync: interval only"},
      {"{dir: /tmp, colour: blue}", "colour: unknown key"},
      {"{fsync: never}", "dir: required"},
      {"{dir: /tmp, retention: {max_bytes: 10}}", "retention.max_bytes: must be from 64KiB to 1PiB"},
      {"{dir: /tmp, retention: {max_age: 3w}}", "retention.max_age: expected an age like 90s, 30m, 12h or 7d"},
      {"{dir: /tmp, retention: {}}", "retention: expected max_bytes, max_age or both"},
      {"{dir: /tmp, retention: {keep: 3}}", "retention.keep: unknown key (known: max_bytes, max_age)"},
  };
  for (const Case& c : cases) {
    std::string config = tempPath("tcpfork.yaml");
    std::ofstream(config) << "listen: 127.0.0.1:0\nhandler:\n  module: " << journalModule() << "\n  config: " << c.config
                          << "\n";
    ToolRun run = runTool("tcpfork", {"-t", "-c", config}, 30s);
    EXPECT_NE(run.exitCode, 0) << c.config;
    EXPECT_NE(run.output.find(c.message), std::string::npos) << c.config << ":\n" << run.output;
  }
}

}  // namespace
}  // namespace tcpfork::test
