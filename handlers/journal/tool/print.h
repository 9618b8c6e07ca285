#pragma once
// What tcpfork-journal prints: a record as a line of text or of JSON, and
// what stopped the reading of a segment. Pure functions of a scan and its
// records.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "handlers/journal/format.h"
#include "handlers/journal/tool/scan.h"

namespace tcpfork::journal {

// Printable ASCII as itself; a backslash, any other byte, and with
// `escapeSpace` a space, as \xNN (lower-case hex).
std::string escapeBytes(std::span<const std::byte> bytes, bool escapeSpace);

// Each byte as the code point U+0000..U+00FF, in UTF-8: lossless, and ASCII
// reads as itself.
std::string latin1ToUtf8(std::span<const std::byte> bytes);

// UTC, RFC 3339, with microseconds: 2026-12-02T05:30:00.123456Z.
std::string rfc3339(uint64_t unixNs);

// cat: "<time> w<worker> <id> <payload>", no newline. The ID's spaces are
// escaped too, so the first three fields split on spaces.
std::string recordText(const SegmentScan& scan, const Record& record);

// cat --json: one JSON object, no newline.
std::string recordJson(const SegmentScan& scan, const Record& record);

// What stopped the reading, when it stopped short of the end:
// "torn tail at offset 96 (17 bytes): a record cut short".
std::string describeStop(const SegmentScan& scan);

// verify's line for one file: "FILE: 3 records, 152 bytes: ok", or
// "FILE: 2 good records, then <describeStop>".
std::string verifyLine(const SegmentScan& scan);

// "1 record", "2 records".
std::string count(uint64_t n, const char* noun);

}  // namespace tcpfork::journal
