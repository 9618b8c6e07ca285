#pragma once
// The pure wire codec: streaming decode of whatever bytes have arrived (half a
// header, many frames, a frame split anywhere) and encode into caller memory.
// No allocation, no I/O. Errors are known from the first 5 bytes of a frame, so
// a caller never has to buffer more than max_frame_bytes to find one.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "protocol/frame.h"

namespace tcpfork::protocol {

enum class DecodeStatus : uint8_t { kFrame, kNeedMore, kError };

template <typename Message>
struct Decoded {
  DecodeStatus status = DecodeStatus::kNeedMore;
  DecodeError error{};   // set when status == kError
  size_t size = 0;       // kFrame: bytes the frame takes; kNeedMore: bytes needed in all
  Message message{};     // set when status == kFrame; views the input
};

// Decodes the first frame of `in` as a client-to-server request.
Decoded<Request> decodeRequest(std::span<const std::byte> in, size_t maxFrameBytes);
// Decodes the first frame of `in` as a server-to-client ack.
Decoded<Ack> decodeAck(std::span<const std::byte> in, size_t maxFrameBytes);

constexpr size_t requestFrameBytes(size_t payloadBytes) { return kMinRequestFrameBytes + payloadBytes; }

// Writes one request frame to `out` (requestFrameBytes(payload.size()) bytes).
void encodeRequest(Command command, IdView id, std::span<const std::byte> payload, std::byte* out);
// Writes one ack frame to `out` (kAckFrameBytes bytes).
void encodeAck(Command command, IdView id, uint8_t result, std::byte* out);

// The 8-digit zero-padded decimal ID the reference client uses ("00000042");
// wraps modulo 10^8.
Id formatId(uint64_t n);

inline std::span<const std::byte> asBytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}
inline std::string_view asText(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace tcpfork::protocol
