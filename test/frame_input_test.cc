// FrameInput, the bytes a connection keeps between reads: the same stream of
// frames replayed in chunks of 100000, 1000, 100, 10, 5, 2 and 1 bytes and
// split at every point (seastar's memcached parser test), with a frame at
// max_frame_bytes and each kind of malformed frame; the input held while the
// connection pauses; and the deadline of a frame that trickles in.

#include "worker/frame_input.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "protocol/codec.h"

namespace tcpfork {
namespace {

using namespace std::chrono_literals;
using protocol::DecodeError;

using Bytes = std::vector<std::byte>;

// Small enough that the 100000-byte chunking splits the largest frame.
constexpr size_t kMaxFrame = 200'000;

ConnectionLimits limits(std::chrono::milliseconds idle = 0ms) {
  ConnectionLimits l;
  l.maxFrameBytes = kMaxFrame;
  l.idleTimeout = idle;
  return l;
}

// What a decoded request carried, copied out of the bytes it viewed.
struct Frame {
  protocol::Command command;
  std::string id;
  std::string payload;
  bool operator==(const Frame&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Frame& f) {
  return out << "{" << int(f.command) << " " << f.id << " " << f.payload.size() << " bytes}";
}

// A frame of the stream: its bytes and what decoding it must give.
struct Piece {
  Bytes bytes;
  std::optional<Frame> frame;  // none: malformed
  std::optional<DecodeError> error;
};

Piece request(protocol::Command command, uint64_t id, size_t payloadBytes) {
  std::string payload(payloadBytes, '\0');
  for (size_t i = 0; i < payloadBytes; ++i) payload[i] = char('a' + (id + i) % 26);
  Bytes bytes(protocol::requestFrameBytes(payloadBytes));
  protocol::Id formatted = protocol::formatId(id);
  protocol::encodeRequest(command, formatted, protocol::asBytes(payload), bytes.data());
  std::string idText(reinterpret_cast<const char*>(formatted.data()), formatted.size());
  return {std::move(bytes), Frame{command, idText, payload}, std::nullopt};
}
Piece submit(uint64_t id, size_t payloadBytes) { return request(protocol::Command::kSubmit, id, payloadBytes); }
Piece conn(uint64_t id) { return request(protocol::Command::kConn, id, 0); }

// `bytes` bytes: a header that declares `length` and `command`, then zeros.
Piece malformed(uint32_t length, uint8_t command, size_t bytes, DecodeError error) {
  Bytes out(bytes);
  out[0] = std::byte(length >> 24);
  out[1] = std::byte(length >> 16);
  out[2] = std::byte(length >> 8);
  out[3] = std::byte(length);
  if (bytes > 4) out[4] = std::byte(command);
  return {std::move(out), std::nullopt, error};
}

// The connection's side of feed(): decodes whole frames as the frame loop
// does, stops at a protocol error (and the stream stops), and can hold its
// input after a number of frames, as a connection at max_pending does.
struct Decoder {
  std::vector<Frame> frames;
  std::optional<DecodeError> error;
  bool holding = false;
  size_t holdAfter = 0;  // hold once this many more frames are decoded (0: never)

  size_t decode(std::span<const std::byte> bytes) {
    size_t consumed = 0;
    while (!holding) {
      auto d = protocol::decodeRequest(bytes.subspan(consumed), kMaxFrame);
      if (d.status == protocol::DecodeStatus::kError) {
        error = d.error;
        break;
      }
      if (d.status == protocol::DecodeStatus::kNeedMore) break;
      const auto& r = d.message;
      frames.push_back(Frame{r.command, std::string(protocol::asText(r.id)), std::string(protocol::asText(r.payload))});
      consumed += d.size;
      if (holdAfter > 0 && --holdAfter == 0) holding = true;
    }
    return consumed;
  }
  FrameInput::Flow flow() const {
    if (error) return FrameInput::Flow::kStop;
    return holding ? FrameInput::Flow::kHold : FrameInput::Flow::kDecode;
  }
  size_t feed(FrameInput& input, std::span<const std::byte> in) {
    return input.feed(in, [this](std::span<const std::byte> b) { return decode(b); }, [this] { return flow(); });
  }
};

// The stream the pieces make, and where each ends.
struct Stream {
  Bytes bytes;
  std::vector<size_t> ends;
  std::vector<Frame> frames;            // every valid frame before the first malformed one
  std::optional<DecodeError> error;     // the first malformed one's
  size_t errorAt = SIZE_MAX;            // its start
  size_t errorKnownAt = SIZE_MAX;       // the offset by which its error is known
  size_t errorLength = 0;               // the length it declares, when that is valid

