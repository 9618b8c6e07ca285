// The pure codec: the design's example bytes, every malformed case, and the
// same stream replayed in chunks of every size (seastar's memcached test idea).

#include <gtest/gtest.h>

#include <vector>

#include "protocol/codec.h"
#include "test/integration/process.h"

namespace tcpfork::protocol {
namespace {

using test::bytes;

std::vector<std::byte> submit(uint64_t id, std::string_view payload) {
  std::vector<std::byte> frame(requestFrameBytes(payload.size()));
  encodeRequest(Command::kSubmit, formatId(id), asBytes(payload), frame.data());
  return frame;
}

constexpr size_t kMax = kDefaultMaxFrameBytes;

TEST(Codec, EncodesTheDesignExample) {
  auto frame = submit(1, "hello");
  EXPECT_EQ(frame, bytes({0x00, 0x00, 0x00, 0x12, 0x02, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x31, 0x68, 0x65,
                          0x6c, 0x6c, 0x6f}));
  std::vector<std::byte> ack(kAckFrameBytes);
  encodeAck(Command::kSubmitAck, formatId(1), kResultOk, ack.data());
  EXPECT_EQ(ack, bytes({0x00, 0x00, 0x00, 0x0e, 0x81, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x31, 0x00}));
}

TEST(Codec, DecodesTheDesignExampleWithoutCopying) {
  auto frame = submit(1, "hello");
  auto d = decodeRequest(frame, kMax);
  ASSERT_EQ(d.status, DecodeStatus::kFrame);
  EXPECT_EQ(d.size, 18u);
  EXPECT_EQ(d.message.command, Command::kSubmit);
  EXPECT_EQ(asText(d.message.id), "00000001");
  EXPECT_EQ(asText(d.message.payload), "hello");
  EXPECT_EQ(d.message.payload.data(), frame.data() + 13) << "payload must view the input";
}

TEST(Codec, DecodesConnAndEmptySubmit) {
  auto conn = bytes({0, 0, 0, 13, 0x01, '0', '0', '0', '0', '0', '0', '4', '2'});
  auto d = decodeRequest(conn, kMax);
  ASSERT_EQ(d.status, DecodeStatus::kFrame);
  EXPECT_EQ(d.message.command, Command::kConn);
  EXPECT_EQ(asText(d.message.id), "00000042");
  EXPECT_TRUE(d.message.payload.empty());
  EXPECT_EQ(ackFor(Command::kConn), Command::kConnAck);
  EXPECT_EQ(ackFor(Command::kSubmit), Command::kSubmitAck);
}

TEST(Codec, AsksForExactlyWhatIsMissing) {
  auto frame = submit(7, "payload");
  for (size_t have = 0; have < frame.size(); ++have) {
    auto d = decodeRequest(std::span<const std::byte>(frame.data(), have), kMax);
    ASSERT_EQ(d.status, DecodeStatus::kNeedMore) << "with " << have << " bytes";
    EXPECT_EQ(d.size, have < 4 ? 4u : frame.size()) << "with " << have << " bytes";
  }
}

struct BadFrame {
  const char* what;
  std::vector<std::byte> prefix;  // enough bytes to tell
  DecodeError error;
};

TEST(Codec, RejectsEveryMalformedRequestFromItsFirstFiveBytes) {
  const BadFrame cases[] = {
      {"sign bit set", bytes({0x80, 0, 0, 0x20}), DecodeError::kNegativeLength},
      {"-1", bytes({0xff, 0xff, 0xff, 0xff}), DecodeError::kNegativeLength},
      {"zero length", bytes({0, 0, 0, 0}), DecodeError::kLengthTooShort},
      {"length 4", bytes({0, 0, 0, 4}), DecodeError::kLengthTooShort},
      {"one over max", bytes({0, 0x10, 0, 1}), DecodeError::kLengthTooLong},
      {"2 GiB - 1", bytes({0x7f, 0xff, 0xff, 0xff}), DecodeError::kLengthTooLong},
      {"Submit with 7-byte body", bytes({0, 0, 0, 12, 0x02}), DecodeError::kBodyTooShort},
      {"Conn with no body", bytes({0, 0, 0, 5, 0x01}), DecodeError::kBodyTooShort},
      {"command 0x00", bytes({0, 0, 0, 13, 0x00}), DecodeError::kUnknownCommand},
      {"command 0x03", bytes({0, 0, 0, 13, 0x03}), DecodeError::kUnknownCommand},
      {"an ack sent to the server", bytes({0, 0, 0, 14, 0x81}), DecodeError::kUnknownCommand},
  };
  for (const auto& c : cases) {
    auto d = decodeRequest(c.prefix, kMax);
    ASSERT_EQ(d.status, DecodeStatus::kError) << c.what;
    EXPECT_EQ(d.error, c.error) << c.what << ": got " << decodeErrorName(d.error);
  }
}

TEST(Codec, HonoursTheConfiguredMaximum) {
  auto frame = submit(1, std::string(100, 'x'));  // 113 bytes
  EXPECT_EQ(decodeRequest(frame, 113).status, DecodeStatus::kFrame);
  auto d = decodeRequest(frame, 112);
  ASSERT_EQ(d.status, DecodeStatus::kError);
  EXPECT_EQ(d.error, DecodeError::kLengthTooLong);
}

TEST(Codec, DecodesAcksAndRejectsMalformedOnes) {
  std::vector<std::byte> ack(kAckFrameBytes);
  encodeAck(Command::kConnAck, formatId(99), 3, ack.data());
  auto d = decodeAck(ack, kMax);
  ASSERT_EQ(d.status, DecodeStatus::kFrame);
  EXPECT_EQ(d.message.command, Command::kConnAck);
  EXPECT_EQ(asText(d.message.id), "00000099");
  EXPECT_EQ(d.message.result, 3);

  EXPECT_EQ(decodeAck(bytes({0, 0, 0, 15, 0x81}), kMax).error, DecodeError::kBadAckLength);
  EXPECT_EQ(decodeAck(bytes({0, 0, 0, 13, 0x81}), kMax).error, DecodeError::kBadAckLength);
  EXPECT_EQ(decodeAck(bytes({0, 0, 0, 14, 0x02}), kMax).error, DecodeError::kUnknownCommand);
  EXPECT_EQ(decodeAck(bytes({0, 0, 0, 14}), kMax).status, DecodeStatus::kNeedMore);
}

TEST(Codec, ErrorNamesAreTheMetricLabels) {
  EXPECT_EQ(decodeErrorName(DecodeError::kNegativeLength), "negative_length");
  EXPECT_EQ(decodeErrorName(DecodeError::kLengthTooShort), "length_too_short");
  EXPECT_EQ(decodeErrorName(DecodeError::kLengthTooLong), "length_too_long");
  EXPECT_EQ(decodeErrorName(DecodeError::kBodyTooShort), "body_too_short");
  EXPECT_EQ(decodeErrorName(DecodeError::kBadAckLength), "bad_ack_length");
  EXPECT_EQ(decodeErrorName(DecodeError::kUnknownCommand), "unknown_command");
}

TEST(Codec, FormatsIdsLikeTheReferenceClient) {
  auto text = [](uint64_t n) {
    Id id = formatId(n);
    return std::string(reinterpret_cast<const char*>(id.data()), id.size());
  };
  EXPECT_EQ(text(0), "00000000");
  EXPECT_EQ(text(42), "00000042");
  EXPECT_EQ(text(99999999), "99999999");
  EXPECT_EQ(text(100000000), "00000000");
}

// A streaming consumer the way the worker uses the decoder: keep unconsumed
// bytes, append each chunk, take every whole frame.
std::vector<std::string> replay(const std::vector<std::byte>& stream, size_t chunk) {
  std::vector<std::string> seen;
  std::vector<std::byte> pending;
  for (size_t offset = 0; offset < stream.size(); offset += chunk) {
    size_t n = std::min(chunk, stream.size() - offset);
    pending.insert(pending.end(), stream.begin() + offset, stream.begin() + offset + n);
    size_t used = 0;
    for (;;) {
      auto d = decodeRequest(std::span<const std::byte>(pending).subspan(used), kMax);
      if (d.status == DecodeStatus::kError) throw std::runtime_error("unexpected error");
      if (d.status == DecodeStatus::kNeedMore) break;
      seen.push_back(std::string(asText(d.message.id)) + ":" + std::string(asText(d.message.payload)));
      used += d.size;
    }
    pending.erase(pending.begin(), pending.begin() + used);
  }
  EXPECT_TRUE(pending.empty());
  return seen;
}

TEST(Codec, YieldsTheSameFramesWhateverTheChunking) {
  std::vector<std::byte> stream;
  std::vector<std::string> expected;
  for (uint64_t i = 0; i < 300; ++i) {
    std::string payload(i % 50, char('a' + i % 26));
    auto frame = submit(i, payload);
    stream.insert(stream.end(), frame.begin(), frame.end());
    Id id = formatId(i);
    expected.push_back(std::string(reinterpret_cast<const char*>(id.data()), 8) + ":" + payload);
  }
  for (size_t chunk : {size_t{100000}, size_t{1000}, size_t{100}, size_t{10}, size_t{5}, size_t{2}, size_t{1}}) {
    EXPECT_EQ(replay(stream, chunk), expected) << "chunk size " << chunk;
  }
}

}  // namespace
}  // namespace tcpfork::protocol
