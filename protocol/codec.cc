#include "protocol/codec.h"

#include <cstring>

namespace tcpfork::protocol {
namespace {

uint32_t loadBigEndian32(const std::byte* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void storeBigEndian32(uint32_t v, std::byte* p) {
  p[0] = std::byte(v >> 24);
  p[1] = std::byte(v >> 16);
  p[2] = std::byte(v >> 8);
  p[3] = std::byte(v);
}

template <typename Message>
Decoded<Message> fail(DecodeError error) {
  Decoded<Message> d;
  d.status = DecodeStatus::kError;
  d.error = error;
  return d;
}

template <typename Message>
Decoded<Message> needMore(size_t bytes) {
  Decoded<Message> d;
  d.status = DecodeStatus::kNeedMore;
  d.size = bytes;
  return d;
}

// Validates the length and command of the frame at the front of `in`. Returns
// kFrame with size = totalLength once the whole frame is present; the caller
// then checks the body against the command.
template <typename Message>
Decoded<Message> decodeHeader(std::span<const std::byte> in, size_t maxFrameBytes, bool (*validCommand)(uint8_t),
                              uint8_t& command) {
  if (in.size() < kLengthBytes) return needMore<Message>(kLengthBytes);
  uint32_t raw = loadBigEndian32(in.data());
  if (raw & 0x80000000u) return fail<Message>(DecodeError::kNegativeLength);
  size_t total = raw;
  if (total < kHeaderBytes) return fail<Message>(DecodeError::kLengthTooShort);
  if (total > maxFrameBytes) return fail<Message>(DecodeError::kLengthTooLong);
  if (in.size() < kHeaderBytes) return needMore<Message>(total);
  command = uint8_t(in[kLengthBytes]);
  if (!validCommand(command)) return fail<Message>(DecodeError::kUnknownCommand);
  Decoded<Message> d;
  d.status = in.size() < total ? DecodeStatus::kNeedMore : DecodeStatus::kFrame;
  d.size = total;
  return d;
}

bool isRequestCommand(uint8_t c) {
  return c == uint8_t(Command::kConn) || c == uint8_t(Command::kSubmit);
}
bool isAckCommand(uint8_t c) {
  return c == uint8_t(Command::kConnAck) || c == uint8_t(Command::kSubmitAck);
}

}  // namespace

Decoded<Request> decodeRequest(std::span<const std::byte> in, size_t maxFrameBytes) {
  uint8_t command = 0;
  auto d = decodeHeader<Request>(in, maxFrameBytes, isRequestCommand, command);
  if (d.status == DecodeStatus::kError) return d;
  // The body length is known from the header alone: fail before it arrives.
  if (in.size() >= kHeaderBytes && d.size < kMinRequestFrameBytes) {
    return fail<Request>(DecodeError::kBodyTooShort);
  }
  if (d.status != DecodeStatus::kFrame) return d;
  const std::byte* body = in.data() + kHeaderBytes;
  d.message.command = Command(command);
  d.message.id = IdView(body, kIdBytes);
  d.message.payload = std::span<const std::byte>(body + kIdBytes, d.size - kMinRequestFrameBytes);
  return d;
}

Decoded<Ack> decodeAck(std::span<const std::byte> in, size_t maxFrameBytes) {
  uint8_t command = 0;
  auto d = decodeHeader<Ack>(in, maxFrameBytes, isAckCommand, command);
  if (d.status == DecodeStatus::kError) return d;
  if (in.size() >= kHeaderBytes && d.size != kAckFrameBytes) return fail<Ack>(DecodeError::kBadAckLength);
  if (d.status != DecodeStatus::kFrame) return d;
  const std::byte* body = in.data() + kHeaderBytes;
  d.message.command = Command(command);
  d.message.id = IdView(body, kIdBytes);
  d.message.result = uint8_t(body[kIdBytes]);
  return d;
}

void encodeRequest(Command command, IdView id, std::span<const std::byte> payload, std::byte* out) {
  storeBigEndian32(uint32_t(requestFrameBytes(payload.size())), out);
  out[kLengthBytes] = std::byte(command);
  std::memcpy(out + kHeaderBytes, id.data(), kIdBytes);
  if (!payload.empty()) std::memcpy(out + kMinRequestFrameBytes, payload.data(), payload.size());
}

void encodeAck(Command command, IdView id, uint8_t result, std::byte* out) {
  storeBigEndian32(uint32_t(kAckFrameBytes), out);
  out[kLengthBytes] = std::byte(command);
  std::memcpy(out + kHeaderBytes, id.data(), kIdBytes);
  out[kHeaderBytes + kIdBytes] = std::byte(result);
}

Id formatId(uint64_t n) {
  Id id;
  n %= 100000000;
  for (size_t i = kIdBytes; i-- > 0;) {
    id[i] = std::byte('0' + n % 10);
    n /= 10;
  }
  return id;
}

}  // namespace tcpfork::protocol
