#pragma once
// Connection: one accepted client, owned by its Worker and used only on the
// worker's loop. Data flows one way: socket -> the worker's scratch buffer ->
// decoder (in place) -> handler -> encoder -> output buffer -> socket. Only
// an unfinished last frame outlives the read, in a tail of its own size, so a
// connection between frames holds no input buffer. Acks are flushed at the
// end of every read batch, so a lone request is answered at once.
//
// A handler may answer a request later (Handler::kPending). Acks then keep
// request order: the acks after a pending one wait in held_ with it, count
// against output_high_water like unsent output, and go out as the front of
// held_ completes. A connection with handler.max_pending requests pending
// stops decoding (the rest waits in the tail) and reading until one completes.
// So does a connection whose callback has spent its TimeSlice in the module:
// it yields, and decodes the rest of its tail on the next loop pass.
//
// Lifecycle: kOpen serves; a protocol error, a graceful drain or a read error
// moves to kFlushing (no more reads, owed acks still sent); once they are out
// the write side is shut and kLingering discards input until the peer closes,
// so closing never resets a peer that is still reading our acks. close()
// disarms both events and moves to kClosed, in which nothing runs; the Worker
// frees the object after the callback that closed it has returned. Flushing
// also waits for the pending requests; a close drops them (PendingTable).

#include <event2/event.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/event_ptr.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "worker/ack_clock.h"
#include "worker/clock_epochs.h"
#include "worker/handler.h"
#include "worker/handler_module.h"
#include "worker/held_acks.h"
#include "worker/output_buffer.h"
#include "worker/pending_table.h"
#include "worker/slot_publisher.h"
#include "worker/time_slice.h"
#include "contract/worker_settings.h"

namespace tcpfork {

// One read() asks for this much; a batch is at most kReadsPerBatch reads, so a
// connection flooding us cannot starve the others on the loop.
inline constexpr size_t kReadChunk = 64 * 1024;

// What every connection of one worker shares; owned by the Worker.
struct ConnectionContext {
  event_base* base = nullptr;
  Handler* handler = nullptr;
  ConnectionLimits limits;
  stats::Slot* stats = nullptr;                // null: stats off (benchmarking)
  RateLimitedLog* peerLog = nullptr;          // for errors a peer can provoke
  uint64_t* connections = nullptr;            // the worker's open-connection count
  // Takes the connection of `fd`, closed, to be freed once the running
  // callback has returned; it returns at once.
  std::function<void(int fd)> closed;
  // limits.idleTimeout as a libevent common timeout (null when 0 = none): every
  // connection's idle timer then sits in one queue, re-armed in O(1) on each
  // read instead of being sifted through the timer heap. Set by the Worker.
  const timeval* idleTimer = nullptr;
  // Every read of every connection lands here and is decoded before the
  // callback returns (one loop, one callback at a time), so no connection
  // needs a read buffer of its own.
  std::vector<std::byte> scratch = std::vector<std::byte>(kReadChunk);
  // `handler` itself when it is a module, else null (the built-in ack): the
  // per-request call then goes straight to it, not through the vtable.
  HandlerModule* module = nullptr;
  PendingTable* pendings = nullptr;  // the worker's
  size_t maxPending = 1024;          // per connection: handler.max_pending
  // handler.pending_timeout (0 = none): see Connection::armDeadline.
  std::chrono::milliseconds pendingTimeout{0};
  uint64_t lastConnectionId = 0;     // connection ids are unique in the process
  // A read came back without a kernel receive stamp (said once per worker).
  bool missingTimestampLogged = false;
  // The kernel's stamps, on the wall clock, mapped to the monotonic one.
  ClockEpochs clocks{};
  // The worker's budget, max_buffered_bytes: what its connections hold in
  // unfinished frames, unsent acks and acks held behind a pending request
  // (their entries' memory, not their 14 bytes on the wire), summed as each
  // callback returns
  // (Connection::account). Past the budget, overBudget() sheds connections
  // at once (BufferBudget): they close, and are freed after the callback.
  size_t bufferedBytes = 0;
  size_t maxBufferedBytes = SIZE_MAX;
  std::function<void()> overBudget = [] {};
  // Requests pending in the handler count against the same budget, with the
  // table that tracks them (PendingTable::memoryBytes), but closing their
  // connections would free no memory (the table keeps each token until the
  // module completes it): past the budget the worker is gated instead, and
  // every connection stops reading and decoding until enough complete
  // (BufferBudget). overPending is called as a new pending request may have
  // crossed the budget.
  bool gated = false;
  std::function<void()> overPending = [] {};
  // The running callback's share of the loop, with a module (time_slice.h).
  TimeSlice slice{};
};

class Connection {
 public:
  Connection(ConnectionContext& context, UniqueFd fd);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts reading. Throws std::system_error when libevent cannot add the event.
  void start();
  // Graceful stop: read nothing more, send the acks already owed, then close.
  // A connection that has yet to complete its first request (just accepted:
  // its client sent it, or is about to) is first given kFirstRequestGrace to
  // do so, and is answered, as nginx waits for a new connection's first
  // request before it closes idle ones.
  void drain();

