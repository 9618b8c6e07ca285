// The journal's segment format (handlers/journal/format.h, segment_files.h):
// round trips, and how the scanner tells a torn tail from a corrupt record.
// Then the real tcpfork-journal on segment files written here.

#include <fcntl.h>
#include <sys/file.h>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "base/unique_fd.h"
#include "handlers/journal/crc32c.h"
#include "handlers/journal/format.h"
#include "handlers/journal/segment_files.h"
#include "test/integration/tool_run.h"

namespace tcpfork::journal {
namespace {

using test::runTool;
using test::tempPath;

const SegmentHeader kHeader{1'796'189'400'123'456'789, 3, 7, 4242};
constexpr uint64_t kTime = 1'700'000'000'123'456'789;  // 2023-11-14T22:13:20.123456789Z

struct TestRecord {
  std::string id;  // 8 bytes
  uint64_t receivedNs = 0;
  std::string payload;
  bool operator==(const TestRecord&) const = default;
};

// Printed by gtest when a comparison fails.
[[maybe_unused]] std::ostream& operator<<(std::ostream& os, const TestRecord& r) {
  return os << r.id << "@" << r.receivedNs << ":" << r.payload.size() << " bytes";
}

std::string allBytes() {
  std::string s;
  for (int c = 0; c < 256; ++c) s += char(c);
  return s;
}

const std::vector<TestRecord> kRecords = {
    {"id000001", kTime, "hello"},
    {"id000002", kTime + 1000, ""},
    {std::string("\x00\x01 \\\xfe\xffid", 8), kTime + 2000, allBytes()},
    {"id000004", kTime + 3000, "the last one"},
};

struct Segment {
  std::vector<std::byte> bytes;
  std::vector<uint64_t> offsets;  // of each record
};

Segment makeSegment(const std::vector<TestRecord>& records) {
  Segment s;
  auto header = encodeHeader(kHeader);
  s.bytes.assign(header.begin(), header.end());
  for (const auto& r : records) {
    s.offsets.push_back(s.bytes.size());
    appendRecord(s.bytes, r.id.data(), r.receivedNs, reinterpret_cast<const uint8_t*>(r.payload.data()),
                 r.payload.size());
  }
  return s;
}

std::string text(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

struct Scanned {
  std::vector<TestRecord> records;
  std::vector<uint64_t> offsets;
  ScanEnd end;
};

Scanned scan(std::span<const std::byte> file) {
  Scanned out;
  RecordScanner scanner(file);
  while (auto r = scanner.next()) {
    out.records.push_back({text(r->id), r->receivedNs, text(r->payload)});
    out.offsets.push_back(r->offset);
  }
  out.end = scanner.end();
  EXPECT_FALSE(scanner.next()) << "a record after the end";
  return out;
}

std::vector<TestRecord> firstRecords(size_t n) { return {kRecords.begin(), kRecords.begin() + long(n)}; }

TEST(Crc32c, MatchesTheCheckValueAndExtends) {
  EXPECT_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
  EXPECT_EQ(crc32c(0, "", 0), 0u);
}

TEST(SegmentHeader, RoundTrips) {
  auto bytes = encodeHeader(kHeader);
  ASSERT_EQ(bytes.size(), kHeaderBytes);
  EXPECT_EQ(text(std::span(bytes).first(8)), kMagic);
  SegmentHeader decoded;
  ASSERT_EQ(decodeHeader(bytes, decoded), HeaderStatus::kOk);
  EXPECT_EQ(decoded.createdNs, kHeader.createdNs);
  EXPECT_EQ(decoded.worker, kHeader.worker);
  EXPECT_EQ(decoded.generation, kHeader.generation);
  EXPECT_EQ(decoded.pid, kHeader.pid);
}

TEST(SegmentHeader, TellsShortFromNotAJournalFromCorrupt) {
  auto good = encodeHeader(kHeader);
  SegmentHeader h;
  for (size_t n = 0; n < kHeaderBytes; ++n) {
    EXPECT_EQ(decodeHeader(std::span(good).first(n), h), HeaderStatus::kShort) << n << " bytes";
  }
  // What an empty file maps to (a null pointer): no memcmp on it (make asan checks).
  EXPECT_EQ(decodeHeader(std::span<const std::byte>(), h), HeaderStatus::kShort);
  for (size_t at = 0; at < kHeaderBytes; ++at) {
    auto bad = good;
    bad[at] ^= std::byte{0x10};
    HeaderStatus expected = at < kMagic.size() ? HeaderStatus::kNotAJournal : HeaderStatus::kCorrupt;
    EXPECT_EQ(decodeHeader(bad, h), expected) << "byte " << at << " flipped";
  }
  std::string notOurs = "GIF89a, and more than thirty-two bytes of it";
  EXPECT_EQ(decodeHeader(std::as_bytes(std::span(notOurs)), h), HeaderStatus::kNotAJournal);
  EXPECT_EQ(decodeHeader(std::as_bytes(std::span(notOurs).first(4)), h), HeaderStatus::kNotAJournal);
  std::set<std::string> descriptions;
  for (auto s : {HeaderStatus::kOk, HeaderStatus::kShort, HeaderStatus::kNotAJournal, HeaderStatus::kCorrupt}) {
    descriptions.insert(describe(s));
  }
  EXPECT_EQ(descriptions.size(), 4u);
}

TEST(DurableMark, RoundTripsAndRefusesAFlippedByteOrAShortRead) {
  DurableMark mark{42, (uint64_t{1} << 40) + 7};
  auto bytes = encodeDurableMark(mark);
  DurableMark read;
  ASSERT_TRUE(decodeDurableMark(bytes, read));
  EXPECT_EQ(read, mark);
  EXPECT_FALSE(decodeDurableMark(std::span<const std::byte>(bytes).first(kDurableMarkBytes - 1), read));
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto flipped = bytes;
    flipped[i] ^= std::byte{0x10};
    EXPECT_FALSE(decodeDurableMark(flipped, read)) << "byte " << i;
  }
  EXPECT_EQ(durableMarkName(writerName(3, 0, 4242)), "w003-19700101T000000.000000Z-4242.durable");
  EXPECT_EQ(segmentName(3, 0, 4242, 1), "w003-19700101T000000.000000Z-4242-000001.journal.open");
  EXPECT_TRUE(isDurableMark("w003-19700101T000000.000000Z-4242.durable"));
  EXPECT_FALSE(isSegment("w003-19700101T000000.000000Z-4242.durable"));
}

TEST(RecordScanner, ReadsBackWhatWasAppended) {
  Segment s = makeSegment(kRecords);
  size_t expectedSize = kHeaderBytes;
  for (const auto& r : kRecords) expectedSize += recordBytes(r.payload.size());
  ASSERT_EQ(s.bytes.size(), expectedSize);
  Scanned got = scan(s.bytes);
  EXPECT_EQ(got.records, kRecords);
  EXPECT_EQ(got.offsets, s.offsets);
  EXPECT_EQ(got.end.stop, Stop::kEnd);
  EXPECT_EQ(got.end.offset, s.bytes.size());
  EXPECT_EQ(got.end.why, "");
}

// A reader going on from a record's offset (tcpfork-journal follow) gets
// what a scan of the whole file gives from there, with the file's offsets,
// and a record cut short at the end of what it read is torn, at its offset.
TEST(RecordScanner, FromAnOffsetReadsOnWithTheFilesOffsets) {
  Segment s = makeSegment(kRecords);
  for (size_t from = 0; from < s.offsets.size(); ++from) {
    uint64_t base = s.offsets[from];
    std::span<const std::byte> rest = std::span(s.bytes).subspan(base);
    RecordScanner scanner(rest, base);
    std::vector<uint64_t> offsets;
    while (auto r = scanner.next()) offsets.push_back(r->offset);
    EXPECT_EQ(offsets, std::vector<uint64_t>(s.offsets.begin() + long(from), s.offsets.end()));
    EXPECT_EQ(scanner.end().stop, Stop::kEnd);
    EXPECT_EQ(scanner.end().offset, s.bytes.size());
    RecordScanner cut(rest.first(rest.size() - 1), base);
    while (cut.next()) {
    }
    EXPECT_EQ(cut.end().stop, Stop::kTorn);
    EXPECT_EQ(cut.end().offset, s.offsets.back());
  }
}

TEST(RecordScanner, AHeaderAloneIsAnEmptySegment) {
  Segment s = makeSegment({});
  Scanned got = scan(s.bytes);
  EXPECT_TRUE(got.records.empty());
  EXPECT_EQ(got.end.stop, Stop::kEnd);
  EXPECT_EQ(got.end.offset, kHeaderBytes);
}

TEST(RecordScanner, ALastRecordCutAnywhereIsATornTail) {
  Segment s = makeSegment(kRecords);
  uint64_t last = s.offsets.back();
  for (size_t cut = last; cut < s.bytes.size(); ++cut) {
    Scanned got = scan(std::span(s.bytes).first(cut));
    EXPECT_EQ(got.records, firstRecords(kRecords.size() - 1)) << "cut at " << cut;
    EXPECT_EQ(got.end.offset, last) << "cut at " << cut;
    // Cut at its first byte, the record is simply not there yet.
    EXPECT_EQ(got.end.stop, cut == last ? Stop::kEnd : Stop::kTorn) << "cut at " << cut << ": " << got.end.why;
  }
}

TEST(RecordScanner, AZeroFilledTailIsTorn) {
  for (size_t zeros : {1, 11, 12, 100, 4096}) {
    Segment s = makeSegment(firstRecords(2));
    size_t good = s.bytes.size();
    s.bytes.resize(good + zeros);
    Scanned got = scan(s.bytes);
    EXPECT_EQ(got.records, firstRecords(2)) << zeros << " zeros";
    EXPECT_EQ(got.end.stop, Stop::kTorn) << zeros << " zeros";
    EXPECT_EQ(got.end.offset, good) << zeros << " zeros";
  }
}

TEST(RecordScanner, AnyFlippedByteOfAMiddleRecordIsCorrupt) {
  Segment s = makeSegment(kRecords);
  for (size_t middle = 1; middle + 1 < kRecords.size(); ++middle) {
    for (uint64_t at = s.offsets[middle]; at < s.offsets[middle + 1]; ++at) {
      auto bytes = s.bytes;
      bytes[at] ^= std::byte{0x01};
      Scanned got = scan(bytes);
      EXPECT_EQ(got.records, firstRecords(middle)) << "byte " << at;
      EXPECT_EQ(got.end.stop, Stop::kCorrupt) << "byte " << at << ": " << got.end.why;
      EXPECT_EQ(got.end.offset, s.offsets[middle]) << "byte " << at;
    }
  }
}

TEST(RecordScanner, AFlippedLengthIsCorruptEvenInTheLastRecord) {
  Segment s = makeSegment(kRecords);
  uint64_t last = s.offsets.back();
  // The length and its CRC: a damaged length must not pass for a cut tail.
  for (uint64_t at = last; at < last + 8; ++at) {
    for (auto bit : {std::byte{0x01}, std::byte{0x80}}) {
      auto bytes = s.bytes;
      bytes[at] ^= bit;
      Scanned got = scan(bytes);
      EXPECT_EQ(got.records, firstRecords(kRecords.size() - 1)) << "byte " << at;
      EXPECT_EQ(got.end.stop, Stop::kCorrupt) << "byte " << at << ": " << got.end.why;
      EXPECT_EQ(got.end.offset, last) << "byte " << at;
    }
  }
}

TEST(RecordScanner, AFlippedByteInTheLastRecordsBodyIsTorn) {
  Segment s = makeSegment(kRecords);
  uint64_t last = s.offsets.back();
  // The body's CRC and the body: an unfinished write looks just like this.
  for (uint64_t at = last + 8; at < s.bytes.size(); ++at) {
    auto bytes = s.bytes;
    bytes[at] ^= std::byte{0x40};
    Scanned got = scan(bytes);
    EXPECT_EQ(got.records, firstRecords(kRecords.size() - 1)) << "byte " << at;
    EXPECT_EQ(got.end.stop, Stop::kTorn) << "byte " << at << ": " << got.end.why;
    EXPECT_EQ(got.end.offset, last) << "byte " << at;
  }
}

// A record prefix with a length of our choosing and a CRC that matches it.
void appendPrefix(std::vector<std::byte>& out, uint32_t length) {
  std::byte prefix[kRecordPrefixBytes] = {};
  for (int i = 0; i < 4; ++i) prefix[i] = std::byte(length >> (8 * i));
  uint32_t crc = crc32c(0, prefix, 4);
  for (int i = 0; i < 4; ++i) prefix[4 + i] = std::byte(crc >> (8 * i));
  out.insert(out.end(), std::begin(prefix), std::end(prefix));
}

TEST(RecordScanner, ALengthShorterThanIdAndTimeIsCorrupt) {
  Segment s = makeSegment(firstRecords(1));
  size_t good = s.bytes.size();
  appendPrefix(s.bytes, kRecordFixedBytes - 1);
  s.bytes.resize(s.bytes.size() + 40, std::byte{0x55});
  Scanned got = scan(s.bytes);
  EXPECT_EQ(got.records, firstRecords(1));
  EXPECT_EQ(got.end.stop, Stop::kCorrupt);
  EXPECT_EQ(got.end.offset, good);
}

TEST(RecordScanner, AGoodLengthPastTheEndIsTorn) {
  Segment s = makeSegment(firstRecords(1));
  size_t good = s.bytes.size();
  appendPrefix(s.bytes, 1000);
  s.bytes.resize(s.bytes.size() + 40, std::byte{0x55});
  Scanned got = scan(s.bytes);
  EXPECT_EQ(got.end.stop, Stop::kTorn);
  EXPECT_EQ(got.end.offset, good);
}

TEST(SegmentFiles, NamesOpenAndSealedSegments) {
  std::string name = segmentName(0, kHeader.createdNs, 4242, 1);
  EXPECT_EQ(name, "w000-20261202T053000.123456Z-4242-000001.journal.open");
  EXPECT_TRUE(isOpenSegment(name));
  EXPECT_TRUE(isSegment(name));
  EXPECT_EQ(sealedName(name), "w000-20261202T053000.123456Z-4242-000001.journal");
  EXPECT_FALSE(isOpenSegment(sealedName(name)));
  EXPECT_TRUE(isSegment(sealedName(name)));
  EXPECT_EQ(sealedName("/var/lib/j/" + name), "/var/lib/j/w000-20261202T053000.123456Z-4242-000001.journal");
  for (const char* other : {"x.journal.tmp", "x.journa", "journal", ".journal", ".journal.open", "x.open"}) {
    EXPECT_FALSE(isSegment(other)) << other;
  }
  // Names sort by worker, then by time.
  EXPECT_LT(segmentName(0, kTime, 9, 2), segmentName(0, kHeader.createdNs, 1, 1));
  EXPECT_LT(segmentName(1, kHeader.createdNs, 1, 1), segmentName(12, kTime, 1, 1));
}

void writeFile(const std::string& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void writeFile(const std::string& path, const std::string& content) { writeFile(path, std::as_bytes(std::span(content))); }

TEST(SegmentFiles, FindsTheSegmentsOfADirectoryInNameOrder) {
  std::string dir = tempPath("segments");
  std::filesystem::create_directories(dir + "/w002.journal");  // a directory, not a segment
  for (const char* name : {"w001-b.journal", "w000-a.journal.open", "w000-a.journal", "notes.txt", "w003.journal.tmp"}) {
    writeFile(dir + "/" + name, "");
  }
  EXPECT_EQ(segmentsIn(dir), (std::vector<std::string>{dir + "/w000-a.journal", dir + "/w000-a.journal.open",
                                                        dir + "/w001-b.journal"}));
  // A file is itself, whatever its name.
  EXPECT_EQ(segmentsIn(dir + "/notes.txt"), std::vector<std::string>{dir + "/notes.txt"});
  EXPECT_THROW(segmentsIn(dir + "/missing"), std::system_error);
  std::filesystem::create_directories(dir + "/empty");
  EXPECT_TRUE(segmentsIn(dir + "/empty").empty());
}

// --- tcpfork-journal, the real binary ---

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The bytes a cat --json string stands for: one byte per code point (U+0000..U+00FF).
std::string latin1(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size(); ++i) {
    auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out += char(c);
    } else {
      EXPECT_TRUE((c & 0xfe) == 0xc2 && i + 1 < utf8.size()) << "a code point above U+00FF";
      out += char(((c & 0x03) << 6) | (static_cast<unsigned char>(utf8[++i]) & 0x3f));
    }
  }
  return out;
}

class JournalTool : public ::testing::Test {
 protected:
  std::string write(const std::string& name, std::span<const std::byte> bytes) {
    std::string path = dir_ + "/" + name;
    writeFile(path, bytes);
    return path;
  }

