#include "worker/connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <optional>
#include <system_error>
#include <utility>

#include "base/rx_timestamp.h"
#include "base/socket.h"
#include "protocol/codec.h"

namespace tcpfork {
namespace {

constexpr int kReadsPerBatch = 4;  // of kReadChunk each
// How long a closing connection may keep sending before it is cut off.
constexpr std::chrono::milliseconds kLingerTimeout{5000};
// How long a draining worker waits for a new connection's first request.
constexpr std::chrono::milliseconds kFirstRequestGrace{1000};

}  // namespace

Connection::Connection(const ConnectionContext& context, UniqueFd fd, uint64_t id)
    : context_(context),
      fd_(std::move(fd)),
      id_(id),
      events_(context.base, fd_.get(), &onEvent<&Connection::onRead>, &onEvent<&Connection::onWrite>, this),
      input_(context.settings.limits),
      acks_(context.stats) {}

Connection::~Connection() {
  context_.budget.leave(share_);
  dropPendings();
  context_.dispatcher.handler().closed(id_);
}

void Connection::start() {
  context_.dispatcher.handler().opened(id_);
  resumeReading();
}

void Connection::drain() {
  if (state_ != State::kOpen) return;
  if (framesDecoded_ == 0 && !peerClosed_) {
    drainAfterFirst_ = true;
    // The request may be here already; if not, the read event brings it (or
    // the grace runs out and the connection closes as idle).
    onReadable();
    if (state_ == State::kOpen && events_.reading()) events_.read(kFirstRequestGrace);
    account();
    return;
  }
  beginFlush();
  flush();
  account();
}

// A loop that did not run past a deadline (descheduled, stopped) sees only
// the expired timer, so the socket is asked before the connection is called
// idle. If it was not idle, its clock restarts now: libevent would otherwise
// count the next deadline from the missed one, which may fall before the
// peer has had a chance to answer the acks we are about to send.
// Likewise a peer answered just now: a worker stopped between reading
// requests and sending their acks sends them when it runs again, and the peer
// has had no time to send more when the expired timer is seen.
// And a peer whose requests the handler has yet to answer is waiting on us.
void Connection::onRead(short what) {
  if (what & EV_TIMEOUT) {
    if (!socketReady(fd(), POLLIN)) {
      if (state_ == State::kOpen && (lastSent_.justNow(limits().idleTimeout) || acks_.held() > 0)) {
        events_.read(context_.idleTimer);
        return;
      }
      onIdleTimeout();
      return;
    }
    if (state_ == State::kLingering) {
      events_.read(kLingerTimeout);
    } else {
      events_.read(context_.idleTimer);
    }
  }
  if (state_ == State::kLingering) {
    discardInput();
  } else {
    onReadable();
  }
}

void Connection::onWrite(short what) {
  if (what & EV_TIMEOUT) {
    if (!socketReady(fd(), POLLOUT)) {
      onIdleTimeout();
      return;
    }
    events_.write(context_.idleTimer);
  }
  flush();
}

void Connection::account() {
  context_.budget.report(share_, state_ == State::kClosed ? 0 : input_.memoryBytes() + acks_.memoryBytes());
}

void Connection::shed() {
  context_.stats.count(stats::Counter::kConnectionsShedMemory, 1);
  close();
}

void Connection::onReadable() {
  context_.dispatcher.beginSlice();
  uint64_t framesBefore = framesDecoded_;
  bool open = readBatch();
  if (framesDecoded_ != framesBefore) context_.dispatcher.handler().batchEnd();
  enforceFrameDeadline(framesDecoded_ - framesBefore);
  if (state_ == State::kClosed) return;
  if (drainAfterFirst_ && framesDecoded_ > 0 && state_ == State::kOpen) beginFlush();
  // Until a pending request completes, or the next loop pass.
  if (holdingInput()) stopReading();
  if (yielded_) scheduleResume();
  if (state_ == State::kClosed) return;
  if (!open) {
    if (!peerClosed_) {
      close();  // reset or I/O error: nobody is left to send acks to
      return;
    }
    // Half-close: the peer sent all it will; answer what it sent, then close.
    beginFlush();
  }
  flush();
}

void Connection::onIdleTimeout() {
  if (state_ == State::kOpen) context_.stats.count(stats::Counter::kIdleTimeouts, 1);
  close();
}

// Every read goes into the worker's scratch buffer and is decoded there before
// the next one, so the bytes of a read are dead once decodeInput returns.
bool Connection::readBatch() {
  std::span<std::byte> scratch = context_.scratch;
  // Shedding judges each request by its receive stamp, stats or not.
  bool timed = context_.stats.timed() || context_.dispatcher.sheds();
  for (int i = 0; i < kReadsPerBatch; ++i) {
    if (context_.budget.gated()) return true;  // read nothing: the caller stops reading
    decodedAtNs_ = 0;  // a system call later, that time is stale
    uint64_t kernelNs = 0;
    ssize_t n = timed ? readTimestamped(fd(), scratch, kernelNs) : ::recv(fd(), scratch.data(), scratch.size(), 0);
    if (n > 0) {
      context_.stats.count(stats::Counter::kBytesReceived, static_cast<uint64_t>(n));
      if (timed) {
        ReceiveClock::Stamp stamp = context_.receiveClock.stamp(kernelNs, fd());
        readAtNs_ = stamp.readNs;
        receivedNs_ = stamp.receivedNs;
      }
      framesDecoded_ += decodeInput(scratch.first(static_cast<size_t>(n)));
      readAtNs_ = 0;  // stale once this read's frames are decoded
      if (state_ != State::kOpen || holdingInput()) return true;
      // About to wait: for output room, or for the peer's next bytes.
      bool blocked = acks_.queuedBytes() >= limits().outputHighWater;
      if (blocked || static_cast<size_t>(n) < scratch.size()) return true;  // short read: skip the EAGAIN read
      continue;
    }
    if (n == 0) {
      peerClosed_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    if (errno != ECONNRESET) context_.peerLog.warn("read(fd {}): {}", fd(), std::strerror(errno));
    return false;
  }
  return true;
}

void Connection::enforceFrameDeadline(uint64_t framesDecoded) {
  if (state_ != State::kOpen) return;
  switch (input_.afterRead(framesDecoded, [] { return std::chrono::steady_clock::now(); })) {
    case FrameInput::Wait::kNone:
      return;
    case FrameInput::Wait::kBegun:
      armDeadline();
      return;
    case FrameInput::Wait::kExpired:
      closeTrickling();
      return;
  }
}

void Connection::closeTrickling() {
  context_.stats.count(stats::Counter::kIdleTimeouts, 1);
  context_.peerLog.warn("closing connection from {}: a frame has trickled in for over idle_timeout ({} ms)",
                        peerName(fd()), limits().idleTimeout.count());
  close();
}

void Connection::armDeadline() {
  if (state_ == State::kClosed) return;
  // An unfinished frame is the peer's to complete only while the connection
  // is open and reading: flushing, lingering or holding its input, its
  // deadline (passed, maybe) would fire at once, again and again.
  std::optional<std::chrono::steady_clock::time_point> frameEnd;
  if (state_ == State::kOpen && !holdingInput()) frameEnd = input_.deadline();
  if (!deadline_.arm(frameEnd, pendingTimeout(), {context_.base, &onEvent<&Connection::onDeadline>, this})) {
    context_.peerLog.warn("no memory for a deadline on fd {}; closing it", fd());
    close();
  }
}

void Connection::onDeadline(short) {
  deadline_.fired();
  if (state_ == State::kClosed) return;
  auto now = std::chrono::steady_clock::now();
  if (acks_.pending() > 0 && deadline_.pendingExpired(now, pendingTimeout())) {
    // What the handler still owes this connection may never come (a stuck
    // backend): the client gets the acks before the first pending one (sent
    // already) and then the close, as for any connection that times out;
    // a completion that comes later is dropped and counted.
    context_.stats.count(stats::Counter::kIdleTimeouts, 1);
    context_.peerLog.warn("closing connection from {}: {} requests pending in the handler and none completed for "
                          "handler.pending_timeout ({} ms)",
                          peerName(fd()), acks_.pending(), pendingTimeout().count());
    close();
    return;
  }
  // A wait that is ours (paused, yielded) is not the peer's trickle.
  if (state_ == State::kOpen && !holdingInput() && input_.expired(now)) {
    closeTrickling();
    return;
  }
  armDeadline();
}

uint64_t Connection::decodeInput(std::span<const std::byte> in) {
  uint64_t frames = 0;
  size_t lost = input_.feed(
      in, [&](std::span<const std::byte> bytes) { return decodeFrames(bytes, frames); },
      [this] { return inputFlow(); });
  if (lost > 0) {
    context_.peerLog.warn("no memory for {} bytes of an unfinished frame; closing fd {}", lost, fd());
    beginFlush();
  }
  return frames;
}

size_t Connection::decodeFrames(std::span<const std::byte> bytes, uint64_t& frames) {
  DispatchRun run = context_.dispatcher.run(bytes, *this);
  if (run.noRoom) {
    context_.peerLog.warn("no memory for the acks of {} bytes of requests; closing fd {}", bytes.size(), fd());
    beginFlush();
    return 0;
  }
  // Before FrameInput asks inputFlow() whether to go on.
  if (run.yielded) yielded_ = true;
  if (run.endedNs != 0) decodedAtNs_ = run.endedNs;
  frames += run.requests;
  if (run.error) failProtocol(*run.error);
  return run.consumed;
}

// Out of memory loses the ack, and with it the stream's order: the
// connection closes.
bool Connection::hold(const protocol::Request& request, uint64_t token, int result, uint64_t decodedNs) {
  try {
    uint64_t sequence = acks_.hold(request, token, result, receivedNs_, decodedNs);
    if (result == Handler::kPending) {
      context_.dispatcher.pendings().add(token, this, sequence);
      context_.budget.pendingAdded();
      if (deadline_.pendingBegan(pendingTimeout())) armDeadline();
    }
  } catch (const std::bad_alloc&) {
    // The ack is lost, so the acks after it cannot be sent in order either.
    context_.peerLog.warn("no memory to hold an ack; closing fd {}", fd());
    if (result == Handler::kPending) context_.dispatcher.pendings().orphan(token);
    close();
  }
  // Paused: the rest waits in the tail until a pending one completes.
  return state_ == State::kOpen && !paused();
}

bool Connection::complete(uint64_t sequence, uint8_t result) {
  acks_.complete(sequence, result);
  return !std::exchange(flushQueued_, true);
}

void Connection::flushCompleted() {
  flushQueued_ = false;
  if (state_ == State::kClosed) return;
  // Progress, once per run of completions.
  deadline_.pendingProgress(acks_.pending() > 0);
  releaseHeld();
  // Unpaused: what waited in FrameInput is decoded now (unless a yield has
  // already put it off to the next loop pass).
  if (state_ == State::kOpen && !holdingInput() && !input_.empty()) decodeBacklog();
  if (state_ != State::kClosed) flush();
  account();
}

void Connection::decodeBacklog() {
  context_.dispatcher.beginSlice();
  uint64_t frames = decodeInput({});
  framesDecoded_ += frames;
  if (frames > 0) context_.dispatcher.handler().batchEnd();
  input_.restartWait();  // the wait was ours: a trickle is timed from the next read
  if (yielded_ && state_ == State::kOpen) scheduleResume();
}

void Connection::scheduleResume() {
  if (!resume_.schedule(context_.base, &onEvent<&Connection::onResume>, this)) {
    // Nothing would ever decode the tail: the requests in it cannot be answered.
    context_.peerLog.warn("no memory to resume fd {} on the next loop pass; closing it", fd());
    close();
  }
}

void Connection::onResume(short) {
  yielded_ = false;
  // A drain or an error since the yield: what the tail holds is not decoded.
  if (state_ != State::kOpen) return;
  decodeBacklog();
  if (state_ != State::kClosed) flush();
}

void Connection::releaseHeld() {
  std::optional<size_t> released = acks_.release(context_.dispatcher.outputSpare());
  if (!released) {
    context_.peerLog.warn("no memory for {} bytes of acks; closing fd {}", acks_.ready() * protocol::kAckFrameBytes,
                          fd());
    close();
    return;
  }
  if (*released > 0) context_.stats.count(stats::Counter::kResponsesSent, *released);
}

void Connection::dropPendings() {
  acks_.dropHeld([&](uint64_t token) { context_.dispatcher.pendings().orphan(token); });
}

void Connection::failProtocol(protocol::DecodeError error) {
  context_.stats.protocolError(error);
  context_.peerLog.warn("closing connection from {}: protocol error {}", peerName(fd()),
                        protocol::decodeErrorName(error));
  beginFlush();
}

void Connection::beginFlush() {
  stopReading();
  state_ = State::kFlushing;
}

void Connection::flush() {
  std::span<const std::byte> unsent = acks_.unsent();
  size_t pending = unsent.size();
  if (pending > 0) {
    // Read before the send: once the bytes are in, the peer may take them,
    // and run, before this process gets the CPU back.
    uint64_t handedNs = decodedAtNs_ != 0 ? decodedAtNs_ : context_.stats.now();
    decodedAtNs_ = 0;
    ssize_t n = ::send(fd(), unsent.data(), pending, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      if (errno != ECONNRESET && errno != EPIPE) context_.peerLog.warn("send(fd {}): {}", fd(), std::strerror(errno));
      close();
      return;
    }
    if (n > 0) {
      lastSent_.stamp();
      context_.stats.count(stats::Counter::kBytesSent, static_cast<uint64_t>(n));
      acks_.sent(static_cast<size_t>(n), handedNs, context_.dispatcher.outputSpare());
      pending -= static_cast<size_t>(n);
    }
  }

  if (pending > 0) {
    if (!events_.writing()) events_.write(context_.idleTimer);
    if (state_ == State::kOpen) {
      size_t queued = acks_.queuedBytes();
      if (events_.reading() && queued >= limits().outputHighWater) stopReading();
      if (!events_.reading() && !holdingInput() && queued <= limits().outputLowWater()) resumeReading();
    }
    return;
  }

  events_.stopWriting();
  if (state_ == State::kOpen) {
    if (!events_.reading() && !holdingInput() && acks_.queuedBytes() <= limits().outputLowWater()) resumeReading();
    return;
  }
  if (acks_.held() > 0) return;  // flushing waits for the pending requests too
  if (state_ == State::kFlushing) {
    if (peerClosed_) {
      close();
      return;
    }
    // All owed acks are out: send FIN, and read until the peer closes so that
    // unread input does not turn our close into a reset that eats those acks.
    ::shutdown(fd(), SHUT_WR);
    state_ = State::kLingering;
    lingerUntil_ = std::chrono::steady_clock::now() + kLingerTimeout;
    events_.read(kLingerTimeout);
  }
}

void Connection::discardInput() {
  if (std::chrono::steady_clock::now() >= lingerUntil_) {
    close();
    return;
  }
  for (int i = 0; i < kReadsPerBatch; ++i) {
    ssize_t n = ::recv(fd(), context_.scratch.data(), context_.scratch.size(), 0);
    if (n > 0) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    close();  // EOF or error: the peer is done
    return;
  }
}

void Connection::stopReading() { events_.stopReading(); }

void Connection::resumeReading() {
  if (!events_.reading()) events_.read(context_.idleTimer);
}

// The caller is still inside one of this connection's callbacks, and the
// other event may be active in the same loop pass: both are disarmed (which
// also takes them off libevent's active queue) and the Worker frees the
// object only after the callback has returned.
void Connection::close() {
  if (state_ == State::kClosed) return;
  events_.disarm();
  resume_.cancel();
  deadline_.disarm();
  yielded_ = false;
  state_ = State::kClosed;
  dropPendings();
  // Nothing of it will be sent or decoded: its memory goes back now, not
  // when the Worker frees the object, so a shedding round counts it freed.
  input_.clear();
  acks_.clear();
  account();
  context_.closed(fd());
}

}  // namespace tcpfork
