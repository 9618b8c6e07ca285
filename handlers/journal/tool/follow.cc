#include "handlers/journal/tool/follow.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <regex>
#include <system_error>
#include <vector>

#include "base/unique_fd.h"
#include "handlers/journal/segment_files.h"

namespace tcpfork::journal {

namespace {

// A segment read from an offset on: its header, and its bytes from there to
// the end as they were at the read.
struct SegmentRead {
  bool gone = false;  // deleted (or renamed away) before it could be opened
  std::string name;   // the name it was opened by (open, or sealed meanwhile)
  bool sealed = false;
  HeaderStatus headerStatus = HeaderStatus::kShort;
  SegmentHeader header;
  uint64_t size = 0;
  std::vector<std::byte> bytes;  // from the offset asked for
};

bool preadAll(int fd, std::byte* into, size_t bytes, uint64_t at, size_t& got) {
  got = 0;
  while (got < bytes) {
    ssize_t n = ::pread(fd, into + got, bytes - got, off_t(at + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;  // shorter than its fstat said: cut back since
    got += size_t(n);
  }
  return true;
}

// pread, not a mapping: a writer cuts a failed write back, and a mapping
// read past the new end would die of SIGBUS. Of a segment still open, bytes
// from `end` on are left out (a sealed one is read to its end).
SegmentRead readFrom(const std::string& dir, const std::string& name, uint64_t offset, uint64_t end) {
  SegmentRead read;
  read.name = name;
  UniqueFd fd(::open((dir + "/" + name).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd && errno == ENOENT && isOpenSegment(name)) {
    read.name = sealedName(name);  // sealed since the listing
    fd.reset(::open((dir + "/" + read.name).c_str(), O_RDONLY | O_CLOEXEC));
  }
  if (!fd) {
    if (errno != ENOENT) throw std::system_error(errno, std::generic_category(), dir + "/" + read.name);
    read.gone = true;
    return read;
  }
  read.sealed = !isOpenSegment(read.name);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw std::system_error(errno, std::generic_category(), dir + "/" + read.name);
  read.size = uint64_t(st.st_size);
  std::byte header[kHeaderBytes];
  size_t got = 0;
  if (!preadAll(fd.get(), header, kHeaderBytes, 0, got)) {
    throw std::system_error(errno, std::generic_category(), dir + "/" + read.name);
  }
  read.headerStatus = decodeHeader(std::span<const std::byte>(header, got), read.header);
  uint64_t readable = read.sealed ? read.size : std::min(read.size, end);
  if (read.headerStatus != HeaderStatus::kOk || offset >= readable) return read;
  read.bytes.resize(readable - offset);
  if (!preadAll(fd.get(), read.bytes.data(), read.bytes.size(), offset, got)) {
    throw std::system_error(errno, std::generic_category(), dir + "/" + read.name);
  }
  read.bytes.resize(got);
  return read;
}

// "w000-20261202T053000.123456Z-4242-000001.journal(.open)": the writer
// (everything before the sequence) and the sequence.
bool parseName(const std::string& name, std::string& writer, uint32_t& sequence) {
  static const std::regex kName(R"((w\d+-\d{8}T\d{6}\.\d{6}Z-\d+)-(\d+)\.journal(\.open)?)");
  std::smatch m;
  if (!std::regex_match(name, m, kName)) return false;
  writer = m[1].str();
  sequence = uint32_t(std::stoul(m[2].str()));
  return true;
}

}  // namespace

Follower::Follower(FollowOptions options, Positions positions, bool resumed, Print print, Warn warn)
    : options_(std::move(options)),
      resumed_(resumed),
      print_(std::move(print)),
      warn_(std::move(warn)),
      positions_(std::move(positions)) {}

void Follower::warnOnce(const std::string& key, const std::string& message) {
  if (warned_.insert(key).second) warn_(message);
}

std::optional<DurableMark> Follower::markOf(const std::string& writer) {
  if (auto known = marks_.find(writer); known != marks_.end()) return known->second;
  std::optional<DurableMark> mark;
  std::string path = options_.dir + "/" + durableMarkName(writer);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd && errno != ENOENT) throw std::system_error(errno, std::generic_category(), path);
  if (fd) {
    // A read can race the writer's rewrite and fail the CRC: read again. A
    // mark that stays bad (a crash's garbage, until recovery removes it)
    // reads as nothing synced.
    mark = DurableMark{};
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::byte bytes[kDurableMarkBytes];
      size_t got = 0;
      if (!preadAll(fd.get(), bytes, sizeof bytes, 0, got)) throw std::system_error(errno, std::generic_category(), path);
      if (decodeDurableMark(std::span<const std::byte>(bytes, got), *mark)) break;
      *mark = DurableMark{};
    }
  }
  marks_.emplace(writer, mark);
  return mark;
}

uint64_t Follower::readableEnd(const std::string& writer, uint32_t sequence) {
  std::optional<DurableMark> mark = markOf(writer);
  // No mark: a writer that never syncs (fsync: never), or one that has
  // sealed all it wrote; or recovery sealed a dead one's.
  if (!mark || sequence < mark->sequence) return UINT64_MAX;
  return sequence == mark->sequence ? mark->offset : 0;
}

uint64_t Follower::poll() {
  marks_.clear();
  std::map<std::string, Segments> writers;
  {
    DIR* listing = ::opendir(options_.dir.c_str());
    if (!listing) throw std::system_error(errno, std::generic_category(), options_.dir);
    while (dirent* entry = ::readdir(listing)) {
      std::string name = entry->d_name, writer;
      uint32_t sequence = 0;
      if (!parseName(name, writer, sequence)) continue;
      // Listed under both names while it was being sealed: the sealed one.
      std::string& known = writers[writer][sequence];
      if (known.empty() || isOpenSegment(known)) known = name;
    }
    ::closedir(listing);
  }
  uint64_t printed = 0;
  for (const auto& [writer, segments] : writers) {
    auto it = positions_.find(writer);
    if (it == positions_.end()) {
      WriterPosition at{segments.begin()->first, kHeaderBytes};
      if (firstPoll_ && !resumed_ && options_.start == FollowOptions::Start::kEnd) {
        // From the end of what its newest segment holds whole now.
        at.sequence = segments.rbegin()->first;
        SegmentRead read = readFrom(options_.dir, segments.rbegin()->second, kHeaderBytes,
                                    readableEnd(writer, at.sequence));
        if (read.headerStatus == HeaderStatus::kOk) {
          RecordScanner scanner(read.bytes, kHeaderBytes);
          while (scanner.next()) {
          }
          at.offset = scanner.end().offset;
        }
      }
      it = positions_.emplace(writer, at).first;
    }
    printed += follow(writer, segments, it->second);
  }
  // A writer whose every segment is gone has nothing more to give.
  std::erase_if(positions_, [&](const auto& entry) { return writers.count(entry.first) == 0; });
  firstPoll_ = false;
  return printed;
}

bool Follower::moveOn(const std::string& writer, const Segments& segments, WriterPosition& at, bool inTheMiddle) {
  auto next = segments.upper_bound(at.sequence);
  if (next == segments.end()) return false;
  if (inTheMiddle || next->first != at.sequence + 1) {
    warn_(writer + ": " +
          (inTheMiddle ? "segment " + std::to_string(at.sequence) + " was deleted before it was read to its end"
                       : "segments " + std::to_string(at.sequence + 1) + " to " + std::to_string(next->first - 1) +
                             " were deleted before they were read") +
          " (retention, or by hand): their records are skipped; going on with segment " + std::to_string(next->first));
  }
  at = {next->first, kHeaderBytes};
  return true;
}

uint64_t Follower::follow(const std::string& writer, const Segments& segments, WriterPosition& at) {
  uint64_t printed = 0;
  // At most every segment of the writer once per poll.
  for (size_t step = 0; step <= segments.size(); ++step) {
    auto it = segments.find(at.sequence);
    if (it == segments.end()) {
      // Before the first of its segments there are: deleted while we were away.
      if (!moveOn(writer, segments, at, at.offset > kHeaderBytes)) break;
      continue;
    }
    SegmentRead read = readFrom(options_.dir, it->second, std::max<uint64_t>(at.offset, kHeaderBytes),
                                readableEnd(writer, at.sequence));
    std::string path = options_.dir + "/" + read.name;
    if (read.gone) {
      if (!moveOn(writer, segments, at, true)) break;
      continue;
    }
    if (read.headerStatus != HeaderStatus::kOk) {
      warnOnce(path, path + ": " + describe(read.headerStatus) + "; its records are skipped");
      if (!moveOn(writer, segments, at, false)) break;
      continue;
    }
    at.offset = std::max<uint64_t>(at.offset, kHeaderBytes);
    if (at.offset > read.size) {
      warnOnce(path, path + ": shorter (" + std::to_string(read.size) + " bytes) than where reading stopped (" +
                         std::to_string(at.offset) + "); the rest of it is skipped");
      if (!moveOn(writer, segments, at, false)) break;
      continue;
    }
    SegmentScan segment;
    segment.path = path;
    segment.header = read.header;
    RecordScanner scanner(read.bytes, at.offset);
    while (auto record = scanner.next()) {
      at.offset = record->offset + kRecordPrefixBytes + kRecordFixedBytes + record->payload.size();
      if (record->receivedNs < options_.sinceNs) continue;
      print_(segment, *record);
      ++printed;
    }
    const ScanEnd& end = scanner.end();
    // An open segment: its writer writes on (a record read half copied
    // reads as cut short or even as damaged: read again next poll), or died
    // and the next worker's recovery will cut its torn tail and seal it.
    if (!read.sealed) break;
    if (end.stop == Stop::kTorn) {
      warnOnce(path, path + ": torn tail at offset " + std::to_string(end.offset) + " (" + end.why + "); skipped");
    } else if (end.stop == Stop::kCorrupt) {
      warnOnce(path, path + ": corrupt record at offset " + std::to_string(end.offset) + " (" + end.why +
                         "); the rest of the segment is skipped");
    }
    if (!moveOn(writer, segments, at, false)) break;
  }
  return printed;
}

}  // namespace tcpfork::journal
