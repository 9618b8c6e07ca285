#pragma once
// OutputBuffer: a connection's unsent acks, one contiguous run of bytes, so
// the whole of it always goes out in one send(2). Acks are encoded straight
// into it (reserve, then commit what was written) and sent at the end of the
// callback; in request/response the ack goes out at once and the buffer is
// empty again, keeping a small capacity for the next one, so an exchange
// allocates nothing. Past kKeptBytes its memory leaves it once it is empty, so
// a connection that once pipelined hard does not hold that much while idle.
// muduo's Buffer and Redis's client reply buffer are shaped the same way.
//
// Where it goes: to the worker's Spare, which the next buffer to grow takes.
// A pipelining peer's every read batch needs room for a full read's acks
// (about 70 KiB), sent at once; made and freed per batch, that was over a
// gigabyte a second of allocation at tens of millions of acks a second, and
// with tcmalloc sampling heap profiles, a stack unwound for every 512 KiB of
// it. With the spare, a worker's busy connections pass one buffer along.

#include <cstddef>
#include <memory>
#include <span>

namespace tcpfork {

class OutputBuffer {
 public:
  // An empty buffer keeps at most this much memory.
  static constexpr size_t kKeptBytes = 4096;
  // The largest memory a Spare keeps: a buffer emptied past this is freed.
  static constexpr size_t kMaxSpareBytes = 1 << 20;

  // One buffer's memory between connections, owned by the worker (its
  // Dispatcher): at most kMaxSpareBytes, outside what max_buffered_bytes
  // counts (the bytes buffered, not the memory kept).
  struct Spare {
    std::unique_ptr<std::byte[]> data;
    size_t capacity = 0;
  };

  // Room for `n` more bytes at the end, to be followed by commit(); null
  // when there is no memory for it (what is buffered is kept). Growing, it
  // takes `spare`'s memory when that is large enough (and leaves its own).
  std::byte* reserve(size_t n, Spare& spare);
  // The first `n` bytes of the last reserve() are now buffered.
  void commit(size_t n) { end_ += n; }
  // What is buffered, oldest first.
  std::span<const std::byte> bytes() const { return {data_.get() + begin_, end_ - begin_}; }
  size_t size() const { return end_ - begin_; }
  size_t capacity() const { return capacity_; }
  // The first `n` bytes went to the socket. Emptied past kKeptBytes, its
  // memory goes to `spare` when larger than the spare's (else is freed).
  void consume(size_t n, Spare& spare);
  // Drops everything and frees the memory.
  void clear();

 private:
  std::unique_ptr<std::byte[]> data_;
  size_t capacity_ = 0;
  size_t begin_ = 0;  // sent bytes before it wait to be reclaimed
  size_t end_ = 0;
};

}  // namespace tcpfork
