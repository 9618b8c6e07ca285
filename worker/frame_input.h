#pragma once
// FrameInput: the bytes of one connection's request stream kept from one read
// to the next (the tail): a frame not yet whole or, while the connection
// holds its input, all it has not decoded; and how long an unfinished frame
// has been waited for. Owned by its Connection, used on the worker's loop.
// Pure: no fd, no libevent, no clock of its own.
//
// A read is decoded in place, in the worker's scratch buffer, and is dead once
// feed() returns; only a frame cut by the end of a read (or, while the
// connection holds its input, the undecoded rest of a read) is copied here.
// The next read tops the tail up to exactly one frame before the rest of that
// read is decoded in place: the header says how much a frame needs, so the
// top-up never takes a byte of the next frame, and a header itself cut short
// is topped up first to its length field. Between frames the tail holds no
// memory at all.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "contract/worker_settings.h"

namespace tcpfork {

class FrameInput {
 public:
  using Clock = std::chrono::steady_clock;

  // What the connection lets feed() do, asked before each step.
  enum class Flow : uint8_t {
    kDecode,  // hand whole frames to the decoder
    kHold,    // keep every byte, undecoded (paused, or yielded the loop)
    kStop,    // keep nothing more: the stream is over (protocol error, flush, close)
  };
  // How the wait for an unfinished frame stands after a read (afterRead).
  enum class Wait : uint8_t {
    kNone,     // no frame is unfinished, or it is still within idle_timeout
    kBegun,    // a new wait began: due at deadline()
    kExpired,  // the same frame has been unfinished for idle_timeout
  };

  // `limits` (max_frame_bytes, idle_timeout) outlives it: the Worker's.
  explicit FrameInput(const ConnectionLimits& limits) : limits_(limits) {}
  FrameInput(const FrameInput&) = delete;
  FrameInput& operator=(const FrameInput&) = delete;

  // Decodes the tail completed from `in`, then the rest of `in` in place,
  // and keeps what is left over as the tail: part of one frame, or while
  // flow() is kHold every byte not decoded, in order. `in` may be empty: the
  // tail alone is decoded (a connection taking up its held input).
  //   decode(std::span<const std::byte>) -> size_t: answers the whole frames
  //     at the front of the span and returns the bytes they take; it stops
  //     early only when the connection stops (a protocol error, no memory
  //     for acks, a close) or holds its input, and flow() then says which.
  //   flow() -> Flow
  // Returns 0, or the bytes of an unfinished frame there was no memory for:
  // they are dropped, and with them the stream.
  template <typename Decode, typename FlowOf>
  size_t feed(std::span<const std::byte> in, Decode&& decode, FlowOf&& flow);

  // After a read that completed `frames` frames. A peer that trickles a
  // frame in a byte at a time resets the connection's idle timer with every
  // byte (slowloris), so a frame a read leaves unfinished must also complete
  // within idle_timeout of that read. `now()` -> Clock::time_point is called
  // only while a frame is unfinished. Always kNone with idle_timeout 0.
  template <typename Now>
  Wait afterRead(uint64_t frames, Now&& now);
  // When the running wait is due: its start + idle_timeout (none while
  // none runs).
  std::optional<Clock::time_point> deadline() const;
  // Whether a frame is unfinished and its wait began idle_timeout or more
  // before `now`.
  bool expired(Clock::time_point now) const {
    return since_ && !tail_.empty() && now - *since_ >= limits_.idleTimeout;
  }
  // The wait was the connection's own (it held its input): the next read
  // begins a new one.
  void restartWait() { since_.reset(); }

  bool empty() const { return tail_.empty(); }
  size_t size() const { return tail_.size(); }
  // What it takes of the heap (its capacity): no more than the frame being
  // completed or, while the connection holds its input, than it holds.
  size_t memoryBytes() const { return tail_.capacity(); }
  // Drops the tail and frees its memory (a closed connection).
  void clear();

 private:
  // How many more bytes the tail needs to hold one whole frame (or enough
  // of a header to tell its length); 0 when it holds one, or an error.
  size_t missing() const;
  // Appends to the tail, growing it by doubling but never past the frame
  // being completed, so what the budget counts (its capacity) is what it
  // holds give or take half. False (and the tail dropped) without memory.
  bool append(std::span<const std::byte> bytes);
  // The first `used` bytes of the tail were decoded.
  void consume(size_t used);

  const ConnectionLimits& limits_;
  // Empty, with no capacity, between frames.
  std::vector<std::byte> tail_;
  // Since when the tail has held an unfinished frame with no frame
  // completed (while idle_timeout is set).
  std::optional<Clock::time_point> since_;
};

template <typename Decode, typename FlowOf>
size_t FrameInput::feed(std::span<const std::byte> in, Decode&& decode, FlowOf&& flow) {
  while (!tail_.empty() && flow() == Flow::kDecode) {
    if (size_t need = missing(); need > 0) {
      if (in.empty()) return 0;  // all of this read went into the tail
      size_t take = std::min(need, in.size());
      size_t before = tail_.size();
      if (!append(in.first(take))) return before + take;
      in = in.subspan(take);
      continue;
    }
    consume(decode(std::span<const std::byte>(tail_)));
  }
  Flow step = flow();
  if (step == Flow::kStop) return 0;
  // Holding, or a backlog in the tail: new bytes queue behind it, in order.
  size_t consumed = tail_.empty() && step == Flow::kDecode ? decode(in) : 0;
  if (consumed == in.size() || flow() == Flow::kStop) return 0;
  size_t before = tail_.size();
  return append(in.subspan(consumed)) ? 0 : before + (in.size() - consumed);
}

template <typename Now>
FrameInput::Wait FrameInput::afterRead(uint64_t frames, Now&& now) {
  if (limits_.idleTimeout.count() == 0) return Wait::kNone;
  if (tail_.empty()) {
    since_.reset();
    return Wait::kNone;
  }
  Clock::time_point at = now();
  if (frames > 0 || !since_) {
    since_ = at;
    return Wait::kBegun;
  }
  return at - *since_ >= limits_.idleTimeout ? Wait::kExpired : Wait::kNone;
}

}  // namespace tcpfork