  int fd() const { return fd_.get(); }
  // The handler's result for the held ack at `sequence` (PendingTable::Entry).
  // True the first time since the last flushCompleted(): the caller flushes
  // it then, once for a whole run of completions (one send, not one each).
  bool complete(uint64_t sequence, uint8_t result);
  void flushCompleted();
  // What this connection holds that its peer decides the size of (its
  // unfinished frame and unsent acks), as of its last callback.
  size_t buffered() const { return accounted_; }
  // Closed for the worker's memory budget: counted, and logged by the Worker.
  void shed();
  // The worker's gate has opened: decode what waited, and read again.
  void resume() { flushCompleted(); }

 private:

  enum class State { kOpen, kFlushing, kLingering, kClosed };

  static void onReadEvent(evutil_socket_t fd, short what, void* self);
  static void onWriteEvent(evutil_socket_t fd, short what, void* self);
  void onRead(short what);
  void onWrite(short what);
  // Brings context_.bufferedBytes up to date with what this connection holds
  // now; called as each entry point returns.
  void account();
  void onReadable();
  void onWritable();
  void onIdleTimeout();
  bool answeredJustNow() const;
  // Whether the socket is readable (POLLIN: input, EOF or an error) or
  // writable (POLLOUT) right now. An idle timer that fires after the worker
  // has not run for longer than the timeout (descheduled, stopped, busy) is
  // reported alone, even when the peer sent or read meanwhile: such a peer
  // is not idle, so the timeout checks before closing.
  bool socketReady(short events) const;
  void discardInput();

  // Reads one batch and decodes it; returns false when the peer closed or failed.
  bool readBatch();
  // Decodes the tail completed from `in`, then `in` in place, and keeps an
  // unfinished last frame in tail_. Returns the number of frames decoded.
  uint64_t decodeInput(std::span<const std::byte> in);
  // Answers the whole frames at the front of `bytes` and returns the bytes
  // they take; a protocol error answers those before it and begins the flush.
  size_t decodeFrames(std::span<const std::byte> bytes, uint64_t& frames);
  template <bool kModule>
  size_t decodeFramesWith(std::span<const std::byte> bytes, uint64_t& frames);
  // Appends to tail_, growing it by doubling but never past the frame being
  // completed, so what the budget counts (its capacity) is what it holds
  // give or take half. Out of memory loses the frame, and with it the stream.
  void appendTail(std::span<const std::byte> bytes);
  // Closes the connection when a frame has trickled in for longer than idle_timeout.
  void enforceFrameDeadline(uint64_t framesDecoded);
  // Two waits that reads alone cannot end: a frame begun and not finished
  // (waitingSince_, bounded by idle_timeout: a 1-byte drip resets the idle
  // timer with every byte), and pending requests of which none completes
  // (pendingSince_, bounded by handler.pending_timeout: reading may be
  // paused, so neither silence nor a peer's close is ever seen). deadline_
  // fires at the earlier of the two ends.
  void armDeadline();
  static void onDeadlineEvent(evutil_socket_t fd, short what, void* self);
  void onDeadline();
  void recordBatch(uint64_t requests, uint64_t acks, uint64_t elapsedNs);
  // The receive stamp of the read just made (its own time when the kernel
  // gave none; see rx_timestamp.h).
  void stampRead(uint64_t kernelNs);
  // Queues `request`'s ack (or its pending place) behind the held ones.
  void hold(const protocol::Request& request, uint64_t token, int result, uint64_t decodedNs);
  // Moves the completed acks at the front of held_ to the output.
  void releaseHeld();
  size_t heldCount() const { return held_ ? held_->count() : 0; }
  size_t heldBytes() const { return heldCount() * protocol::kAckFrameBytes; }
  bool paused() const { return (held_ && held_->pending() >= context_.maxPending) || context_.gated; }
  // Input waits in the tail, undecoded, and no more is read: paused, or
  // yielded the loop (and resume_ is armed).
  bool holdingInput() const { return paused() || yielded_; }
  // After each of a module's requests: true (and yielded_ set) once this
  // callback has spent its time slice; the worker's heartbeat is stamped then.
  bool yieldNow();
  // Arms resume_ to decode the tail on the next loop pass.
  void scheduleResume();
  static void onResumeEvent(evutil_socket_t fd, short what, void* self);
  void onResume();
  // Decodes what waited in the tail (unpaused, or resumed after a yield) as
  // a read would, in a time slice of its own.
  void decodeBacklog();
  // Unsent acks in bytes, written or held: what the watermarks bound.
  size_t queuedBytes() const;
  // The pending requests now belong to nobody: their completions are dropped.
  void dropPendings();
  // (Re)starts `ev` with the idle timeout.
  void armIdle(event* ev);
  void failProtocol(protocol::DecodeError error);
  // Writes what the socket takes, then arms or disarms events to match.
  void flush();
  // Reads nothing more; the acks owed are still sent, then the connection closes.
  void beginFlush();
  void stopReading();
  void resumeReading();
  // Disarms both events and hands the connection to the Worker to be freed.
  void close();

