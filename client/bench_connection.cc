#include "client/bench_connection.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "protocol/codec.h"

namespace tcpfork::client {
namespace {

using namespace protocol;

// Unsent requests buffered per connection: enough for deep pipelines, bounded
// for large payloads (at least one frame always fits).
constexpr size_t kMaxOutBuffer = 256 * 1024;
constexpr size_t kInBuffer = 64 * 1024;
constexpr int kReadsPerCall = 4;
constexpr size_t kIdOffset = kHeaderBytes;

// Advances an 8-digit ASCII ID in place: "00000099" -> "00000100", wrapping at 10^8.
void incrementId(std::byte* id) {
  for (size_t i = kIdBytes; i-- > 0;) {
    if (id[i] != std::byte{'9'}) {
      id[i] = std::byte(uint8_t(id[i]) + 1);
      return;
    }
    id[i] = std::byte{'0'};
  }
}

}  // namespace

BenchConnection::BenchConnection(size_t payloadBytes, unsigned window, uint64_t quota, ThreadCounters& counters)
    : frameBytes_(requestFrameBytes(payloadBytes)),
      window_(window),
      quota_(quota),
      counters_(counters),
      requestTemplate_(frameBytes_),
      out_(std::max(frameBytes_, std::min<size_t>(kMaxOutBuffer, size_t{window} * frameBytes_))),
      in_(kInBuffer),
      sendTimes_(window) {
  std::vector<std::byte> payload(payloadBytes, std::byte{'x'});
  Id first = formatId(0);
  encodeRequest(Command::kSubmit, first, payload, requestTemplate_.data());
  encodeAck(Command::kSubmitAck, first, kResultOk, expectedAck_.data());
}

bool BenchConnection::connect(const SocketAddress& address) {
  try {
    fd_ = connectTcp(address);
    setNonBlocking(fd_.get());
  } catch (const std::system_error& e) {
    ThreadCounters::add(counters_.connectsFailed, 1);
    if (e.code().value() == ECONNRESET) ThreadCounters::add(counters_.connectsReset, 1);
    return false;
  } catch (const std::exception&) {
    ThreadCounters::add(counters_.connectsFailed, 1);
    return false;
  }
  // Whatever was in flight on an earlier socket is gone: expect the next new ID.
  std::memcpy(expectedAck_.data() + kIdOffset, requestTemplate_.data() + kIdOffset, kIdBytes);
  acked_ = sent_;
  ackHead_ = sendHead_;
  outBegin_ = outEnd_ = 0;
  inLength_ = 0;
  return true;
}

uint64_t BenchConnection::room() const {
  uint64_t byWindow = window_ - inFlight();
  uint64_t byBuffer = (out_.size() - (outEnd_ - outBegin_)) / frameBytes_;
  uint64_t room = std::min(byWindow, byBuffer);
  if (quota_ != 0) room = std::min(room, quota_ - std::min(quota_, sent_));
  return room;
}

void BenchConnection::queue(uint64_t count, int64_t intendedNs, int64_t stepNs) {
  if (count == 0) return;
  if (out_.size() - outEnd_ < count * frameBytes_) {
    std::memmove(out_.data(), out_.data() + outBegin_, outEnd_ - outBegin_);
    outEnd_ -= outBegin_;
    outBegin_ = 0;
  }
  for (uint64_t i = 0; i < count; ++i) {
    std::memcpy(out_.data() + outEnd_, requestTemplate_.data(), frameBytes_);
    incrementId(requestTemplate_.data() + kIdOffset);
    outEnd_ += frameBytes_;
    sendTimes_[sendHead_] = intendedNs;
    intendedNs += stepNs;
    if (++sendHead_ == window_) sendHead_ = 0;
  }
  sent_ += count;
  ThreadCounters::add(counters_.sent, count);
}

bool BenchConnection::writePending() {
  while (outEnd_ > outBegin_) {
    ssize_t n = ::send(fd_.get(), out_.data() + outBegin_, outEnd_ - outBegin_, MSG_NOSIGNAL);
    if (n > 0) {
      outBegin_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  outBegin_ = outEnd_ = 0;
  return true;
}

int64_t BenchConnection::readAcks(int64_t nowNs) {
  uint64_t ackedBefore = acked_;
  uint64_t notOkBefore = notOk_;
  for (int i = 0; i < kReadsPerCall; ++i) {
    size_t asked = in_.size() - inLength_;
    ssize_t n = ::read(fd_.get(), in_.data() + inLength_, asked);
    if (n == 0) return closed(ackedBefore, notOkBefore);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return closed(ackedBefore, notOkBefore);
    }
    size_t readBytes = static_cast<size_t>(n);
    inLength_ += readBytes;
    size_t offset = 0;
    while (inLength_ - offset >= kAckFrameBytes) {
      const std::byte* frame = in_.data() + offset;
      if (std::memcmp(frame, expectedAck_.data(), kAckFrameBytes) != 0) {
        auto decoded = decodeAck(std::span<const std::byte>(frame, inLength_ - offset), kDefaultMaxFrameBytes);
        if (decoded.status != DecodeStatus::kFrame) {
          ThreadCounters::add(counters_.errors[size_t(AckError::kMalformed)], 1);
          return closed(ackedBefore, notOkBefore);  // the stream is no longer framed: nothing after it can be trusted
        }
        if (!checkAck(frame, nowNs)) {
          offset += kAckFrameBytes;  // unsolicited: it answers nothing we sent
          continue;
        }
      } else {
        counters_.admittedNs.record(static_cast<uint64_t>(std::max<int64_t>(0, nowNs - sendTimes_[ackHead_])));
        ++acked_;
        if (++ackHead_ == window_) ackHead_ = 0;
      }
      incrementId(expectedAck_.data() + kIdOffset);
      offset += kAckFrameBytes;
    }
    inLength_ -= offset;
    if (inLength_ > 0) std::memmove(in_.data(), in_.data() + offset, inLength_);
    if (readBytes < asked) break;  // socket drained: skip the EAGAIN read
  }
  publish(ackedBefore, notOkBefore);
  return static_cast<int64_t>(acked_ - ackedBefore);
}

int64_t BenchConnection::closed(uint64_t ackedBefore, uint64_t notOkBefore) {
  // Acks checked before the close still count.
  publish(ackedBefore, notOkBefore);
  return -1;
}

// Once per read batch, not per ack. Every ack the fast path matched is ok and
// none the slow path took is: ok = acks less the slow path's.
void BenchConnection::publish(uint64_t ackedBefore, uint64_t notOkBefore) {
  uint64_t acked = acked_ - ackedBefore;
  ThreadCounters::add(counters_.acked, acked);
  ThreadCounters::add(counters_.ok, acked - (notOk_ - notOkBefore));
}

// The slow path: the frame is well formed but not the ack expected next (a
// busy answer, or a wrong one). Returns false for an ack that answers nothing
// (none was owed).
bool BenchConnection::checkAck(const std::byte* frame, int64_t nowNs) {
  auto decoded = decodeAck(std::span<const std::byte>(frame, kAckFrameBytes), kDefaultMaxFrameBytes);
  const Ack& ack = decoded.message;
  if (acked_ == sent_) {
    ThreadCounters::add(counters_.errors[size_t(AckError::kWrongId)], 1);
    return false;
  }
  // Busy is an answer: "not processed, retry later". Counted by its result
  // byte alone, so `busy` is the busy latency's count; a wrong command or ID
  // is still an error whatever its result.
  bool busy = ack.result == kResultBusy;
  if (ack.command != Command::kSubmitAck) {
    ThreadCounters::add(counters_.errors[size_t(AckError::kWrongCommand)], 1);
  } else if (std::memcmp(ack.id.data(), expectedAck_.data() + kIdOffset, kIdBytes) != 0) {
    ThreadCounters::add(counters_.errors[size_t(AckError::kWrongId)], 1);
  } else if (ack.result != kResultOk && !busy) {
    ThreadCounters::add(counters_.errors[size_t(AckError::kNonZeroResult)], 1);
  }
  // An ack that decodes to the expected one is byte for byte the expected
  // one, which the fast path took: none here is ok.
  ++notOk_;
  uint64_t latency = static_cast<uint64_t>(std::max<int64_t>(0, nowNs - sendTimes_[ackHead_]));
  if (busy) {
    counters_.busyNs.record(latency);
    ThreadCounters::add(counters_.busy, 1);
  } else {
    counters_.admittedNs.record(latency);
  }
  ++acked_;
  if (++ackHead_ == window_) ackHead_ = 0;
  return true;
}

uint64_t BenchConnection::close() {
  // Whole requests still in our buffer never reached the server: not sent.
  uint64_t unsent = (outEnd_ - outBegin_) / frameBytes_;
  sent_ -= unsent;
  ThreadCounters::add(counters_.sent, uint64_t(0) - unsent);
  outBegin_ = outEnd_ = 0;
  uint64_t lost = inFlight();
  fd_.reset();
  acked_ = sent_;
  ackHead_ = sendHead_;
  return lost;
}

}  // namespace tcpfork::client
