#pragma once
// Connection: one accepted client, owned by its Worker and used only on the
// worker's loop. Data flows one way: socket -> the worker's scratch buffer ->
// decoder (in place; FrameInput keeps what is not yet a whole frame) ->
// handler -> encoder -> AckQueue -> socket. The acks of a read batch are sent
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

#include "base/event_ptr.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "contract/worker_settings.h"
#include "worker/ack_queue.h"
#include "worker/buffer_budget.h"
#include "worker/connection_stats.h"
#include "worker/frame_input.h"
#include "worker/handler.h"
#include "worker/handler_module.h"
#include "worker/load_shedder.h"
#include "worker/pending_table.h"
#include "worker/receive_clock.h"
#include "worker/time_slice.h"

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
  Handler& handler;
  // `handler` itself when it is a module, else null (the built-in ack): the
  // per-request call then goes straight to it, not through the vtable.
  HandlerModule* module;
  PendingTable& pendings;
  // Sheds requests that queued too long while overloaded; null when
  // overload.shed is off (the frame loop then has no shedding in it).
  LoadShedder* shedder;
  BufferBudget& budget;
  const ConnectionStats& stats;
  ReceiveClock& receiveClock;
  // Every read of every connection lands here and is decoded before the
  // callback returns (one loop, one callback at a time), so no connection
  // needs a read buffer of its own (kReadChunk bytes).
  std::span<std::byte> scratch;
  // The running callback's share of the loop, with a module.
  TimeSlice& slice;
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

  static void onReadEvent(evutil_socket_t fd, short what, void* self);
  static void onWriteEvent(evutil_socket_t fd, short what, void* self);
  static void onDeadlineEvent(evutil_socket_t fd, short what, void* self);
  static void onResumeEvent(evutil_socket_t fd, short what, void* self);
  void onRead(short what);
  void onWrite(short what);
  void onDeadline();
  void onResume();
  // Reports what it holds to the budget; called as each entry point returns.
  void account();
  void onReadable();
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
  // Decodes `in` behind what FrameInput holds; returns the frames decoded.
  uint64_t decodeInput(std::span<const std::byte> in);
  // Answers the whole frames at the front of `bytes` and returns the bytes
  // they take; a protocol error answers those before it and begins the flush.
  size_t decodeFrames(std::span<const std::byte> bytes, uint64_t& frames);
  template <bool kModule, bool kShed>
  size_t decodeFramesWith(std::span<const std::byte> bytes, uint64_t& frames);
  // After a read batch: closes the connection when a frame has trickled in
  // for longer than idle_timeout (FrameInput::afterRead).
  void enforceFrameDeadline(uint64_t framesDecoded);
  void closeTrickling();
  // Two waits that reads alone cannot end: a frame begun and not finished
  // (FrameInput::deadline, bounded by idle_timeout: a 1-byte drip resets the
  // idle timer with every byte), and pending requests of which none
  // completes (pendingSince_, bounded by handler.pending_timeout: reading
  // may be paused, so neither silence nor a peer's close is ever seen).
  // deadline_ fires at the earlier of the two ends.
  void armDeadline();
  // Queues `request`'s ack (or its pending place) behind the held ones.
  void hold(const protocol::Request& request, uint64_t token, int result, uint64_t decodedNs);
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
  // After each of a module's requests: true (and yielded_ set) once this
  // callback has spent its time slice; the worker's heartbeat is stamped then.
  bool yieldNow();
  // Arms resume_ to decode the held input on the next loop pass.
  void scheduleResume();
  // Decodes what waited in FrameInput (unpaused, or resumed after a yield)
  // as a read would, in a time slice of its own.
  void decodeBacklog();
  // The pending requests now belong to nobody: their completions are dropped.
  void dropPendings();
  // (Re)starts `ev` with the idle timeout.
  void armIdle(event* ev);
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

  const ConnectionContext& context_;
  UniqueFd fd_;
  State state_ = State::kOpen;
  bool reading_ = false;
  bool writing_ = false;  // writeEvent_ is armed: the socket took less than we had
  bool peerClosed_ = false;
  bool yielded_ = false;      // resume_ is armed to decode the held input
  bool flushQueued_ = false;  // in the worker's list of connections to flush after completions
  bool drainAfterFirst_ = false;  // draining; flush once the first request is in
  uint64_t id_;
  EventPtr readEvent_;
  EventPtr writeEvent_;
  // A zero timeout: the next loop pass, after every ready connection and the
  // worker's timers. Made the first time the connection yields.
  EventPtr resume_;
  // Made the first time a wait above needs it (see armDeadline).
  EventPtr deadline_;
  std::optional<std::chrono::steady_clock::time_point> deadlineAt_;  // while armed
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
  // CLOCK_MONOTONIC_COARSE ms of the last bytes sent: a peer answered just
  // now is waiting on us, not idle (see onReadEvent).
  uint64_t lastSentMs_ = 0;
  uint64_t framesDecoded_ = 0;
  // kLingering ends here at the latest, however much the peer keeps sending
  // (a persistent event's timeout restarts on every read).
  std::chrono::steady_clock::time_point lingerUntil_;
  // Since the last completion of one of its pending requests (or the first
  // deferral), while it has any.
  std::optional<std::chrono::steady_clock::time_point> pendingSince_;
};

}  // namespace tcpfork
