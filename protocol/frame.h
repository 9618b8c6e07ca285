#pragma once
// Wire constants of the tcpfork protocol (byte-compatible with the reference
// Go tcp-server-demo):
//   frame   := totalLength:int32 big-endian, payload   (totalLength counts itself)
//   payload := commandID:uint8, body
// Pure data, no I/O; shared by worker, client, baseline server and tests.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace tcpfork::protocol {

inline constexpr size_t kLengthBytes = 4;
inline constexpr size_t kCommandBytes = 1;
inline constexpr size_t kIdBytes = 8;
inline constexpr size_t kResultBytes = 1;
inline constexpr size_t kHeaderBytes = kLengthBytes + kCommandBytes;
// Conn and Submit carry at least the ID.
inline constexpr size_t kMinRequestFrameBytes = kHeaderBytes + kIdBytes;
// ConnAck and SubmitAck are exactly this long: 14 bytes.
inline constexpr size_t kAckFrameBytes = kHeaderBytes + kIdBytes + kResultBytes;
inline constexpr size_t kDefaultMaxFrameBytes = size_t{1} << 20;

// The reference computes these with `iota + 0x80`, so SubmitAck is 0x81 on the wire.
enum class Command : uint8_t {
  kConn = 0x01,
  kSubmit = 0x02,
  kConnAck = 0x80,
  kSubmitAck = 0x81,
};

constexpr Command ackFor(Command request) {
  return request == Command::kConn ? Command::kConnAck : Command::kSubmitAck;
}

inline constexpr uint8_t kResultOk = 0;
// The server's "busy": shed under overload without being processed; the
// client may retry after a backoff. An answer, in order, not an error.
inline constexpr uint8_t kResultBusy = 255;

// Every way a frame can be malformed. The names are the `reason` label of the
// protocol error counters, so they are stable.
enum class DecodeError : uint8_t {
  kNegativeLength,   // totalLength has its sign bit set
  kLengthTooShort,   // totalLength < 5: not even a command byte
  kLengthTooLong,    // totalLength > max_frame_bytes
  kBodyTooShort,     // Conn/Submit body shorter than the 8-byte ID
  kBadAckLength,     // ConnAck/SubmitAck body other than ID + result
  kUnknownCommand,   // command not valid in this direction
};
inline constexpr size_t kDecodeErrorCount = 6;

constexpr std::string_view decodeErrorName(DecodeError error) {
  constexpr std::array<std::string_view, kDecodeErrorCount> kNames = {
      "negative_length", "length_too_short", "length_too_long",
      "body_too_short",  "bad_ack_length",   "unknown_command",
  };
  return kNames[static_cast<size_t>(error)];
}

using Id = std::array<std::byte, kIdBytes>;
using IdView = std::span<const std::byte, kIdBytes>;

// Conn or Submit, viewing the caller's buffer (no copy).
struct Request {
  Command command{};
  IdView id{static_cast<const std::byte*>(nullptr), kIdBytes};
  std::span<const std::byte> payload;
};

// ConnAck or SubmitAck, viewing the caller's buffer (no copy).
struct Ack {
  Command command{};
  IdView id{static_cast<const std::byte*>(nullptr), kIdBytes};
  uint8_t result = 0;
};

}  // namespace tcpfork::protocol
