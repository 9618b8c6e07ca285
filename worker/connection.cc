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

void addEvent(event* ev, const timeval* timeout) {
  if (event_add(ev, timeout) != 0) throw std::system_error(ENOMEM, std::generic_category(), "event_add(connection)");
}

void addEvent(event* ev, std::chrono::milliseconds timeout) {
  timeval tv = toTimeval(timeout);
  addEvent(ev, timeout.count() > 0 ? &tv : nullptr);
}

std::string peerName(int fd) {
  SocketAddress peer;
  peer.length = sizeof peer.storage;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) != 0) return "?";
  return peer.toString();
}

}  // namespace

Connection::Connection(const ConnectionContext& context, UniqueFd fd, uint64_t id)
    : context_(context),
      fd_(std::move(fd)),
      id_(id),
      readEvent_(event_new(context.base, fd_.get(), EV_READ | EV_PERSIST, &Connection::onReadEvent, this)),
      writeEvent_(event_new(context.base, fd_.get(), EV_WRITE | EV_PERSIST, &Connection::onWriteEvent, this)),
      input_(context.settings.limits),
      acks_(context.stats) {
  if (!readEvent_ || !writeEvent_) {
    throw std::system_error(ENOMEM, std::generic_category(), "allocating connection events");
  }
}

Connection::~Connection() {
  context_.budget.leave(share_);
  dropPendings();
  context_.handler.closed(id_);
}

void Connection::start() {
  context_.handler.opened(id_);
  resumeReading();
}

