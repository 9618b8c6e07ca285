#pragma once
// CRC32C (Castagnoli), the checksum of journal records: the polynomial
// iSCSI, ext4 and LevelDB use, with an instruction of its own on x86-64
// (SSE4.2), so checking a record costs far less than writing it.

#include <cstddef>
#include <cstdint>

namespace tcpfork::journal {

// Extends `crc` (0 to start) over `size` bytes.
uint32_t crc32c(uint32_t crc, const void* data, size_t size);

}  // namespace tcpfork::journal
