#include "worker/output_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace tcpfork {
namespace {

void append(OutputBuffer& out, const std::string& text) {
  std::byte* at = out.reserve(text.size());
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
  append(out, "first ");
  append(out, "second ");
  out.consume(3);
  append(out, "third");
  EXPECT_EQ(contents(out), "st second third");
  out.consume(out.size());
  EXPECT_EQ(out.size(), 0u);
}

TEST(OutputBuffer, AReserveLeftUncommittedAddsNothing) {
  OutputBuffer out;
  append(out, "ack");
  ASSERT_NE(out.reserve(1000), nullptr);
  out.commit(0);
  EXPECT_EQ(contents(out), "ack");
}

TEST(OutputBuffer, ReclaimsSentBytesBeforeGrowing) {
  OutputBuffer out;
  append(out, std::string(48, 'a'));
  size_t capacity = out.capacity();
  out.consume(40);
  append(out, std::string(30, 'b'));  // fits once the 40 sent bytes are reclaimed
  EXPECT_EQ(out.capacity(), capacity);
  EXPECT_EQ(contents(out), std::string(8, 'a') + std::string(30, 'b'));
}

// An exchange allocates nothing once the buffer exists, and a burst's memory
// goes back once it is sent.
TEST(OutputBuffer, KeepsASmallBufferAndFreesALargeOneOnceEmpty) {
  OutputBuffer out;
  append(out, std::string(14, 'x'));
  size_t small = out.capacity();
  out.consume(14);
  EXPECT_EQ(out.capacity(), small);
  append(out, std::string(OutputBuffer::kKeptBytes + 1, 'y'));
  EXPECT_GT(out.capacity(), OutputBuffer::kKeptBytes);
  out.consume(OutputBuffer::kKeptBytes);
  EXPECT_GT(out.capacity(), 0u) << "not empty yet";
  out.consume(1);
  EXPECT_EQ(out.capacity(), 0u);
  append(out, "again");
  EXPECT_EQ(contents(out), "again");
}

TEST(OutputBuffer, ClearFreesEverything) {
  OutputBuffer out;
  append(out, "owed");
  out.clear();
  EXPECT_EQ(out.size(), 0u);
  EXPECT_EQ(out.capacity(), 0u);
}

}  // namespace
}  // namespace tcpfork