  explicit Stream(const std::vector<Piece>& pieces) {
    for (const Piece& piece : pieces) {
      if (!error) {
        if (piece.frame) {
          frames.push_back(*piece.frame);
        } else {
          error = piece.error;
          errorAt = bytes.size();
          // Its length is wrong from 4 bytes; its command from 5.
          bool lengthError = *error == DecodeError::kNegativeLength || *error == DecodeError::kLengthTooShort ||
                             *error == DecodeError::kLengthTooLong;
          errorKnownAt = errorAt + (lengthError ? protocol::kLengthBytes : protocol::kHeaderBytes);
          if (!lengthError) {
            for (size_t i = 0; i < protocol::kLengthBytes; ++i) errorLength = errorLength << 8 | size_t(piece.bytes[i]);
          }
        }
      }
      bytes.insert(bytes.end(), piece.bytes.begin(), piece.bytes.end());
      ends.push_back(bytes.size());
    }
  }
  // Valid frames wholly within the first `offset` bytes.
  size_t framesWithin(size_t offset) const {
    size_t n = 0;
    while (n < frames.size() && ends[n] <= offset) ++n;
    return n;
  }
  // Where the frame being completed at `offset` begins.
  size_t startOfFrameAt(size_t offset) const { return framesWithin(offset) == 0 ? 0 : ends[framesWithin(offset) - 1]; }
};

// Feeds `stream` in pieces of `chunk` bytes and checks, after each: exactly
// the frames wholly fed are delivered, in order; the tail holds the bytes of
// the frame being completed and never more memory than that frame; the
// error is known as soon as the malformed header is, and nothing after it
// is delivered.
void replay(const Stream& stream, size_t chunk) {
  SCOPED_TRACE("chunks of " + std::to_string(chunk));
  ConnectionLimits l = limits();
  FrameInput input(l);
  Decoder decoder;
  size_t fed = 0;
  while (fed < stream.bytes.size()) {
    size_t n = std::min(chunk, stream.bytes.size() - fed);
    ASSERT_EQ(decoder.feed(input, std::span(stream.bytes).subspan(fed, n)), 0u);
    fed += n;
    size_t whole = stream.framesWithin(std::min(fed, stream.errorAt));
    ASSERT_EQ(decoder.frames.size(), whole) << "after " << fed << " bytes";
    if (fed >= stream.errorKnownAt) {
      ASSERT_EQ(decoder.error, stream.error) << "after " << fed << " bytes";
    } else {
      ASSERT_FALSE(decoder.error) << "after " << fed << " bytes";
      size_t start = stream.startOfFrameAt(fed);
      ASSERT_EQ(input.size(), fed - start) << "after " << fed << " bytes";
      // The frame being completed: its length once its header is in.
      size_t frameBytes = whole < stream.frames.size() ? stream.ends[whole] - start : stream.errorLength;
      ASSERT_LE(input.memoryBytes(), std::max(frameBytes, input.size())) << "after " << fed << " bytes";
    }
    ASSERT_LE(input.memoryBytes(), kMaxFrame);
  }
  EXPECT_EQ(decoder.frames, stream.frames);
  EXPECT_EQ(decoder.error, stream.error);
  if (!stream.error) {
    EXPECT_TRUE(input.empty());
    EXPECT_EQ(input.memoryBytes(), 0u) << "between frames the tail holds no memory";
  }
}

constexpr size_t kChunks[] = {100000, 1000, 100, 10, 5, 2, 1};

std::vector<Piece> validFrames() {
  return {conn(1),       submit(2, 0),        submit(3, 1),    submit(4, 100), submit(5, 70'000), conn(6),
          submit(7, 3),  submit(8, kMaxFrame - protocol::kMinRequestFrameBytes),  // at max_frame_bytes
          submit(9, 1000), submit(10, 13)};
}

TEST(FrameInput, ReplaysFramesUpToMaxFrameBytesInEveryChunking) {
  Stream stream(validFrames());
  ASSERT_EQ(stream.ends[7] - stream.ends[6], kMaxFrame);
  for (size_t chunk : kChunks) replay(stream, chunk);
}

// Each malformed frame ends the stream where it starts, in every chunking:
// the frames before it are delivered, none after it.
TEST(FrameInput, StopsAtAMalformedFrameInEveryChunking) {
  const Piece kinds[] = {
      malformed(kMaxFrame + 1, 0x02, 40, DecodeError::kLengthTooLong),
      malformed(0x80000000u, 0x02, 20, DecodeError::kNegativeLength),
      malformed(4, 0x02, 20, DecodeError::kLengthTooShort),
      malformed(10, 0x02, 20, DecodeError::kBodyTooShort),
      malformed(5000, 0x7f, 5000, DecodeError::kUnknownCommand),
  };
  for (const Piece& bad : kinds) {
    SCOPED_TRACE(std::string(protocol::decodeErrorName(*bad.error)));
    std::vector<Piece> pieces = validFrames();
    pieces.push_back(bad);
    pieces.push_back(submit(99, 10));  // never delivered
    Stream stream(pieces);
    for (size_t chunk : kChunks) replay(stream, chunk);
  }
}

// Every way to cut a few frames in two, and in three.
TEST(FrameInput, DeliversTheSameFramesAtEverySplitPoint) {
  for (bool withError : {false, true}) {
    std::vector<Piece> pieces = {conn(1), submit(2, 5), submit(3, 40), conn(4)};
    if (withError) pieces.push_back(malformed(30, 0x81, 30, DecodeError::kUnknownCommand));
    Stream stream(pieces);
    const size_t size = stream.bytes.size();
    for (size_t i = 0; i <= size; ++i) {
      for (size_t j = i; j <= size; ++j) {
        SCOPED_TRACE("cut at " + std::to_string(i) + " and " + std::to_string(j));
        ConnectionLimits l = limits();
        FrameInput input(l);
        Decoder decoder;
        auto all = std::span(stream.bytes);
        ASSERT_EQ(decoder.feed(input, all.subspan(0, i)), 0u);
        if (i < stream.errorKnownAt) {
          EXPECT_EQ(input.size(), i - stream.startOfFrameAt(i));
        }
        ASSERT_EQ(decoder.feed(input, all.subspan(i, j - i)), 0u);
        ASSERT_EQ(decoder.feed(input, all.subspan(j)), 0u);
        ASSERT_EQ(decoder.frames, stream.frames);
        EXPECT_EQ(decoder.error, stream.error);
        if (!withError) {
          EXPECT_TRUE(input.empty());
        }
      }
    }
  }
}

// A connection paused after every frame (max_pending 1) keeps all it is
// sent, undecoded and in order, and decodes it frame by frame as it is let
// go, with an empty feed (the backlog) or more bytes queued behind it.
TEST(FrameInput, KeepsEveryByteWhileHeldAndDecodesItInOrder) {
  Stream stream({conn(1), submit(2, 5), submit(3, 2000), submit(4, 0), conn(5), submit(6, 70'000)});
  for (size_t chunk : kChunks) {
    SCOPED_TRACE("chunks of " + std::to_string(chunk));
    ConnectionLimits l = limits();
    FrameInput input(l);
    Decoder decoder;
    decoder.holdAfter = 1;
    size_t fed = 0;
    size_t rounds = 0;
    while (decoder.frames.size() < stream.frames.size() && rounds++ < 2 * stream.bytes.size()) {
      if (decoder.holding) {
        size_t before = decoder.frames.size();
        // Held: a read appends, decodes nothing.
        if (fed < stream.bytes.size()) {
          size_t n = std::min(chunk, stream.bytes.size() - fed);
          size_t tail = input.size();
          ASSERT_EQ(decoder.feed(input, std::span(stream.bytes).subspan(fed, n)), 0u);
          fed += n;
          ASSERT_EQ(decoder.frames.size(), before);
          ASSERT_EQ(input.size(), tail + n);
        }
        decoder.holding = false;
        decoder.holdAfter = 1;
        ASSERT_EQ(decoder.feed(input, {}), 0u);  // the backlog
        continue;
      }
      if (fed == stream.bytes.size()) break;
      size_t n = std::min(chunk, stream.bytes.size() - fed);
      ASSERT_EQ(decoder.feed(input, std::span(stream.bytes).subspan(fed, n)), 0u);
      fed += n;
    }
    EXPECT_EQ(decoder.frames, stream.frames);
    EXPECT_TRUE(input.empty());
    EXPECT_EQ(input.memoryBytes(), 0u);
  }
}

// A closed connection's input is gone, memory and all.
TEST(FrameInput, ClearFreesTheTail) {
  ConnectionLimits l = limits();
  FrameInput input(l);
  Decoder decoder;
  Piece big = submit(1, 10'000);
  ASSERT_EQ(decoder.feed(input, std::span(big.bytes).first(5000)), 0u);
  EXPECT_EQ(input.size(), 5000u);
  EXPECT_GE(input.memoryBytes(), 5000u);
  input.clear();
  EXPECT_TRUE(input.empty());
  EXPECT_EQ(input.memoryBytes(), 0u);
}

// The deadline of a frame that trickles in: it begins with the read that
// leaves a frame unfinished, holds while the same frame trickles on (however
// many bytes come), begins again when a read completes frames and leaves
// another unfinished, ends with the last byte, and is kExpired idle_timeout
// after it began. The clock is the test's, and read only while a frame is
// unfinished.
TEST(FrameInput, AFrameMustCompleteWithinIdleTimeoutOfTheReadThatBeganIt) {
  using Clock = FrameInput::Clock;
  const Clock::time_point t0{};
  ConnectionLimits l = limits(100ms);
  FrameInput input(l);
  Decoder decoder;
  Clock::time_point now = t0;
  int clockReads = 0;
  auto clock = [&] {
    ++clockReads;
    return now;
  };
  Stream stream({submit(1, 50), submit(2, 50)});
  auto bytes = std::span(stream.bytes);
  const size_t first = stream.ends[0];

  EXPECT_EQ(input.afterRead(0, clock), FrameInput::Wait::kNone);
  EXPECT_EQ(clockReads, 0) << "no clock read while no frame is unfinished";
  EXPECT_FALSE(input.deadline());

  decoder.feed(input, bytes.first(10));
  EXPECT_EQ(input.afterRead(0, clock), FrameInput::Wait::kBegun);
  EXPECT_EQ(input.deadline(), t0 + 100ms);

  now = t0 + 60ms;
  decoder.feed(input, bytes.subspan(10, 20));
  EXPECT_EQ(input.afterRead(0, clock), FrameInput::Wait::kNone) << "a trickle does not restart the wait";
  EXPECT_EQ(input.deadline(), t0 + 100ms);
  EXPECT_FALSE(input.expired(t0 + 99ms));
  EXPECT_TRUE(input.expired(t0 + 100ms));

  // The read that completes the first frame and begins the next restarts it.
  now = t0 + 90ms;
  decoder.feed(input, bytes.subspan(30, first - 30 + 5));
  EXPECT_EQ(decoder.frames.size(), 1u);
  EXPECT_EQ(input.afterRead(1, clock), FrameInput::Wait::kBegun);
  EXPECT_EQ(input.deadline(), t0 + 190ms);
  now = t0 + 190ms;
  EXPECT_EQ(input.afterRead(0, clock), FrameInput::Wait::kExpired);

  // A wait the connection caused (it held its input) begins anew.
  input.restartWait();
  EXPECT_FALSE(input.deadline());
  EXPECT_EQ(input.afterRead(0, clock), FrameInput::Wait::kBegun);
  EXPECT_EQ(input.deadline(), t0 + 290ms);

  // The last byte ends the wait.
  decoder.feed(input, bytes.subspan(first + 5));
  EXPECT_EQ(decoder.frames.size(), 2u);
  int reads = clockReads;
  EXPECT_EQ(input.afterRead(1, clock), FrameInput::Wait::kNone);
  EXPECT_EQ(clockReads, reads);
  EXPECT_FALSE(input.deadline());
  EXPECT_FALSE(input.expired(t0 + 1000ms));
}

TEST(FrameInput, HasNoDeadlineWithoutAnIdleTimeout) {
  ConnectionLimits l = limits(0ms);
  FrameInput input(l);
  Decoder decoder;
  Piece frame = submit(1, 50);
  decoder.feed(input, std::span(frame.bytes).first(10));
  int clockReads = 0;
  auto clock = [&] {
    ++clockReads;
    return FrameInput::Clock::time_point{};
  };
  EXPECT_EQ(input.afterRead(0, clock), FrameInput::Wait::kNone);
  EXPECT_EQ(clockReads, 0);
  EXPECT_FALSE(input.deadline());
}

}  // namespace
}  // namespace tcpfork
