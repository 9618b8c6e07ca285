#include "worker/output_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace tcpfork {
namespace {

void append(OutputBuffer& out, OutputBuffer::Spare& spare, const std::string& text) {
  std::byte* at = out.reserve(text.size(), spare);
  ASSERT_NE(at, nullptr);
  std::memcpy(at, text.data(), text.size());
  out.commit(text.size());
}

std::string contents(const OutputBuffer& out) {
  auto bytes = out.bytes();
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TEST(OutputBuffer, KeepsBytesInOrderAcrossPartialSends) {
  OutputBuffer out;
  OutputBuffer::Spare spare;
  append(out, spare, "first ");
  append(out, spare, "second ");
  out.consume(3, spare);
  append(out, spare, "third");
  EXPECT_EQ(contents(out), "st second third");
  out.consume(out.size(), spare);
  EXPECT_EQ(out.size(), 0u);
}

TEST(OutputBuffer, AReserveLeftUncommittedAddsNothing) {
  OutputBuffer out;
  OutputBuffer::Spare spare;
  append(out, spare, "ack");
  ASSERT_NE(out.reserve(1000, spare), nullptr);
  out.commit(0);
  EXPECT_EQ(contents(out), "ack");
}

TEST(OutputBuffer, ReclaimsSentBytesBeforeGrowing) {
  OutputBuffer out;
  OutputBuffer::Spare spare;
  append(out, spare, std::string(48, 'a'));
  size_t capacity = out.capacity();
  out.consume(40, spare);
  append(out, spare, std::string(30, 'b'));  // fits once the 40 sent bytes are reclaimed
  EXPECT_EQ(out.capacity(), capacity);
  EXPECT_EQ(contents(out), std::string(8, 'a') + std::string(30, 'b'));
}

// An exchange allocates nothing once the buffer exists, and a burst's memory
// leaves the connection once it is sent.
TEST(OutputBuffer, KeepsASmallBufferAndGivesALargeOneUpOnceEmpty) {
  OutputBuffer out;
  OutputBuffer::Spare spare;
  append(out, spare, std::string(14, 'x'));
  size_t small = out.capacity();
  out.consume(14, spare);
  EXPECT_EQ(out.capacity(), small);
  append(out, spare, std::string(OutputBuffer::kKeptBytes + 1, 'y'));
  size_t large = out.capacity();
  EXPECT_GT(large, OutputBuffer::kKeptBytes);
  out.consume(OutputBuffer::kKeptBytes, spare);
  EXPECT_EQ(out.capacity(), large) << "not empty yet";
  out.consume(1, spare);
  EXPECT_EQ(out.capacity(), 0u);
  EXPECT_EQ(spare.capacity, large) << "kept for the next buffer that grows";
  append(out, spare, "again");
  EXPECT_EQ(contents(out), "again");
}

// The spare passes one large buffer from connection to connection: a batch
// of acks sent at once allocates nothing once the worker has one.
TEST(OutputBuffer, ABufferThatGrowsTakesTheSpareWithWhatItHolds) {
  OutputBuffer::Spare spare;
  OutputBuffer first, second;
  append(first, spare, std::string(70000, 'a'));
  first.consume(70000, spare);
  ASSERT_GE(spare.capacity, 70000u);
  std::byte* memory = spare.data.get();
  append(second, spare, "held ");  // its own small buffer
  append(second, spare, std::string(60000, 'b'));
  EXPECT_EQ(second.bytes().data(), memory) << "the spare's memory, not a new allocation";
  EXPECT_EQ(contents(second), "held " + std::string(60000, 'b'));
  EXPECT_LE(spare.capacity, OutputBuffer::kKeptBytes) << "the spare now holds its small one";
}

// A spare no larger than kMaxSpareBytes, and the larger of two kept.
TEST(OutputBuffer, TheSpareKeepsTheLargerBufferUpToItsBound) {
  OutputBuffer::Spare spare;
  OutputBuffer big, bigger, huge;
  append(big, spare, std::string(10000, 'a'));
  append(bigger, spare, std::string(100000, 'b'));
  append(huge, spare, std::string(OutputBuffer::kMaxSpareBytes + 1, 'c'));
  size_t biggerCapacity = bigger.capacity();
  bigger.consume(100000, spare);
  big.consume(10000, spare);
  EXPECT_EQ(spare.capacity, biggerCapacity) << "a smaller one is freed";
  huge.consume(OutputBuffer::kMaxSpareBytes + 1, spare);
  EXPECT_EQ(huge.capacity(), 0u);
  EXPECT_EQ(spare.capacity, biggerCapacity) << "past the bound: freed";
}

TEST(OutputBuffer, ClearFreesEverything) {
  OutputBuffer out;
  OutputBuffer::Spare spare;
  append(out, spare, "owed");
  out.clear();
  EXPECT_EQ(out.size(), 0u);
  EXPECT_EQ(out.capacity(), 0u);
}

}  // namespace
}  // namespace tcpfork
