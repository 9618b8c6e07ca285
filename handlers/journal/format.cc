#include "handlers/journal/format.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <system_error>

#include "base/unique_fd.h"
#include "handlers/journal/crc32c.h"

namespace tcpfork::journal {

namespace {

void put32(std::byte* at, uint32_t v) {
  for (int i = 0; i < 4; ++i) at[i] = std::byte(v >> (8 * i));
}

void put64(std::byte* at, uint64_t v) {
  for (int i = 0; i < 8; ++i) at[i] = std::byte(v >> (8 * i));
}

uint32_t get32(const std::byte* at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(at[i]) << (8 * i);
  return v;
}

uint64_t get64(const std::byte* at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(at[i]) << (8 * i);
  return v;
}

bool allZero(std::span<const std::byte> bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; });
}

}  // namespace

std::array<std::byte, kHeaderBytes> encodeHeader(const SegmentHeader& header) {
  std::array<std::byte, kHeaderBytes> out{};
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  put64(&out[8], header.createdNs);
  put32(&out[16], header.worker);
  put32(&out[20], header.generation);
  put32(&out[24], header.pid);
  put32(&out[28], crc32c(0, out.data(), 28));
  return out;
}

HeaderStatus decodeHeader(std::span<const std::byte> file, SegmentHeader& header) {
  if (file.size() < kHeaderBytes) {
    // A file cut inside its header: what a writer that died at creation leaves.
    // An empty file maps to a null pointer, which memcmp must not be given
    // even to compare nothing.
    size_t compared = std::min(file.size(), kMagic.size());
    bool magic = compared == 0 || std::memcmp(file.data(), kMagic.data(), compared) == 0;
    return magic ? HeaderStatus::kShort : HeaderStatus::kNotAJournal;
  }
  if (std::memcmp(file.data(), kMagic.data(), kMagic.size()) != 0) return HeaderStatus::kNotAJournal;
  if (get32(&file[28]) != crc32c(0, file.data(), 28)) return HeaderStatus::kCorrupt;
  header.createdNs = get64(&file[8]);
  header.worker = get32(&file[16]);
  header.generation = get32(&file[20]);
  header.pid = get32(&file[24]);
  return HeaderStatus::kOk;
}

const char* describe(HeaderStatus status) {
  switch (status) {
    case HeaderStatus::kOk:
      return "ok";
    case HeaderStatus::kShort:
      return "the header is cut short";
    case HeaderStatus::kNotAJournal:
      return "not a journal segment (no TFJRNL01 magic)";
    case HeaderStatus::kCorrupt:
      return "the segment header fails its CRC";
  }
  return "?";
}

std::array<std::byte, kDurableMarkBytes> encodeDurableMark(const DurableMark& mark) {
  std::array<std::byte, kDurableMarkBytes> out{};
  put64(&out[0], mark.offset);
  put32(&out[8], mark.sequence);
  put32(&out[12], crc32c(0, out.data(), 12));
  return out;
}

bool decodeDurableMark(std::span<const std::byte> bytes, DurableMark& mark) {
  if (bytes.size() < kDurableMarkBytes || get32(&bytes[12]) != crc32c(0, bytes.data(), 12)) return false;
  mark.offset = get64(&bytes[0]);
  mark.sequence = get32(&bytes[8]);
  return true;
}

void appendRecord(std::vector<std::byte>& out, const char* id, uint64_t receivedNs, const uint8_t* payload,
                  size_t payloadBytes) {
  size_t at = out.size();
  out.resize(at + recordBytes(payloadBytes));
  std::byte* p = out.data() + at;
  put32(p, uint32_t(kRecordFixedBytes + payloadBytes));
  put32(p + 4, crc32c(0, p, 4));
  std::byte* body = p + kRecordPrefixBytes;
  std::memcpy(body, id, kIdBytes);
  put64(body + kIdBytes, receivedNs);
  if (payloadBytes > 0) std::memcpy(body + kRecordFixedBytes, payload, payloadBytes);
  put32(p + 8, crc32c(0, body, kRecordFixedBytes + payloadBytes));
}

RecordScanner::RecordScanner(std::span<const std::byte> file) : file_(file), offset_(kHeaderBytes) {}

RecordScanner::RecordScanner(std::span<const std::byte> bytes, uint64_t base) : file_(bytes), base_(base), offset_(0) {}

std::optional<Record> RecordScanner::stop(Stop stop, std::string why) {
  done_ = true;
  end_ = {stop, base_ + offset_, std::move(why)};
  return std::nullopt;
}

std::optional<Record> RecordScanner::next() {
  if (done_) return std::nullopt;
  if (offset_ >= file_.size()) return stop(Stop::kEnd, "");
  std::span<const std::byte> rest = file_.subspan(offset_);
  // Zeros to the end are a tail the file system extended but never wrote.
  if (allZero(rest)) return stop(Stop::kTorn, "zero bytes where a record should start");
  if (rest.size() < kRecordPrefixBytes) return stop(Stop::kTorn, "a record prefix cut short");
  uint32_t length = get32(rest.data());
  if (get32(&rest[4]) != crc32c(0, rest.data(), 4)) return stop(Stop::kCorrupt, "the length fails its CRC");
  if (length < kRecordFixedBytes) return stop(Stop::kCorrupt, "a length shorter than ID and time");
  if (rest.size() - kRecordPrefixBytes < length) return stop(Stop::kTorn, "a record cut short");
  std::span<const std::byte> body = rest.subspan(kRecordPrefixBytes, length);
  if (get32(&rest[8]) != crc32c(0, body.data(), body.size())) {
    // A bad body that ends the file is a write the writer did not finish;
    // one with records after it was damaged after it was written.
    bool last = kRecordPrefixBytes + length == rest.size();
    return stop(last ? Stop::kTorn : Stop::kCorrupt, last ? "the last record fails its CRC" : "a record fails its CRC");
  }
  Record record{base_ + offset_, body.first(kIdBytes), get64(&body[kIdBytes]), body.subspan(kRecordFixedBytes)};
  offset_ += kRecordPrefixBytes + length;
  return record;
}

MappedFile::MappedFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));  // closed on return: the mapping outlives it
  if (!fd) throw std::system_error(errno, std::generic_category(), path);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) throw std::system_error(errno, std::generic_category(), path + ": fstat");
  size_ = size_t(st.st_size);
  if (size_ == 0) return;
  void* data = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (data == MAP_FAILED) throw std::system_error(errno, std::generic_category(), path + ": mmap");
  data_ = data;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

}  // namespace tcpfork::journal