void Connection::drain() {
  if (state_ != State::kOpen) return;
  if (framesDecoded_ == 0 && !peerClosed_) {
    drainAfterFirst_ = true;
    // The request may be here already; if not, the read event brings it (or
    // the grace runs out and the connection closes as idle).
    onReadable();
    if (state_ == State::kOpen && reading_) addEvent(readEvent_.get(), kFirstRequestGrace);
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
void Connection::onReadEvent(evutil_socket_t, short what, void* self) {
  auto* connection = static_cast<Connection*>(self);
  connection->onRead(what);
  connection->account();
}

void Connection::onRead(short what) {
  if (what & EV_TIMEOUT) {
    if (!socketReady(POLLIN)) {
      if (state_ == State::kOpen && (answeredJustNow() || acks_.held() > 0)) {
        armIdle(readEvent_.get());
        return;
      }
      onIdleTimeout();
      return;
    }
    if (state_ == State::kLingering) {
      addEvent(readEvent_.get(), kLingerTimeout);
    } else {
      armIdle(readEvent_.get());
    }
  }
  if (state_ == State::kLingering) {
    discardInput();
  } else {
    onReadable();
  }
}

void Connection::onWriteEvent(evutil_socket_t, short what, void* self) {
  auto* connection = static_cast<Connection*>(self);
  connection->onWrite(what);
  connection->account();
}

void Connection::onWrite(short what) {
  if (what & EV_TIMEOUT) {
    if (!socketReady(POLLOUT)) {
      onIdleTimeout();
      return;
    }
    armIdle(writeEvent_.get());
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
  context_.slice.begin();
  uint64_t framesBefore = framesDecoded_;
  bool open = readBatch();
  if (framesDecoded_ != framesBefore) context_.handler.batchEnd();
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

bool Connection::socketReady(short events) const {
  pollfd p{fd(), events, 0};
  return ::poll(&p, 1, 0) > 0 && p.revents != 0;
}

namespace {

uint64_t coarseMonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1'000'000;
}

}  // namespace

// Half the timeout tells the cases apart: normally the last acks went out
// with the last read, a whole idle_timeout before the timer fires; after a
// stall they went out moments ago.
bool Connection::answeredJustNow() const {
  return lastSentMs_ != 0 && coarseMonotonicMs() - lastSentMs_ < uint64_t(limits().idleTimeout.count()) / 2;
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
  bool timed = context_.stats.timed() || context_.shedder != nullptr;
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
  std::optional<std::chrono::steady_clock::time_point> at;
  if (state_ == State::kOpen && !holdingInput()) at = input_.deadline();
  std::chrono::milliseconds pendingTimeout = context_.settings.handler.pendingTimeout;
  if (pendingSince_ && (!at || *pendingSince_ + pendingTimeout < *at)) at = *pendingSince_ + pendingTimeout;
  // One armed for sooner fires, finds the wait moved on, and arms again.
  if (!at || (deadlineAt_ && *deadlineAt_ <= *at)) return;
  if (!deadline_) deadline_.reset(evtimer_new(context_.base, &Connection::onDeadlineEvent, this));
  auto wait = std::chrono::duration_cast<std::chrono::microseconds>(*at - std::chrono::steady_clock::now());
  timeval tv{0, 0};
  if (wait.count() > 0) tv = {time_t(wait.count() / 1'000'000), suseconds_t(wait.count() % 1'000'000)};
  if (!deadline_ || evtimer_add(deadline_.get(), &tv) != 0) {
    context_.peerLog.warn("no memory for a deadline on fd {}; closing it", fd());
    close();
    return;
  }
  deadlineAt_ = at;
}

void Connection::onDeadlineEvent(evutil_socket_t, short, void* self) {
  auto* connection = static_cast<Connection*>(self);
  connection->onDeadline();
  connection->account();
}

void Connection::onDeadline() {
  deadlineAt_.reset();
  if (state_ == State::kClosed) return;
  auto now = std::chrono::steady_clock::now();
  std::chrono::milliseconds pendingTimeout = context_.settings.handler.pendingTimeout;
  if (pendingSince_ && acks_.pending() > 0 && now - *pendingSince_ >= pendingTimeout) {
    // What the handler still owes this connection may never come (a stuck
    // backend): the client gets the acks before the first pending one (sent
    // already) and then the close, as for any connection that times out;
    // a completion that comes later is dropped and counted.
    context_.stats.count(stats::Counter::kIdleTimeouts, 1);
    context_.peerLog.warn("closing connection from {}: {} requests pending in the handler and none completed for "
                          "handler.pending_timeout ({} ms)",
                          peerName(fd()), acks_.pending(), pendingTimeout.count());
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

// The handler and shedding are fixed for the worker's life: the choice is
// made once per run of frames, so the built-in ack costs no call at all and
// a module one direct call per request, and with shedding off no request
// pays for it.
size_t Connection::decodeFrames(std::span<const std::byte> bytes, uint64_t& frames) {
  if (context_.shedder) {
    return context_.module ? decodeFramesWith<true, true>(bytes, frames) : decodeFramesWith<false, true>(bytes, frames);
  }
  return context_.module ? decodeFramesWith<true, false>(bytes, frames) : decodeFramesWith<false, false>(bytes, frames);
}

template <bool kModule, bool kShed>
size_t Connection::decodeFramesWith(std::span<const std::byte> bytes, uint64_t& frames) {
  using namespace protocol;
  // Loaded once: the handler's calls are opaque to the compiler.
  const size_t maxFrameBytes = limits().maxFrameBytes;
  auto first = decodeRequest(bytes, maxFrameBytes);
  if (first.status == DecodeStatus::kError) failProtocol(first.error);
  if (first.status != DecodeStatus::kFrame) return 0;
  // Acks go straight into the output buffer: reserve room for the most
  // frames `bytes` can hold, commit what was used. Nothing is reserved
  // until a whole frame is here, so a partial frame takes no output space,
  // and a long first frame (a completed tail) counts as the one it is.
  size_t maxAcks = 1 + (bytes.size() - first.size) / kMinRequestFrameBytes;
  std::byte* ackOut = acks_.reserve(maxAcks);
  if (ackOut == nullptr) {
    context_.peerLog.warn("no memory for {} bytes of acks; closing fd {}", maxAcks * kAckFrameBytes, fd());
    beginFlush();
    return 0;
  }
  // Just after a read, its clock reading serves (see readBatch).
  uint64_t startedNs = readAtNs_ != 0 ? std::exchange(readAtNs_, 0) : context_.stats.now();
  size_t consumed = 0;
  size_t acks = 0;
  size_t requests = 0;
  // Module path: once one ack is held, every later one is too (order).
  // Only hold() can pause or close the connection, so the checks follow it.
  bool holding = kModule && acks_.held() > 0;
  [[maybe_unused]] auto handle = kModule ? context_.module->caller() : HandlerModule::Caller::none();
  [[maybe_unused]] uint64_t tokenBase = kModule ? context_.pendings.reserveTokens(maxAcks) : 0;
  // One frame; false when the rest must wait (paused or closed).
  auto answer = [&](const Decoded<Request>& decoded) __attribute__((always_inline)) {
    const Request& request = decoded.message;
    const std::byte* frame = bytes.data() + consumed;
    size_t frameBytes = decoded.size;
    ++requests;
    consumed += frameBytes;
    if constexpr (kShed) {
      // Answered busy at once, in order, and never handed to the handler.
      if (context_.shedder->shed(receivedNs_)) {
        if (kModule && holding) {
          hold(request, tokenBase + requests, kResultBusy, startedNs);  // held as completed
          return !paused() && state_ == State::kOpen;
        }
        encodeAck(ackFor(request.command), request.id, kResultBusy, ackOut + acks * kAckFrameBytes);
        ++acks;
        return true;
      }
    }
    if constexpr (kModule) {
      uint64_t token = tokenBase + requests;  // requests counts this one: 1..maxAcks
      // From the frame's bytes, not `request` (see Caller).
      int result = handle(Command(frame[kLengthBytes]), frame + kHeaderBytes,
                          std::span<const std::byte>(frame + kMinRequestFrameBytes, frameBytes - kMinRequestFrameBytes),
                          id_, token);
      if (result == Handler::kPending || holding) {
        hold(request, token, result, startedNs);
        holding = true;
        // Paused: the rest waits in the tail until a pending one completes.
        if (paused() || state_ != State::kOpen) return false;
      } else {
        encodeAck(ackFor(request.command), request.id, uint8_t(result), ackOut + acks * kAckFrameBytes);
        ++acks;
      }
      // Yielded: the rest waits in the tail until the next loop pass.
      return !yieldNow();
    } else {
      encodeAck(ackFor(request.command), request.id, kResultOk, ackOut + acks * kAckFrameBytes);
      ++acks;
      return true;
    }
  };
  std::optional<DecodeError> error;
  if (answer(first)) {
    for (;;) {
      // A fresh object each time, built in place: assigning the result to
      // one variable would copy it through memory with loads that cannot be
      // forwarded from the stores that wrote it (a stall per frame).
      auto decoded = decodeRequest(bytes.subspan(consumed), maxFrameBytes);
      if (decoded.status != DecodeStatus::kFrame) {
        if (decoded.status == DecodeStatus::kError) error = decoded.error;
        break;
      }
      if (!answer(decoded)) break;
    }
  }
  uint64_t endedNs = context_.stats.ranFrames(requests, acks, startedNs);
  // The built-in ack runs nothing after this but our own bookkeeping before
  // the send, so flush() hands the acks over at this time instead of reading
  // the clock again. A module's batch_end may take its time.
  if constexpr (!kModule) decodedAtNs_ = endedNs;
  acks_.commit(acks, receivedNs_);
  frames += requests;
  if (error) failProtocol(*error);
  return consumed;
}

// Out of memory loses the ack, and with it the stream's order: the
// connection closes.
void Connection::hold(const protocol::Request& request, uint64_t token, int result, uint64_t decodedNs) {
  try {
    uint64_t sequence = acks_.hold(request, token, result, receivedNs_, decodedNs);
    if (result == Handler::kPending) {
      context_.pendings.add(token, this, sequence);
      context_.budget.pendingAdded();
      if (!pendingSince_ && context_.settings.handler.pendingTimeout.count() > 0) {
        pendingSince_ = std::chrono::steady_clock::now();
        armDeadline();
      }
    }
  } catch (const std::bad_alloc&) {
    // The ack is lost, so the acks after it cannot be sent in order either.
    context_.peerLog.warn("no memory to hold an ack; closing fd {}", fd());
    if (result == Handler::kPending) context_.pendings.orphan(token);
    close();
  }
}

bool Connection::complete(uint64_t sequence, uint8_t result) {
  acks_.complete(sequence, result);
  return !std::exchange(flushQueued_, true);
}

void Connection::flushCompleted() {
  flushQueued_ = false;
  if (state_ == State::kClosed) return;
  if (pendingSince_) {
    // Progress, once per run of completions: the bound counts from here, or
    // ends with the last pending one.
    if (acks_.pending() > 0) {
      pendingSince_ = std::chrono::steady_clock::now();
    } else {
      pendingSince_.reset();
    }
  }
  releaseHeld();
  // Unpaused: what waited in FrameInput is decoded now (unless a yield has
  // already put it off to the next loop pass).
  if (state_ == State::kOpen && !holdingInput() && !input_.empty()) decodeBacklog();
  if (state_ != State::kClosed) flush();
  account();
}

void Connection::decodeBacklog() {
  context_.slice.begin();
  uint64_t frames = decodeInput({});
  framesDecoded_ += frames;
  if (frames > 0) context_.handler.batchEnd();
  input_.restartWait();  // the wait was ours: a trickle is timed from the next read
  if (yielded_ && state_ == State::kOpen) scheduleResume();
}

bool Connection::yieldNow() {
  uint64_t nowNs = 0;
  if (!context_.slice.spent(nowNs)) return false;
  yielded_ = true;
  // The loop is running, just not its timers yet: the master must not take
  // this worker for a hung one while its connections take turns.
  context_.stats.beat(nowNs);
  return true;
}

void Connection::scheduleResume() {
  static constexpr timeval kNextPass{0, 0};
  if (!resume_) resume_.reset(evtimer_new(context_.base, &Connection::onResumeEvent, this));
  if (!resume_ || evtimer_add(resume_.get(), &kNextPass) != 0) {
    // Nothing would ever decode the tail: the requests in it cannot be answered.
    context_.peerLog.warn("no memory to resume fd {} on the next loop pass; closing it", fd());
    close();
  }
}

void Connection::onResumeEvent(evutil_socket_t, short, void* self) {
  auto* connection = static_cast<Connection*>(self);
  connection->onResume();
  connection->account();
}

void Connection::onResume() {
  yielded_ = false;
  // A drain or an error since the yield: what the tail holds is not decoded.
  if (state_ != State::kOpen) return;
  decodeBacklog();
  if (state_ != State::kClosed) flush();
}

void Connection::releaseHeld() {
  std::optional<size_t> released = acks_.release();
  if (!released) {
    context_.peerLog.warn("no memory for {} bytes of acks; closing fd {}", acks_.ready() * protocol::kAckFrameBytes,
                          fd());
    close();
    return;
  }
  if (*released > 0) context_.stats.count(stats::Counter::kResponsesSent, *released);
}

void Connection::dropPendings() {
  acks_.dropHeld([&](uint64_t token) { context_.pendings.orphan(token); });
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
      lastSentMs_ = coarseMonotonicMs();
      context_.stats.count(stats::Counter::kBytesSent, static_cast<uint64_t>(n));
      acks_.sent(static_cast<size_t>(n), handedNs);
      pending -= static_cast<size_t>(n);
    }
  }

  if (pending > 0) {
    if (!writing_) {
      armIdle(writeEvent_.get());
      writing_ = true;
    }
    if (state_ == State::kOpen) {
      size_t queued = acks_.queuedBytes();
      if (reading_ && queued >= limits().outputHighWater) stopReading();
      if (!reading_ && !holdingInput() && queued <= limits().outputLowWater()) resumeReading();
    }
    return;
  }

  if (writing_) {
    event_del(writeEvent_.get());
    writing_ = false;
  }
  if (state_ == State::kOpen) {
    if (!reading_ && !holdingInput() && acks_.queuedBytes() <= limits().outputLowWater()) resumeReading();
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
    addEvent(readEvent_.get(), kLingerTimeout);
    reading_ = true;
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

void Connection::stopReading() {
  if (!reading_) return;
  event_del(readEvent_.get());
  reading_ = false;
}

void Connection::resumeReading() {
  if (reading_) return;
  armIdle(readEvent_.get());
  reading_ = true;
}

void Connection::armIdle(event* ev) { addEvent(ev, context_.idleTimer); }

// The caller is still inside one of this connection's callbacks, and the
// other event may be active in the same loop pass: both are disarmed (which
// also takes them off libevent's active queue) and the Worker frees the
// object only after the callback has returned.
void Connection::close() {
  if (state_ == State::kClosed) return;
  event_del(readEvent_.get());
  event_del(writeEvent_.get());
  if (resume_) event_del(resume_.get());
  if (deadline_) event_del(deadline_.get());
  reading_ = false;
  writing_ = false;
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
