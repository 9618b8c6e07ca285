#pragma once
// The journal's file format, one place for its writer (the module), its
// readers (tcpfork-journal, recovery at start) and its fuzz target.
//
// A segment file is a header and then records, back to back, little-endian:
//
//   header (32 bytes): magic "TFJRNL01", u64 created (Unix ns), u32 worker
//                      index, u32 generation, u32 pid, u32 CRC32C of bytes 0..27
//   record:            u32 body length, u32 CRC32C of that length field,
//                      u32 CRC32C of the body, body = ID (8 bytes),
//                      u64 receive time (Unix ns), payload
//
// The length has a checksum of its own so that a damaged length reads as a
// corrupt record, never as a record cut short: recovery truncates only a cut
// tail, and a flipped length bit must not make it throw good records away.
//
// A writer that syncs (fsync: always or interval) keeps a durable mark beside
// its segments: how far its records are known to be on disk, rewritten in
// place after each fdatasync that succeeded. tcpfork-journal follow reads no
// further in an open segment. 16 bytes, little-endian:
//
//   durable mark:      u64 offset, u32 segment sequence, u32 CRC32C of bytes 0..11
//
// Sequence 0 (offset 0): nothing synced yet. Every byte of the segments
// before `sequence`, and of segment `sequence` up to `offset`, was synced.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tcpfork::journal {

inline constexpr std::string_view kMagic = "TFJRNL01";
inline constexpr size_t kHeaderBytes = 32;
inline constexpr size_t kRecordPrefixBytes = 12;  // length, its CRC, the body's CRC
inline constexpr size_t kRecordFixedBytes = 16;   // ID and receive time: the body's least
inline constexpr size_t kIdBytes = 8;

struct SegmentHeader {
  uint64_t createdNs = 0;
  uint32_t worker = 0;
  uint32_t generation = 0;
  uint32_t pid = 0;
};

std::array<std::byte, kHeaderBytes> encodeHeader(const SegmentHeader& header);

enum class HeaderStatus { kOk, kShort, kNotAJournal, kCorrupt };
HeaderStatus decodeHeader(std::span<const std::byte> file, SegmentHeader& header);
const char* describe(HeaderStatus status);

inline constexpr size_t kDurableMarkBytes = 16;

struct DurableMark {
  uint32_t sequence = 0;
  uint64_t offset = 0;
  bool operator==(const DurableMark&) const = default;
};

std::array<std::byte, kDurableMarkBytes> encodeDurableMark(const DurableMark& mark);
// False when `bytes` is short or fails its CRC (a read that raced a rewrite).
bool decodeDurableMark(std::span<const std::byte> bytes, DurableMark& mark);

// Bytes a record of `payloadBytes` takes in a segment.
constexpr size_t recordBytes(size_t payloadBytes) { return kRecordPrefixBytes + kRecordFixedBytes + payloadBytes; }

// Appends one record to `out`.
void appendRecord(std::vector<std::byte>& out, const char* id, uint64_t receivedNs, const uint8_t* payload,
                  size_t payloadBytes);

struct Record {
  uint64_t offset = 0;  // of its first byte in the segment
  std::span<const std::byte> id;
  uint64_t receivedNs = 0;
  std::span<const std::byte> payload;
};

// Where and why reading stopped.
enum class Stop {
  kEnd,      // every byte was a good record
  kTorn,     // the last record was cut short (its writer died mid-write): what recovery truncates
  kCorrupt,  // a record that is damaged, with bytes after it: never truncated
};

struct ScanEnd {
  Stop stop = Stop::kEnd;
  uint64_t offset = 0;  // first byte not read as a good record
  std::string why;      // empty at kEnd
};

// Reads the records of a whole segment (header included) in order. next()
// gives records until it returns nullopt; end() then says why.
class RecordScanner {
 public:
  // `file` is the segment from its first byte; the header must have decoded.
  explicit RecordScanner(std::span<const std::byte> file);
  // `bytes` are the segment's from offset `base` on, where a record starts
  // (a reader going on from where it stopped); offsets are the file's.
  RecordScanner(std::span<const std::byte> bytes, uint64_t base);
  std::optional<Record> next();
  const ScanEnd& end() const { return end_; }

 private:
  std::optional<Record> stop(Stop stop, std::string why);

  std::span<const std::byte> file_;
  uint64_t base_ = 0;  // the file offset of file_[0]
  uint64_t offset_;    // into file_
  ScanEnd end_;
  bool done_ = false;
};

// A file mapped read-only, whole (an empty file maps to an empty span).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws std::system_error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(data_), size_}; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tcpfork::journal
