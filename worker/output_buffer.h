#pragma once
// OutputBuffer: a connection's unsent acks, one contiguous run of bytes, so
// the whole of it always goes out in one send(2). Acks are encoded straight
// into it (reserve, then commit what was written) and sent at the end of the
// callback; in request/response the ack goes out at once and the buffer is
// empty again, keeping a small capacity for the next one, so an exchange
// allocates nothing. Past kKeptBytes its memory is freed once it is empty, so
// a connection that once pipelined hard does not hold that much while idle.
// muduo's Buffer and Redis's client reply buffer are shaped the same way.

#include <cstddef>
#include <memory>
#include <span>

namespace tcpfork {

class OutputBuffer {
 public:
  // An empty buffer keeps at most this much memory.
  static constexpr size_t kKeptBytes = 4096;

  // Room for `n` more bytes at the end, to be followed by commit(); null
  // when there is no memory for it (what is buffered is kept).
  std::byte* reserve(size_t n);
  // The first `n` bytes of the last reserve() are now buffered.
  void commit(size_t n) { end_ += n; }
  // What is buffered, oldest first.
  std::span<const std::byte> bytes() const { return {data_.get() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  size_t capacity() const { return capacity_; }
  // The first `n` bytes went to the socket.
  void consume(size_t n);
  // Drops everything and frees the memory.
  void clear();

 private:
  std::unique_ptr<std::byte[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;  // sent bytes before it wait to be reclaimed
  size_t end_ = 0;
};

}  // namespace tcpfork
