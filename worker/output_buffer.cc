#include "worker/output_buffer.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace tcpfork {

std::byte* OutputBuffer::reserve(size_t n, Spare& spare) {
  if (capacity_ - end_ >= n) return data_.get() + end_;
  size_t buffered = size();
  if (capacity_ - buffered >= n && buffered <= capacity_ / 2) {
    // Enough room once the sent bytes at the front are reclaimed, and moving
    // the rest costs less than the bytes freed.
    std::memmove(data_.get(), data_.get() + begin_, buffered);
  } else if (spare.capacity >= buffered + n && spare.capacity > capacity_) {
    if (buffered > 0) std::memcpy(spare.data.get(), data_.get() + begin_, buffered);
    std::swap(data_, spare.data);
    std::swap(capacity_, spare.capacity);
  } else {
    size_t grown = std::max({buffered + n, 2 * capacity_, size_t(64)});
    std::unique_ptr<std::byte[]> bigger(new (std::nothrow) std::byte[grown]);
    if (!bigger) return nullptr;
    if (buffered > 0) std::memcpy(bigger.get(), data_.get() + begin_, buffered);
    data_ = std::move(bigger);
    capacity_ = grown;
  }
  begin_ = 0;
  end_ = buffered;
  return data_.get() + end_;
}

void OutputBuffer::consume(size_t n, Spare& spare) {
  begin_ += n;
  if (begin_ < end_) return;
  begin_ = end_ = 0;
  if (capacity_ <= kKeptBytes) return;
  if (capacity_ > spare.capacity && capacity_ <= kMaxSpareBytes) {
    spare.data = std::move(data_);
    spare.capacity = capacity_;
    capacity_ = 0;
  } else {
    clear();
  }
}

void OutputBuffer::clear() {
  data_.reset();
  capacity_ = begin_ = end_ = 0;
}

}  // namespace tcpfork
