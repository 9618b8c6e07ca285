#pragma once
// Connection: one accepted client, owned by its Worker and used only on the
// worker's loop. Data flows one way: socket -> the worker's scratch buffer ->
// decoder (in place; FrameInput keeps what is not yet a whole frame) ->
// handler -> encoder (the worker's Dispatcher) -> AckQueue -> socket. The
// acks of a read batch are sent
// as its callback returns, so a lone request is answered at once (unless
// its handler answers it later, below).
//
// A handler may answer a request later (Handler::kPending). Acks then keep
// request order: the acks after a pending one are held with it (AckQueue),
// count against output_high_water like unsent output, and go out as the
// front of them completes. A connection with handler.max_pending requests
// pending stops decoding (the rest waits in FrameInput) and reading until
// one completes, and every connection of a worker its BufferBudget has
// gated does so until the gate opens. So does a connection whose callback
// has spent its TimeSlice in the module: it yields, and decodes the rest on
// the next loop pass.
//
// Lifecycle. kOpen serves. A protocol error, a graceful drain, the peer's
// half-close (EOF), or no memory for its unfinished frame or for the acks of
// a read moves it to kFlushing: nothing more is decoded or read, and the acks
// owed are still sent, once the pending requests among them complete. Once
// they are out, a peer that had half-closed is closed at once; any other
// gets our FIN, and the connection lingers (kLingering), reading and
// discarding until the peer closes or kLingerTimeout ends it, so that
// closing never resets a peer still reading our acks. A read or send error,
// an idle or pending timeout, a frame trickling in for over idle_timeout,
// being shed for the buffer budget, or no memory for its held acks or its
// timers closes it at once. close() disarms every event, drops the pending
// requests (PendingTable) and moves to kClosed, in which nothing runs; the
// Worker frees the object after the callback that closed it has returned.

#include <event2/event.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <utility>

#include "base/event_ptr.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "contract/worker_settings.h"
#include "worker/ack_queue.h"
#include "worker/buffer_budget.h"
#include "worker/connection_deadline.h"
#include "worker/connection_stats.h"
#include "worker/dispatcher.h"
#include "worker/frame_input.h"
#include "worker/last_sent.h"
#include "worker/next_pass.h"
#include "worker/receive_clock.h"
#include "worker/socket_events.h"

namespace tcpfork {

// One read() asks for this much; a batch is at most kReadsPerBatch reads, so a
// connection flooding us cannot starve the others on the loop.
inline constexpr size_t kReadChunk = 64 * 1024;

// What the connections of one worker share. The Worker builds it once, in
// its constructor, and owns every part it names; which parts these are never
// changes, and each part keeps its own state.
struct ConnectionContext {
  event_base* base;
  // limits.idleTimeout as a libevent common timeout (null when 0 = none):
  // every connection's idle timer then sits in one queue, re-armed in O(1)
  // on each read instead of being sifted through the timer heap.
  const timeval* idleTimer;
  const WorkerSettings& settings;  // limits, handler.max_pending, handler.pending_timeout
  Dispatcher& dispatcher;
  BufferBudget& budget;
  const ConnectionStats& stats;
  ReceiveClock& receiveClock;
  // Every read of every connection lands here and is decoded before the
  // callback returns (one loop, one callback at a time), so no connection
  // needs a read buffer of its own (kReadChunk bytes).
  std::span<std::byte> scratch;
  RateLimitedLog& peerLog;  // for errors a peer can provoke
  // Takes the connection of `fd`, closed, to be freed once the running
  // callback has returned; it returns at once.
  std::function<void(int fd)> closed;
};

class Connection {
 public:
  // `id` is unique in the process (the handler's connection id).
  Connection(const ConnectionContext& context, UniqueFd fd, uint64_t id);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts reading. Throws std::system_error when libevent cannot add the event.
  void start();
  // Graceful stop: read nothing more, send the acks already owed, then
  // close as kFlushing does. A connection that has yet to complete its first
  // request (just accepted: its client sent it, or is about to) is first
  // given kFirstRequestGrace to do so, and is answered, as nginx waits for a
  // new connection's first request before it closes idle ones.
  void drain();

  int fd() const { return fd_.get(); }
  // The handler's result for the held ack at `sequence` (PendingTable::Entry).
  // True the first time since the last flushCompleted(): the caller flushes
  // it then, once for a whole run of completions (one send, not one each).
  bool complete(uint64_t sequence, uint8_t result);
  void flushCompleted();
  // What it counts in the worker's BufferBudget (FrameInput::memoryBytes
  // and AckQueue::memoryBytes), as of its last callback.
  size_t buffered() const { return share_.bytes(); }
  // Closed for the worker's memory budget: counted, and logged by the budget.
  void shed();
  // The worker's gate has opened: decode what waited, and read again.
  void resume() { flushCompleted(); }

 private:
  enum class State : uint8_t { kOpen, kFlushing, kLingering, kClosed };
  friend class Dispatcher;  // the Sink of its runs (dispatcher.h)

