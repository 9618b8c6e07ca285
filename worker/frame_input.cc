#include "worker/frame_input.h"

#include <new>

#include "protocol/codec.h"

namespace tcpfork {

std::optional<FrameInput::Clock::time_point> FrameInput::deadline() const {
  if (!since_ || limits_.idleTimeout.count() == 0) return std::nullopt;
  return *since_ + limits_.idleTimeout;
}

void FrameInput::clear() {
  tail_ = std::vector<std::byte>();  // frees it, where clear() would keep the capacity
}

size_t FrameInput::missing() const {
  auto decoded = protocol::decodeRequest(tail_, limits_.maxFrameBytes);
  return decoded.status == protocol::DecodeStatus::kNeedMore ? decoded.size - tail_.size() : 0;
}

void FrameInput::consume(size_t used) {
  // More than it holds: the decoder closed the connection, which cleared it.
  if (used >= tail_.size()) {
    clear();
  } else {
    tail_.erase(tail_.begin(), tail_.begin() + static_cast<ptrdiff_t>(used));
  }
}

bool FrameInput::append(std::span<const std::byte> bytes) {
  size_t needed = tail_.size() + bytes.size();
  try {
    if (needed > tail_.capacity()) {
      // The frame's length, once its header is here. A length that is not
      // valid sizes the tail to what it holds, and the decoder fails it next.
      size_t frame = needed;
      if (needed >= protocol::kLengthBytes) {
        std::byte header[protocol::kLengthBytes];
        size_t fromTail = std::min(tail_.size(), protocol::kLengthBytes);
        std::copy_n(tail_.begin(), fromTail, header);
        std::copy_n(bytes.begin(), protocol::kLengthBytes - fromTail, header + fromTail);
        auto decoded = protocol::decodeRequest(std::span<const std::byte>(header), limits_.maxFrameBytes);
        if (decoded.status == protocol::DecodeStatus::kNeedMore) frame = std::max(needed, decoded.size);
      }
      tail_.reserve(std::max(needed, std::min(2 * tail_.capacity(), frame)));
    }
    tail_.insert(tail_.end(), bytes.begin(), bytes.end());
    return true;
  } catch (const std::bad_alloc&) {
    clear();
    return false;
  }
}

}  // namespace tcpfork
