// libFuzzer target: the journal's segment reader on arbitrary bytes, taken as
// a whole segment file. Invariants checked on every input:
//   - neither the header decoder nor the record scanner reads past the input
//     (ASan); a header that decodes encodes back to the same 32 bytes;
//   - records come back to back from the end of the header, in increasing
//     offset order, each (ID and payload) inside the input;
//   - reading stops at or before the end: at the end exactly when it says
//     kEnd, with a reason exactly when it does not;
//   - cut at where reading stopped (what recovery does to a torn tail), the
//     file reads as the same records and then a clean end.
// The input is read a second time after a valid header, so that the record
// scanner is reached even while the fuzzer has not learnt the header's CRC.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "handlers/journal/format.h"

using namespace tcpfork::journal;

namespace {

#define CHECK(condition)            \
  do {                              \
    if (!(condition)) std::abort(); \
  } while (0)

bool inside(std::span<const std::byte> part, std::span<const std::byte> whole) {
  return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

struct Read {
  size_t records = 0;
  ScanEnd end;
};

// Reads a segment whose header decoded, checking every record and the end.
Read readChecked(std::span<const std::byte> file) {
  RecordScanner scanner(file);
  Read read;
  uint64_t expected = kHeaderBytes;
  while (auto r = scanner.next()) {
    CHECK(r->offset == expected);
    CHECK(r->id.size() == kIdBytes && inside(r->id, file));
    CHECK(r->id.data() == file.data() + r->offset + kRecordPrefixBytes);
    CHECK(inside(r->payload, file));
    uint64_t end = r->offset + recordBytes(r->payload.size());
    CHECK(end <= file.size());
    CHECK(r->payload.data() + r->payload.size() == file.data() + end);
    expected = end;
    ++read.records;
  }
  CHECK(!scanner.next());
  read.end = scanner.end();
  CHECK(read.end.offset == expected);
  CHECK(read.end.offset <= file.size());
  CHECK((read.end.stop == Stop::kEnd) == (read.end.offset == file.size()));
  CHECK((read.end.stop == Stop::kEnd) == read.end.why.empty());
  return read;
}

void checkSegment(std::span<const std::byte> file) {
  SegmentHeader header;
  HeaderStatus status = decodeHeader(file, header);
  CHECK(status != HeaderStatus::kShort || file.size() < kHeaderBytes);
  if (status != HeaderStatus::kOk) return;
  CHECK(file.size() >= kHeaderBytes);
  auto again = encodeHeader(header);
  CHECK(std::memcmp(again.data(), file.data(), kHeaderBytes) == 0);

  Read read = readChecked(file);
  // What recovery keeps of a torn tail reads cleanly, as the same records.
  Read kept = readChecked(file.first(read.end.offset));
  CHECK(kept.records == read.records);
  CHECK(kept.end.stop == Stop::kEnd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto input = std::span(reinterpret_cast<const std::byte*>(data), size);
  checkSegment(input);

  static const auto kHeader = encodeHeader({1'796'189'400'123'456'789, 3, 7, 4242});
  std::vector<std::byte> segment(kHeader.begin(), kHeader.end());
  segment.insert(segment.end(), input.begin(), input.end());
  checkSegment(segment);
  return 0;
}