  // libevent's callback for each entry point: runs it, then account().
  template <void (Connection::*kOn)(short what)>
  static void onEvent(evutil_socket_t, short what, void* self) {
    auto* connection = static_cast<Connection*>(self);
    (connection->*kOn)(what);
    connection->account();
  }
  void onRead(short what);
  void onWrite(short what);
  void onDeadline(short);
  void onResume(short);
  // Reports what it holds to the budget; called as each entry point returns.
  void account();
  void onReadable();
  void onIdleTimeout();
  void discardInput();

  // Reads one batch and decodes it; returns false when the peer closed or failed.
  bool readBatch();
  // Decodes `in` behind what FrameInput holds; returns the frames decoded.
  uint64_t decodeInput(std::span<const std::byte> in);
  // Answers the whole frames at the front of `bytes` (the Dispatcher) and
  // returns the bytes they take; a protocol error answers those before it
  // and begins the flush.
  size_t decodeFrames(std::span<const std::byte> bytes, uint64_t& frames);
  // After a read batch: closes the connection when a frame has trickled in
  // for longer than idle_timeout (FrameInput::afterRead).
  void enforceFrameDeadline(uint64_t framesDecoded);
  void closeTrickling();
  // Arms deadline_ for the frame being trickled in (while the connection is
  // open and reading) and the pending requests.
  void armDeadline();

  // The Dispatcher's Sink: where a run's acks go, in order.
  AckQueue& acks() { return acks_; }
  void acksWritten(size_t n) { acks_.commit(n, receivedNs_); }
  uint64_t id() const { return id_; }
  uint64_t receivedNs() const { return receivedNs_; }
  // The start of a run of frames: just after a read, its clock reading.
  uint64_t runStartNs() { return readAtNs_ != 0 ? std::exchange(readAtNs_, 0) : context_.stats.now(); }
  // Queues `request`'s ack (or its pending place) behind the held ones;
  // false when decoding must stop (paused, or closed).
  bool hold(const protocol::Request& request, uint64_t token, int result, uint64_t decodedNs);

  // Moves the completed acks at the front of the held ones to the output.
  void releaseHeld();
  bool paused() const {
    return acks_.pending() >= context_.settings.handler.maxPending || context_.budget.gated();
  }
  // Input waits in FrameInput, undecoded, and no more is read: paused, or
  // yielded the loop (and resume_ is armed).
  bool holdingInput() const { return paused() || yielded_; }
  FrameInput::Flow inputFlow() const {
    if (state_ != State::kOpen) return FrameInput::Flow::kStop;
    return holdingInput() ? FrameInput::Flow::kHold : FrameInput::Flow::kDecode;
  }
  // Arms resume_ to decode the held input on the next loop pass.
  void scheduleResume();
  // Decodes what waited in FrameInput (unpaused, or resumed after a yield)
  // as a read would, in a time slice of its own.
  void decodeBacklog();
  // The pending requests now belong to nobody: their completions are dropped.
  void dropPendings();
  void failProtocol(protocol::DecodeError error);
  // Sends what the socket takes, then arms or disarms events to match.
  void flush();
  // Reads nothing more; the acks owed are still sent, then the connection closes.
  void beginFlush();
  void stopReading();
  void resumeReading();
  // Disarms every event and hands the connection to the Worker to be freed.
  void close();
  const ConnectionLimits& limits() const { return context_.settings.limits; }
  std::chrono::milliseconds pendingTimeout() const { return context_.settings.handler.pendingTimeout; }

  const ConnectionContext& context_;
  UniqueFd fd_;
  uint64_t id_;
  // The write event is armed while the socket took less than we had. The
  // members after it sit in its tail padding (no_unique_address lets them):
  // a connection's size is the worker's memory per idle connection.
  [[no_unique_address]] SocketEvents events_;
  State state_ = State::kOpen;
  bool peerClosed_ = false;
  bool yielded_ = false;      // resume_ is armed to decode the held input
  bool flushQueued_ = false;  // in the worker's list of connections to flush after completions
  bool drainAfterFirst_ = false;  // draining; flush once the first request is in
  NextPass resume_;
  ConnectionDeadline deadline_;
  FrameInput input_;
  AckQueue acks_;
  BufferBudget::Share share_;
  // The kernel's receive stamp of the last read, on CLOCK_MONOTONIC
  // (ReceiveClock): the frames it completes, its own and a tail's, are
  // timed from it, and their queueing delay judged from it when shedding.
  uint64_t receivedNs_ = 0;
  // CLOCK_MONOTONIC ns of the last read, until its frames are decoded: the
  // start of their run (0: read the clock).
  uint64_t readAtNs_ = 0;
  // CLOCK_MONOTONIC ns at the end of the built-in ack's last run of frames,
  // until the next system call: flush() sends at that time (0: read the clock).
  uint64_t decodedAtNs_ = 0;
  // A peer answered just now is waiting on us, not idle (see onRead).
  LastSent lastSent_;
  uint64_t framesDecoded_ = 0;
  // kLingering ends here at the latest, however much the peer keeps sending
  // (a persistent event's timeout restarts on every read).
  std::chrono::steady_clock::time_point lingerUntil_;
};

}  // namespace tcpfork
