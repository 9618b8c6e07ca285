// The journal's retention in real workers: sealed segments are deleted,
// oldest first, across every worker's files, so that a directory written
// with far more than its bound stays within it (plus what the workers are
// still writing); an open segment is never deleted; what was deleted is
// counted; a bound that cannot be kept is said once.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "handlers/journal/format.h"
#include "handlers/journal/segment_files.h"
#include "test/integration/journal_fixture.h"
#include "test/integration/running_master.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

namespace fs = std::filesystem;

struct DirectorySize {
  uint64_t bytes = 0;  // every segment, open or sealed
  size_t segments = 0;
};

DirectorySize segmentBytes(const std::string& dir) {
  DirectorySize size;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!journal::isSegment(it->path().filename().string())) continue;
    struct stat st {};
    // Sealed (renamed) or deleted since the listing: not counted twice.
    if (::stat(it->path().c_str(), &st) != 0) continue;
    size.bytes += uint64_t(st.st_size);
    ++size.segments;
  }
  return size;
}

TEST(JournalRetention, TwentyMegabytesWrittenStayWithinATwoMebibyteBound) {
  constexpr uint64_t kMaxBytes = 2 << 20;
  constexpr uint64_t kSegmentBytes = 256 << 10;
  constexpr unsigned kWorkers = 2;
  constexpr uint64_t kWritten = 20'000'000;
  std::string dir = tempPath("journal");
  RunningMaster master(kWorkers, journalYaml(dir, "segment_bytes: 256KiB, retention: {max_bytes: 2MiB}"));
  ASSERT_TRUE(master.waitForLog("journal in " + dir, 10s, kWorkers)) << master.log();
  // Both workers write: a new connection each time until each has a segment.
  uint64_t id = 90'000'000;  // apart from the load's IDs
  ASSERT_TRUE(waitUntil([&] { return master.roundTrip(id++) && filesIn(dir, journal::kOpenSuffix).size() == kWorkers; },
                        20s))
      << master.log();

  // The directory, sampled all along.
  std::atomic<bool> sampling{true};
  uint64_t largest = 0;
  size_t samples = 0;
  std::thread sampler([&] {
    for (int i = 0; sampling && i < 30'000; ++i) {
      largest = std::max(largest, segmentBytes(dir).bytes);
      ++samples;
      std::this_thread::sleep_for(5ms);  // the sampling period, bounded by i
    }
  });
  JournalLoad load(master.port(), 8, 32, 1000);
  bool written = waitUntil([&] { return master.metric("tcp_server_handler_journal_bytes_total") >= double(kWritten); },
                           90s);
  load.stop();
  sampling = false;
  sampler.join();
  ASSERT_TRUE(written) << master.metric("tcp_server_handler_journal_bytes_total") << "\n" << master.log();
  EXPECT_EQ(load.notStored(), 0u);
  EXPECT_EQ(load.wrongAcks(), 0);
  // An open segment deleted would have been found without its name.
  EXPECT_EQ(master.metric("tcp_server_handler_journal_errors_total"), 0) << master.log();

  const uint64_t bound = kMaxBytes + kWorkers * kSegmentBytes;
  EXPECT_LE(largest, bound) << "the directory held " << largest << " bytes";
  // The counters say what went: with what is left, every byte written.
  ASSERT_TRUE(waitUntil([&] { return master.metric("tcp_server_handler_journal_segments_deleted_total") > 0; }, 5s))
      << master.scrape();
  double recordBytes = master.metric("tcp_server_handler_journal_bytes_total");
  double deletedBytes = master.metric("tcp_server_handler_journal_bytes_deleted_total");
  double deletedSegments = master.metric("tcp_server_handler_journal_segments_deleted_total");
  master.process().signal(SIGQUIT);
  ASSERT_TRUE(master.process().waitExit(30s).has_value()) << master.log();
  DirectorySize left = segmentBytes(dir);
  EXPECT_LE(left.bytes, bound);
  EXPECT_EQ(deletedBytes + double(left.bytes),
            recordBytes + double(journal::kHeaderBytes) * (deletedSegments + double(left.segments)));

  // Oldest first: each worker keeps its newest segments, an unbroken run.
  std::map<std::string, std::vector<int>> sequences;  // by writer (index, start, pid)
  std::regex name(R"((w\d+-[0-9T.]+Z-\d+)-(\d+)\.journal)");
  for (const auto& file : filesIn(dir, journal::kSealedSuffix)) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(file, m, name)) << file;
    sequences[m[1].str()].push_back(std::stoi(m[2].str()));
  }
  for (auto& [writer, seqs] : sequences) {
    std::sort(seqs.begin(), seqs.end());
    EXPECT_EQ(seqs.back() - seqs.front() + 1, int(seqs.size())) << writer << ": a newer segment went first";
  }
  ToolRun verify = runTool("tcpfork-journal", {"verify", dir}, 60s);
  EXPECT_EQ(verify.exitCode, 0) << verify.output.substr(0, 2000);
  std::cout << "journal retention: " << recordBytes / 1e6 << " MB of records written by " << kWorkers
            << " workers, " << deletedSegments << " segments (" << deletedBytes / 1e6
            << " MB) deleted; the directory held at most " << largest << " bytes in " << samples
            << " samples (bound " << kMaxBytes << " + " << kWorkers << " x " << kSegmentBytes << " = " << bound
            << "), " << left.bytes << " at the end in " << left.segments << " segments\n";
}

