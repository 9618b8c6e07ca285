#pragma once
// tcpfork-journal's reading of one segment file: its header, its good records
// in file order, and where and why reading stopped, judged as cat and verify
// report it. Runs in the tool's one thread.

#include <cstdint>
#include <functional>
#include <string>

#include "handlers/journal/format.h"

namespace tcpfork::journal {

struct SegmentScan {
  enum class Verdict {
    kOk,            // a good header and nothing but good records
    kBeingWritten,  // an open segment cut short while its writer holds it: no damage
    kProblem,       // a bad header, a corrupt record, or a torn tail no live writer explains
    kNotASegment,   // no journal magic: the wrong file
  };

  std::string path;
  uint64_t size = 0;  // bytes when it was read
  HeaderStatus headerStatus = HeaderStatus::kOk;
  SegmentHeader header;  // when headerStatus is kOk
  uint64_t records = 0;  // good records
  ScanEnd end;           // when headerStatus is kOk
  bool writerHolds = false;  // checked only for an open segment cut short

  Verdict verdict() const;
};

using RecordSink = std::function<void(const SegmentScan& scan, const Record& record)>;

// Maps `path` and gives each good record to `sink` in file order (its bytes
// live only during the call). Throws std::system_error naming the path when
// the file cannot be read.
SegmentScan scanSegment(const std::string& path, const RecordSink& sink);

// True when a live writer holds the flock of the open segment `path` (see
// scan.cc for how a reader tells).
bool writerHoldsLock(const std::string& path);

}  // namespace tcpfork::journal