  std::string dir_ = [] {
    std::string dir = tempPath("journal");
    std::filesystem::create_directories(dir);
    return dir;
  }();
};

TEST_F(JournalTool, CatJsonGivesEveryRecordLosslessly) {
  Segment s = makeSegment(kRecords);
  std::string path = write("w003-a.journal", s.bytes);
  auto run = runTool("tcpfork-journal", {"cat", "--json", path});
  ASSERT_EQ(run.exitCode, 0) << run.output;
  auto got = lines(run.output);
  ASSERT_EQ(got.size(), kRecords.size()) << run.output;
  for (size_t i = 0; i < got.size(); ++i) {
    auto j = nlohmann::json::parse(got[i]);
    EXPECT_EQ(latin1(j.at("id").get<std::string>()), kRecords[i].id) << got[i];
    EXPECT_EQ(latin1(j.at("payload").get<std::string>()), kRecords[i].payload) << got[i];
    EXPECT_EQ(j.at("time_ns"), kRecords[i].receivedNs);
    EXPECT_EQ(j.at("worker"), kHeader.worker);
    EXPECT_EQ(j.at("generation"), kHeader.generation);
    EXPECT_EQ(j.at("pid"), kHeader.pid);
    EXPECT_EQ(j.at("file"), path);
    EXPECT_EQ(j.at("offset"), s.offsets[i]);
  }
  // An ASCII ID reads as itself.
  EXPECT_EQ(nlohmann::json::parse(got[0]).at("id"), "id000001");
  EXPECT_EQ(nlohmann::json::parse(got[0]).at("time"), "2023-11-14T22:13:20.123456Z");
}

TEST_F(JournalTool, CatPrintsALineOfTextPerRecord) {
  std::string path = write("w003-a.journal", makeSegment(kRecords).bytes);
  auto run = runTool("tcpfork-journal", {"cat", dir_});
  ASSERT_EQ(run.exitCode, 0) << run.output;
  auto got = lines(run.output);
  ASSERT_EQ(got.size(), 4u) << run.output;
  EXPECT_EQ(got[0], "2023-11-14T22:13:20.123456Z w3 id000001 hello");
  EXPECT_EQ(got[1], "2023-11-14T22:13:20.123457Z w3 id000002 ");
  // Printable ASCII as itself; a backslash and every other byte as \xNN.
  std::string payload;
  for (int c = 0; c < 256; ++c) {
    bool plain = c >= 0x20 && c <= 0x7e && c != '\\';
    payload += plain ? std::string(1, char(c)) : fmt::format("\\x{:02x}", c);
  }
  EXPECT_NE(payload.find("XYZ[\\x5c]^_`abc"), std::string::npos);
  // The ID's space is escaped too, so that the first fields split on spaces.
  EXPECT_EQ(got[2], "2023-11-14T22:13:20.123458Z w3 \\x00\\x01\\x20\\x5c\\xfe\\xffid " + payload);
  EXPECT_EQ(got[3], "2023-11-14T22:13:20.123459Z w3 id000004 the last one");
}

TEST_F(JournalTool, CatWarnsOfATornTailAndGoesOnToTheNextFile) {
  Segment s = makeSegment(kRecords);
  s.bytes.resize(s.bytes.size() - 3);
  std::string torn = write("w000-a.journal", s.bytes);
  write("w001-a.journal", makeSegment(firstRecords(1)).bytes);
  auto run = runTool("tcpfork-journal", {"cat", dir_});
  EXPECT_EQ(run.exitCode, 1) << run.output;
  auto got = lines(run.output);
  ASSERT_EQ(got.size(), 5u) << run.output;
  EXPECT_EQ(got[3], "tcpfork-journal: " + torn + ": torn tail at offset " + std::to_string(s.offsets.back()) + " (" +
                        std::to_string(s.bytes.size() - s.offsets.back()) + " bytes): a record cut short");
  EXPECT_EQ(got[4], "2023-11-14T22:13:20.123456Z w3 id000001 hello");
}

TEST_F(JournalTool, CatRefusesWhatIsNoSegment) {
  std::string path = dir_ + "/notes.txt";
  writeFile(path, "these are not the records you are looking for\n");
  auto run = runTool("tcpfork-journal", {"cat", path});
  EXPECT_EQ(run.exitCode, 2) << run.output;
  EXPECT_NE(run.output.find(path + ": not a journal segment"), std::string::npos) << run.output;
  run = runTool("tcpfork-journal", {"cat", dir_ + "/missing"});
  EXPECT_EQ(run.exitCode, 2) << run.output;
  EXPECT_NE(run.output.find(dir_ + "/missing: No such file or directory"), std::string::npos) << run.output;
}

TEST_F(JournalTool, VerifyPassesGoodFiles) {
  Segment s = makeSegment(kRecords);
  std::string a = write("w000-a.journal", s.bytes);
  std::string b = write("w001-a.journal.open", makeSegment({}).bytes);
  auto run = runTool("tcpfork-journal", {"verify", dir_});
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_EQ(lines(run.output), (std::vector<std::string>{
                                   a + ": 4 records, " + std::to_string(s.bytes.size()) + " bytes: ok",
                                   b + ": 0 records, 32 bytes: ok",
                                   "2 files, 4 records, 0 problems",
                               }));
}

TEST_F(JournalTool, VerifyNamesTheOffsetOfACorruptRecord) {
  Segment s = makeSegment(kRecords);
  s.bytes[s.offsets[1] + kRecordPrefixBytes + 3] ^= std::byte{0x04};
  std::string path = write("w000-a.journal", s.bytes);
  auto run = runTool("tcpfork-journal", {"verify", path});
  EXPECT_EQ(run.exitCode, 1) << run.output;
  EXPECT_EQ(lines(run.output).at(0),
            path + ": 1 good record, then corrupt record at offset " + std::to_string(s.offsets[1]) + " (" +
                std::to_string(s.bytes.size() - s.offsets[1]) + " bytes after it unchecked): a record fails its CRC");
  EXPECT_EQ(lines(run.output).at(1), "1 file, 1 record, 1 problem");
}

TEST_F(JournalTool, VerifyFailsATornSealedFile) {
  Segment s = makeSegment(kRecords);
  s.bytes.resize(s.offsets.back() + 5);
  std::string path = write("w000-a.journal", s.bytes);
  auto run = runTool("tcpfork-journal", {"verify", path});
  EXPECT_EQ(run.exitCode, 1) << run.output;
  EXPECT_NE(run.output.find(path + ": 3 good records, then torn tail at offset " + std::to_string(s.offsets.back()) +
                            " (5 bytes): a record prefix cut short"),
            std::string::npos)
      << run.output;
}

TEST_F(JournalTool, VerifyPassesATornOpenFileItsWriterHolds) {
  Segment s = makeSegment(kRecords);
  s.bytes.resize(s.bytes.size() - 1);
  std::string path = write("w000-a.journal.open", s.bytes);
  {
    UniqueFd writer(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(writer);
    ASSERT_EQ(::flock(writer.get(), LOCK_EX | LOCK_NB), 0);
    auto run = runTool("tcpfork-journal", {"verify", path});
    EXPECT_EQ(run.exitCode, 0) << run.output;
    EXPECT_NE(run.output.find(path + ": 3 good records, then torn tail at offset " +
                              std::to_string(s.offsets.back()) + " (" +
                              std::to_string(s.bytes.size() - s.offsets.back()) + " bytes): still being written"),
              std::string::npos)
        << run.output;
    EXPECT_NE(run.output.find("1 file, 3 records, 0 problems, 1 still being written"), std::string::npos)
        << run.output;
    // A corrupt record is damage whoever holds the file.
    auto corrupt = s.bytes;
    corrupt[s.offsets[1] + kRecordPrefixBytes] ^= std::byte{0x01};
    writeFile(path, corrupt);
    run = runTool("tcpfork-journal", {"verify", path});
    EXPECT_EQ(run.exitCode, 1) << run.output;
    writeFile(path, s.bytes);
  }
  // Its writer gone, the same file is torn.
  auto run = runTool("tcpfork-journal", {"verify", path});
  EXPECT_EQ(run.exitCode, 1) << run.output;
  EXPECT_EQ(run.output.find("still being written"), std::string::npos) << run.output;
}

TEST_F(JournalTool, VerifyTellsAnEmptyOpenSegmentBeingWrittenFromALeftover) {
  std::string path = write("w000-a.journal.open", {});
  {
    UniqueFd writer(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_EQ(::flock(writer.get(), LOCK_EX | LOCK_NB), 0);
    auto run = runTool("tcpfork-journal", {"verify", path});
    EXPECT_EQ(run.exitCode, 0) << run.output;
    EXPECT_NE(run.output.find(path + ": still being written: the header is cut short (0 bytes)"), std::string::npos)
        << run.output;
  }
  auto run = runTool("tcpfork-journal", {"verify", path});
  EXPECT_EQ(run.exitCode, 1) << run.output;
  EXPECT_NE(run.output.find(path + ": bad header: the header is cut short (0 bytes)"), std::string::npos)
      << run.output;
}

TEST_F(JournalTool, ReportsBadHeadersAndUsage) {
  auto header = encodeHeader(kHeader);
  header[20] ^= std::byte{0x01};
  std::string path = write("w000-a.journal", header);
  auto run = runTool("tcpfork-journal", {"verify", path});
  EXPECT_EQ(run.exitCode, 1) << run.output;
  EXPECT_NE(run.output.find(path + ": bad header: the segment header fails its CRC"), std::string::npos)
      << run.output;
  EXPECT_EQ(runTool("tcpfork-journal", {}).exitCode, 2);
  EXPECT_EQ(runTool("tcpfork-journal", {"verify"}).exitCode, 2);
  EXPECT_EQ(runTool("tcpfork-journal", {"cat", "--jsn", path}).exitCode, 2);
  run = runTool("tcpfork-journal", {"--version"});
  EXPECT_EQ(run.exitCode, 0);
  EXPECT_TRUE(run.output.starts_with("tcpfork-journal ")) << run.output;
}

}  // namespace
}  // namespace tcpfork::journal