TEST(JournalRetention, SegmentsPastMaxAgeGoAndOpenOnesStay) {
  std::string dir = tempPath("journal");
  RunningMaster master(1, journalYaml(dir, "fsync: never, segment_bytes: 64KiB, retention: {max_age: 1s}"));
  TestConnection conn(master.port(), 10s);
  uint64_t n = 0;
  auto burst = [&] {
    std::vector<std::byte> frames, expected;
    for (int i = 0; i < 100; ++i, ++n) {
      frames = concat(std::move(frames), submitFrame(n, std::string(1000, 'x')));
      expected = concat(std::move(expected), submitAckFrame(n));
    }
    conn.send(frames);
    return conn.read(expected.size()) == expected;
  };
  ASSERT_TRUE(burst());  // 100 KB: a sealed segment and an open one
  ASSERT_GE(filesIn(dir, journal::kSealedSuffix).size(), 1u);
  // A request now and then makes the worker's passes; past the age, the
  // sealed segment goes.
  EXPECT_TRUE(waitUntil(
      [&] {
        conn.send(submitFrame(n));
        if (conn.read(kAckBytes) != submitAckFrame(n)) return false;
        ++n;
        return filesIn(dir, journal::kSealedSuffix).empty();
      },
      20s))
      << master.log();
  EXPECT_EQ(filesIn(dir, journal::kOpenSuffix).size(), 1u) << "the open segment stays, however old";
  EXPECT_GE(master.metric("tcp_server_handler_journal_segments_deleted_total"), 1) << master.scrape();
}

TEST(JournalRetention, ABoundOpenSegmentsAloneExceedIsSaidOnce) {
  std::string dir = tempPath("journal");
  RunningMaster master(1, journalYaml(dir, "fsync: never, segment_bytes: 256KiB, retention: {max_bytes: 64KiB}"));
  TestConnection conn(master.port(), 10s);
  for (uint64_t start = 0; start < 600; start += 100) {
    std::vector<std::byte> frames, expected;
    for (uint64_t n = start; n < start + 100; ++n) {
      frames = concat(std::move(frames), submitFrame(n, std::string(1000, 'x')));
      expected = concat(std::move(expected), submitAckFrame(n));
    }
    conn.send(frames);
    ASSERT_EQ(conn.read(expected.size()), expected);
  }
  EXPECT_TRUE(master.waitForLog("over max_bytes 64 KiB", 10s)) << master.log();
  EXPECT_EQ(count(master.log(), "over max_bytes"), 1u) << master.log();
}

}  // namespace
}  // namespace tcpfork::test
