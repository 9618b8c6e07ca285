#include "handlers/journal/tool/print.h"

#include <time.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tcpfork::journal {

std::string escapeBytes(std::span<const std::byte> bytes, bool escapeSpace) {
  std::string out;
  out.reserve(bytes.size());
  for (std::byte b : bytes) {
    auto c = static_cast<unsigned char>(b);
    if (c < 0x20 || c > 0x7e || c == '\\' || (escapeSpace && c == ' ')) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += char(c);
    }
  }
  return out;
}

std::string latin1ToUtf8(std::span<const std::byte> bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::byte b : bytes) {
    auto c = static_cast<unsigned char>(b);
    if (c < 0x80) {
      out += char(c);
    } else {
      out += char(0xc0 | (c >> 6));
      out += char(0x80 | (c & 0x3f));
    }
  }
  return out;
}

std::string rfc3339(uint64_t unixNs) {
  time_t seconds = time_t(unixNs / 1'000'000'000);
  struct tm utc{};
  ::gmtime_r(&seconds, &utc);
  char stamp[64];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:06}Z", stamp, unixNs / 1000 % 1'000'000);
}

std::string recordText(const SegmentScan& scan, const Record& record) {
  return fmt::format("{} w{} {} {}", rfc3339(record.receivedNs), scan.header.worker, escapeBytes(record.id, true),
                     escapeBytes(record.payload, false));
}

std::string recordJson(const SegmentScan& scan, const Record& record) {
  nlohmann::ordered_json j;
  j["id"] = latin1ToUtf8(record.id);
  j["worker"] = scan.header.worker;
  j["generation"] = scan.header.generation;
  j["pid"] = scan.header.pid;
  j["time"] = rfc3339(record.receivedNs);
  j["time_ns"] = record.receivedNs;
  j["payload"] = latin1ToUtf8(record.payload);
  j["file"] = scan.path;
  j["offset"] = record.offset;
  // Only a path can be invalid UTF-8 here; it is not worth failing over.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string describeStop(const SegmentScan& scan) {
  bool beingWritten = scan.verdict() == SegmentScan::Verdict::kBeingWritten;
  switch (scan.headerStatus) {
    case HeaderStatus::kOk:
      break;
    case HeaderStatus::kShort:
      return fmt::format("{}: {} ({})", beingWritten ? "still being written" : "bad header", describe(scan.headerStatus),
                         count(scan.size, "byte"));
    case HeaderStatus::kNotAJournal:
    case HeaderStatus::kCorrupt:
      return fmt::format("bad header: {}", describe(scan.headerStatus));
  }
  uint64_t rest = scan.size - scan.end.offset;
  switch (scan.end.stop) {
    case Stop::kEnd:
      return "";
    case Stop::kTorn:
      if (beingWritten) {
        return fmt::format("torn tail at offset {} ({}): still being written ({})", scan.end.offset,
                           count(rest, "byte"), scan.end.why);
      }
      return fmt::format("torn tail at offset {} ({}): {}", scan.end.offset, count(rest, "byte"), scan.end.why);
    case Stop::kCorrupt:
      return fmt::format("corrupt record at offset {} ({} after it unchecked): {}", scan.end.offset,
                         count(rest, "byte"), scan.end.why);
  }
  return "";
}

std::string verifyLine(const SegmentScan& scan) {
  if (scan.headerStatus != HeaderStatus::kOk) return fmt::format("{}: {}", scan.path, describeStop(scan));
  if (scan.end.stop == Stop::kEnd) {
    return fmt::format("{}: {}, {}: ok", scan.path, count(scan.records, "record"), count(scan.size, "byte"));
  }
  return fmt::format("{}: {}, then {}", scan.path, count(scan.records, "good record"),
                     describeStop(scan));
}

std::string count(uint64_t n, const char* noun) { return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s"); }

}  // namespace tcpfork::journal
