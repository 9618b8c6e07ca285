// libFuzzer target: the frame decoder on arbitrary bytes, split at arbitrary
// points. Invariants checked on every input:
//   - it never reads past the input (ASan) and never asks to buffer more than
//     max_frame_bytes before deciding;
//   - a frame's size is what its header says and fits in what was given;
//   - the frames and the error found are the same whatever the split.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "protocol/codec.h"

using namespace tcpfork::protocol;

namespace {

constexpr size_t kMaxFrame = 4096;

#define CHECK(condition) \
  do {                   \
    if (!(condition)) std::abort(); \
  } while (0)

struct Outcome {
  std::vector<std::string> frames;  // command:id:payload
  int error = -1;
  bool operator==(const Outcome&) const = default;
};

// Streams `bytes` into the decoder in chunks of the given sizes (cycled).
Outcome replay(const uint8_t* data, size_t size, const std::vector<size_t>& chunks) {
  Outcome out;
  std::vector<std::byte> pending;
  size_t offset = 0;
  size_t c = 0;
  while (offset < size) {
    size_t n = std::min(chunks[c++ % chunks.size()], size - offset);
    pending.insert(pending.end(), reinterpret_cast<const std::byte*>(data + offset),
                   reinterpret_cast<const std::byte*>(data + offset + n));
    offset += n;
    size_t used = 0;
    for (;;) {
      std::span<const std::byte> view(pending.data() + used, pending.size() - used);
      auto d = decodeRequest(view, kMaxFrame);
      if (d.status == DecodeStatus::kError) {
        out.error = int(d.error);
        return out;
      }
      if (d.status == DecodeStatus::kNeedMore) {
        CHECK(d.size > view.size() && d.size <= kMaxFrame);
        break;
      }
      CHECK(d.size >= kMinRequestFrameBytes && d.size <= view.size() && d.size <= kMaxFrame);
      CHECK(d.message.payload.data() + d.message.payload.size() == view.data() + d.size);
      out.frames.push_back(std::to_string(int(d.message.command)) + ":" + std::string(asText(d.message.id)) + ":" +
                           std::string(asText(d.message.payload)));
      used += d.size;
    }
    pending.erase(pending.begin(), pending.begin() + long(used));
    // Nothing undecided is ever held beyond one frame's worth.
    CHECK(pending.size() <= kMaxFrame);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first two bytes choose the split; the rest is the stream.
  std::vector<size_t> split = {size_t(data[0] % 31) + 1, size_t(data[1] % 7) + 1};
  const uint8_t* stream = data + 2;
  size_t length = size - 2;
  Outcome whole = replay(stream, length, {length ? length : 1});
  CHECK(replay(stream, length, split) == whole);
  CHECK(replay(stream, length, {1}) == whole);

  // The ack decoder on the same bytes: bounded, and sizes consistent.
  auto ack = decodeAck(std::span<const std::byte>(reinterpret_cast<const std::byte*>(stream), length), kMaxFrame);
  if (ack.status == DecodeStatus::kFrame) CHECK(ack.size == kAckFrameBytes && ack.size <= length);
  return 0;
}