  ConnectionContext& context_;
  UniqueFd fd_;
  EventPtr readEvent_;
  EventPtr writeEvent_;
  // A zero timeout: the next loop pass, after every ready connection and the
  // worker's timers. Made the first time the connection yields.
  EventPtr resume_;
  // Made the first time a wait above needs it (see armDeadline).
  EventPtr deadline_;
  std::optional<std::chrono::steady_clock::time_point> deadlineAt_;  // while armed
  // The unfinished frame at the end of the last read (empty, with no
  // capacity, between frames).
  std::vector<std::byte> tail_;
  OutputBuffer output_;
  // Made when a request is first deferred (see held_acks.h).
  std::unique_ptr<HeldAcks> held_;
  // When the acks in output_ were received (stats on only).
  AckClock ackClock_;
  // The kernel's receive stamp of the last read, on CLOCK_MONOTONIC (see
  // clock_epochs.h): the frames it completes, its own and a tail's, are
  // timed from it.
  uint64_t receivedNs_ = 0;
  // CLOCK_MONOTONIC ns of the last read, until its frames are decoded: the
  // start of their run (0: read the clock).
  uint64_t readAtNs_ = 0;
  // CLOCK_MONOTONIC ns at the end of the built-in ack's last run of frames,
  // until the next system call: flush() sends at that time (0: read the clock).
  uint64_t decodedAtNs_ = 0;
  uint64_t id_;
  size_t accounted_ = 0;  // this connection's share of context_.bufferedBytes
  State state_ = State::kOpen;
  bool reading_ = false;
  bool writing_ = false;  // writeEvent_ is armed: the socket took less than we had
  bool peerClosed_ = false;
  bool yielded_ = false;  // resume_ is armed to decode the tail
  bool flushQueued_ = false;  // in the worker's list of connections to flush after completions
  // CLOCK_MONOTONIC_COARSE ms of the last bytes sent: a peer answered just
  // now is waiting on us, not idle (see onReadEvent).
  uint64_t lastSentMs_ = 0;
  uint64_t framesDecoded_ = 0;
  bool drainAfterFirst_ = false;  // draining; flush once the first request is in
  // kLingering ends here at the latest, however much the peer keeps sending
  // (a persistent event's timeout restarts on every read).
  std::chrono::steady_clock::time_point lingerUntil_;
  // Since when tail_ has held an unfinished frame with no frame completed:
  // a peer trickling bytes (slowloris) resets the idle timer with every byte,
  // so a frame must also complete within idle_timeout.
  std::optional<std::chrono::steady_clock::time_point> waitingSince_;
  // Since the last completion of one of its pending requests (or the first
  // deferral), while it has any.
  std::optional<std::chrono::steady_clock::time_point> pendingSince_;
};

}  // namespace tcpfork
