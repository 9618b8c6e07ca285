// AckQueue, a connection's acks on their way out: acks held behind a pending
// request keep request order with those answered at once, the budget sees
// the output's bytes and the held entries' memory, a connection that always
// has a request pending does not grow without end, and each ack is timed
// from its own request's receive stamp when its last byte is sent.

#include "worker/ack_queue.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "protocol/codec.h"
#include "stats/histogram.h"

namespace tcpfork {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;
constexpr size_t kAck = protocol::kAckFrameBytes;

// A request as the frame loop sees it; `id` stays alive with it (hold copies it).
struct TestRequest {
  protocol::Id id;
  protocol::Request request;
  explicit TestRequest(uint64_t n, protocol::Command command = protocol::Command::kSubmit) : id(protocol::formatId(n)) {
    request.command = command;
    request.id = protocol::IdView(id);
  }
};

// Encodes acks for ids first..first+n-1, answered at once, as the frame loop does.
void answer(AckQueue& acks, OutputBuffer::Spare& spare, uint64_t first, size_t n, uint64_t receivedNs) {
  std::byte* out = acks.reserve(n, spare);
  ASSERT_NE(out, nullptr);
  for (size_t i = 0; i < n; ++i) {
    protocol::encodeAck(protocol::Command::kSubmitAck, protocol::formatId(first + i), protocol::kResultOk,
                        out + i * kAck);
  }
  acks.commit(n, receivedNs);
}

uint64_t hold(AckQueue& acks, uint64_t id, int result, uint64_t receivedNs = 0, uint64_t token = 0) {
  TestRequest r(id);
  return acks.hold(r.request, token == 0 ? id : token, result, receivedNs, 0);
}

// "id:result" for each ack in the output.
std::vector<std::string> unsent(const AckQueue& acks) {
  std::vector<std::string> out;
  auto bytes = acks.unsent();
  EXPECT_EQ(bytes.size() % kAck, 0u);
  for (size_t at = 0; at + kAck <= bytes.size(); at += kAck) {
    auto d = protocol::decodeAck(bytes.subspan(at), protocol::kDefaultMaxFrameBytes);
    EXPECT_EQ(d.status, protocol::DecodeStatus::kFrame);
    out.push_back(std::to_string(std::stoull(std::string(protocol::asText(d.message.id)))) + ":" +
                  std::to_string(d.message.result));
  }
  return out;
}

using Strings = std::vector<std::string>;

TEST(AckQueue, HeldAcksKeepRequestOrderBehindThoseAnsweredAtOnce) {
  ConnectionStats off(nullptr);
  AckQueue acks(off);
  OutputBuffer::Spare spare;
  answer(acks, spare, 1, 2, 0);
  uint64_t three = hold(acks, 3, Handler::kPending);
  hold(acks, 4, 9);  // answered, but behind 3
  EXPECT_EQ(unsent(acks), (Strings{"1:0", "2:0"}));
  EXPECT_EQ(acks.held(), 2u);
  EXPECT_EQ(acks.pending(), 1u);
  EXPECT_EQ(acks.ready(), 0u);
  EXPECT_EQ(acks.release(spare), 0u) << "nothing moves while the front is pending";

  acks.complete(three, 7);
  EXPECT_EQ(acks.ready(), 2u);
  EXPECT_EQ(acks.release(spare), 2u);
  EXPECT_EQ(unsent(acks), (Strings{"1:0", "2:0", "3:7", "4:9"}));
  EXPECT_EQ(acks.held(), 0u);

  // Completed out of order, released in order.
  uint64_t five = hold(acks, 5, Handler::kPending);
  uint64_t six = hold(acks, 6, Handler::kPending);
  acks.complete(six, 2);
  EXPECT_EQ(acks.release(spare), 0u);
  acks.complete(five, 1);
  EXPECT_EQ(acks.release(spare), 2u);
  EXPECT_EQ(unsent(acks), (Strings{"1:0", "2:0", "3:7", "4:9", "5:1", "6:2"}));

  acks.sent(3 * kAck + 5, 0, spare);
  EXPECT_EQ(acks.unsent().size(), 3 * kAck - 5) << "a partly sent ack stays until its last byte";
}

// A connection that never deferred a request has nothing to release (the
// worker's gate opening asks every connection to).
TEST(AckQueue, ReleaseWithNothingEverHeldMovesNothing) {
  ConnectionStats off(nullptr);
  AckQueue acks(off);
  OutputBuffer::Spare spare;
  EXPECT_EQ(acks.release(spare), 0u);
  answer(acks, spare, 1, 1, 0);
  EXPECT_EQ(acks.release(spare), 0u);
  EXPECT_EQ(unsent(acks), (Strings{"1:0"}));
  EXPECT_EQ(acks.held(), 0u);
  EXPECT_EQ(acks.pending(), 0u);
}

// A connection whose module never answers must not take its held acks
// anywhere: pending ones are handed back for orphaning, and none is sent.
TEST(AckQueue, DropHeldHandsBackEveryPendingToken) {
  ConnectionStats off(nullptr);
  AckQueue acks(off);
  OutputBuffer::Spare spare;
  hold(acks, 1, Handler::kPending, 0, 10);
  hold(acks, 2, Handler::kPending, 0, 11);
  hold(acks, 3, 0, 0, 12);
  hold(acks, 4, Handler::kPending, 0, 13);
  std::vector<uint64_t> orphaned;
  acks.dropHeld([&](uint64_t token) { orphaned.push_back(token); });
  EXPECT_EQ(orphaned, (std::vector<uint64_t>{10, 11, 13}));
  EXPECT_EQ(acks.held(), 0u);
  EXPECT_EQ(acks.pending(), 0u);
  EXPECT_EQ(acks.release(spare), 0u);
  EXPECT_TRUE(acks.unsent().empty());
}

// What the budget counts is what the connection holds for its peer: the
// output's unsent bytes (not its capacity: an exchange's small buffer is
// kept), and the held entries' memory (not their 14 bytes on the wire),
// which a burst gives back once it has gone out. The watermarks see the
// wire bytes of both.
TEST(AckQueue, TheBudgetSeesUnsentBytesAndHeldEntries) {
  ConnectionStats off(nullptr);
  AckQueue acks(off);
  OutputBuffer::Spare spare;
  EXPECT_EQ(acks.memoryBytes(), 0u);
  answer(acks, spare, 1, 3, 0);
  EXPECT_EQ(acks.memoryBytes(), 3 * kAck);
  EXPECT_EQ(acks.queuedBytes(), 3 * kAck);
  acks.sent(kAck + 1, 0, spare);
  EXPECT_EQ(acks.memoryBytes(), 2 * kAck - 1);
  acks.sent(2 * kAck - 1, 0, spare);
  EXPECT_EQ(acks.memoryBytes(), 0u) << "a sent exchange holds nothing for the budget";

  constexpr size_t kBurst = 10'000;
  std::vector<uint64_t> sequences;
  for (uint64_t id = 1; id <= kBurst; ++id) sequences.push_back(hold(acks, id, Handler::kPending));
  EXPECT_GE(acks.memoryBytes(), kBurst * sizeof(HeldAcks::Ack));
  EXPECT_EQ(acks.queuedBytes(), kBurst * kAck);
  for (uint64_t sequence : sequences) acks.complete(sequence, 0);
  EXPECT_EQ(acks.release(spare), kBurst);
  EXPECT_EQ(acks.queuedBytes(), kBurst * kAck);
  EXPECT_EQ(acks.memoryBytes(), kBurst * kAck) << "released: only the output's bytes are left";
  acks.sent(kBurst * kAck, 0, spare);
  EXPECT_EQ(acks.memoryBytes(), 0u);
  EXPECT_EQ(acks.queuedBytes(), 0u);
}

// A connection that always has one request pending never empties its held
// acks, so the sent front is cut as it goes: its memory stays bounded,
// and every completion still finds its own ack.
TEST(AckQueue, CompactsTheSentFrontOfAcksThatAreAlwaysHeld) {
  ConnectionStats off(nullptr);
  AckQueue acks(off);
  OutputBuffer::Spare spare;
  uint64_t oldest = hold(acks, 1, Handler::kPending);
  size_t peak = 0;
  constexpr uint64_t kRequests = 50'000;
  for (uint64_t id = 2; id <= kRequests; ++id) {
    uint64_t next = hold(acks, id, Handler::kPending);
    acks.complete(oldest, uint8_t(id % 256));
    ASSERT_EQ(acks.release(spare), 1u);
    ASSERT_EQ(unsent(acks), (Strings{std::to_string(id - 1) + ":" + std::to_string(id % 256)}));
    acks.sent(kAck, 0, spare);
    oldest = next;
    peak = std::max(peak, acks.memoryBytes());
  }
  EXPECT_EQ(acks.held(), 1u);
  // HeldAcks compacts once 4096 entries are sent with others held.
  EXPECT_LT(peak, 3 * 4096 * sizeof(HeldAcks::Ack)) << "without compaction: " << kRequests * sizeof(HeldAcks::Ack);
}

// Timed: each ack counts into request_duration from its own request's
// receive stamp, when its last byte is handed to the socket, whether it was
// answered at once or held; released acks count into handler_duration.
TEST(AckQueue, EachAckIsTimedFromItsOwnStampWhenItsLastByteIsSent) {
  auto slot = std::make_unique<stats::Slot>();
  ConnectionStats on(slot.get());
  AckQueue acks(on);
  OutputBuffer::Spare spare;
  answer(acks, spare, 1, 2, 1 * kSecond);
  uint64_t three = hold(acks, 3, Handler::kPending, 2 * kSecond);
  hold(acks, 4, 0, 3 * kSecond);
  acks.sent(2 * kAck, 11 * kSecond, spare);  // 1, 2: 10 s each
  acks.complete(three, 0);
  ASSERT_EQ(acks.release(spare), 2u);
  acks.sent(kAck + 3, 20 * kSecond, spare);  // 3: 18 s; 4 not yet wholly sent
  acks.sent(kAck - 3, 23 * kSecond, spare);  // 4: 20 s
  auto request = stats::HistogramView<stats::kRequestBoundsNs>::read(slot->totals.requestDuration);
  EXPECT_EQ(request.count(), 4u);
  EXPECT_EQ(request.sumNs, (10 + 10 + 18 + 20) * kSecond);
  auto handler = stats::HistogramView<stats::kHandlerBoundsNs>::read(slot->totals.handlerDuration);
  EXPECT_EQ(handler.count(), 2u) << "one for each released ack (a run answered at once is counted by its decoder)";
}

TEST(AckQueue, UntimedAcksCountNothing) {
  ConnectionStats off(nullptr);
  AckQueue acks(off);
  OutputBuffer::Spare spare;
  answer(acks, spare, 1, 2, 1 * kSecond);
  uint64_t three = hold(acks, 3, Handler::kPending, 2 * kSecond);
  acks.complete(three, 0);
  ASSERT_EQ(acks.release(spare), 1u);
  acks.sent(3 * kAck, 11 * kSecond, spare);
  EXPECT_TRUE(acks.unsent().empty());
}

TEST(AckQueue, ClearDropsTheOutputAndItsMemory) {
  ConnectionStats off(nullptr);
  AckQueue acks(off);
  OutputBuffer::Spare spare;
  answer(acks, spare, 1, 1000, 0);
  acks.clear();
  EXPECT_TRUE(acks.unsent().empty());
  EXPECT_EQ(acks.memoryBytes(), 0u);
  EXPECT_EQ(acks.queuedBytes(), 0u);
}

}  // namespace
}  // namespace tcpfork
