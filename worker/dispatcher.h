#pragma once
// Dispatcher: the worker's one path from decoded frames to acks (decoder ->
// handler -> encoder), run by every connection on the bytes it has read.
// Owned by the Worker and shared by its connections; used on its loop only.
// It owns what all connections share for it: the handler (and a module's
// direct caller), the pending tokens it hands out, the time slice a
// module's requests run in, the load shedder that answers busy what
// queued too long, and the spare output buffer the connections' acks pass
// along (OutputBuffer::Spare). What is a connection's own (its acks, its held
// ones, its pending requests' place in order) it asks of the connection, its
// Sink (below).
//
// The handler and shedding are fixed for the worker's life: the choice is
// made once per run of frames, so the built-in ack costs no call at all, a
// module one direct call per request, and with shedding off no request pays
// for it. run() is a template, defined here so that the
// frame loop is inlined into the connection's read path.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>

#include "protocol/codec.h"
#include "worker/ack_queue.h"
#include "worker/connection_stats.h"
#include "worker/handler.h"
#include "worker/handler_module.h"
#include "worker/load_shedder.h"
#include "worker/pending_table.h"
#include "worker/time_slice.h"

namespace tcpfork {

// What one run of frames did.
struct DispatchRun {
  size_t consumed = 0;  // bytes of the frames answered (acked, or held)
  size_t requests = 0;  // those frames
  // The frame after the last one answered is malformed: the caller answers
  // nothing after it and begins its flush.
  std::optional<protocol::DecodeError> error;
  // No memory for the acks: nothing was answered.
  bool noRoom = false;
  // The time slice is spent: the caller yields the loop, the rest waits.
  bool yielded = false;
  // When the built-in ack finished the run (0: untimed, or a module's run).
  uint64_t endedNs = 0;
};

class Dispatcher {
 public:
  // `shedder`: null when overload.shed is off.
  Dispatcher(Handler& handler, PendingTable& pendings, TimeSlice& slice, LoadShedder* shedder,
             const ConnectionStats& stats, size_t maxFrameBytes)
      : handler_(handler),
        module_(dynamic_cast<HandlerModule*>(&handler)),
        pendings_(pendings),
        slice_(slice),
        shedder_(shedder),
        stats_(stats),
        maxFrameBytes_(maxFrameBytes) {}
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  Handler& handler() { return handler_; }
  // Shedding judges each request by its kernel receive stamp: reads ask for
  // one even with stats off.
  bool sheds() const { return shedder_ != nullptr; }
  PendingTable& pendings() { return pendings_; }
  // A connection's callback runs a module's requests from here on.
  void beginSlice() { slice_.begin(); }
  // For every AckQueue call that may grow or empty a connection's output.
  OutputBuffer::Spare& outputSpare() { return outputSpare_; }

  // Answers the whole frames at the front of `bytes` for `sink`, in order:
  // acks written in place into sink.acks() (committed by the caller with
  // the run's receive stamp), or held behind a pending one through
  // sink.hold(), which says whether decoding may go on (false: paused or
  // closed). sink.runStartNs() is read once a whole frame is here, and
  // sink.receivedNs() (the kernel's stamp of the bytes that completed the
  // run's frames) when shedding.
  template <class Sink>
  DispatchRun run(std::span<const std::byte> bytes, Sink& sink) {
    if (shedder_) return module_ ? runWith<true, true>(bytes, sink) : runWith<false, true>(bytes, sink);
    return module_ ? runWith<true, false>(bytes, sink) : runWith<false, false>(bytes, sink);
  }

 private:
  template <bool kModule, bool kShed, class Sink>
  DispatchRun runWith(std::span<const std::byte> bytes, Sink& sink);

  Handler& handler_;
  // `handler_` itself when it is a module, else null (the built-in ack).
  HandlerModule* module_;
  PendingTable& pendings_;
  TimeSlice& slice_;
  LoadShedder* shedder_;
  const ConnectionStats& stats_;
  // Loaded once per run: the handler's calls are opaque to the compiler.
  size_t maxFrameBytes_;
  OutputBuffer::Spare outputSpare_;
};

template <bool kModule, bool kShed, class Sink>
DispatchRun Dispatcher::runWith(std::span<const std::byte> bytes, Sink& sink) {
  using namespace protocol;
  DispatchRun run;
  const size_t maxFrameBytes = maxFrameBytes_;
  auto first = decodeRequest(bytes, maxFrameBytes);
  if (first.status == DecodeStatus::kError) run.error = first.error;
  if (first.status != DecodeStatus::kFrame) return run;
  // Acks go straight into the output buffer: reserve room for the most
  // frames `bytes` can hold, commit what was used. Nothing is reserved
  // until a whole frame is here, so a partial frame takes no output space,
  // and a long first frame (a completed tail) counts as the one it is.
  AckQueue& acks = sink.acks();
  size_t maxAcks = 1 + (bytes.size() - first.size) / kMinRequestFrameBytes;
  std::byte* ackOut = acks.reserve(maxAcks, outputSpare_);
  if (ackOut == nullptr) {
    run.noRoom = true;
    return run;
  }
  uint64_t startedNs = sink.runStartNs();
  size_t consumed = 0;
  size_t written = 0;
  size_t requests = 0;
  // Module path: once one ack is held, every later one is too (order).
  // Only hold() can pause or close the connection, so the checks follow it.
  bool holding = kModule && acks.held() > 0;
  [[maybe_unused]] auto handle = kModule ? module_->caller() : HandlerModule::Caller::none();
  [[maybe_unused]] uint64_t tokenBase = kModule ? pendings_.reserveTokens(maxAcks) : 0;
  [[maybe_unused]] uint64_t connection = kModule ? sink.id() : 0;
  [[maybe_unused]] uint64_t receivedNs = kShed ? sink.receivedNs() : 0;
  // Dispatch time as shedding judges it: the run's start, then each clock
  // reading the time slice takes (LoadShedder::shed).
  [[maybe_unused]] uint64_t shedNowNs = 0;
  if constexpr (kShed) shedNowNs = startedNs != 0 ? startedNs : stats::monotonicNanos();
  // One frame; false when the rest must wait (paused, closed or yielded).
  auto answer = [&](const Decoded<Request>& decoded) __attribute__((always_inline)) {
    const Request& request = decoded.message;
    const std::byte* frame = bytes.data() + consumed;
    size_t frameBytes = decoded.size;
    ++requests;
    consumed += frameBytes;
    if constexpr (kShed) {
      // Answered busy at once, in order, and never handed to the handler.
      if (shedder_->shed(receivedNs, shedNowNs)) {
        if (kModule && holding) return sink.hold(request, tokenBase + requests, kResultBusy, startedNs);
        encodeAck(ackFor(request.command), request.id, kResultBusy, ackOut + written * kAckFrameBytes);
        ++written;
        return true;
      }
    }
    if constexpr (kModule) {
      uint64_t token = tokenBase + requests;  // requests counts this one: 1..maxAcks
      // From the frame's bytes, not `request` (see Caller).
      int result = handle(Command(frame[kLengthBytes]), frame + kHeaderBytes,
                          std::span<const std::byte>(frame + kMinRequestFrameBytes, frameBytes - kMinRequestFrameBytes),
                          connection, token);
      if (result == Handler::kPending || holding) {
        holding = true;
        if (!sink.hold(request, token, result, startedNs)) return false;
      } else {
        encodeAck(ackFor(request.command), request.id, uint8_t(result), ackOut + written * kAckFrameBytes);
        ++written;
      }
      uint64_t nowNs = 0;
      bool spent = slice_.spent(nowNs);
      if constexpr (kShed) shedNowNs = nowNs != 0 ? nowNs : shedNowNs;
      if (!spent) return true;
      // The loop is running, just not its timers yet: the master must not
      // take this worker for a hung one while its connections take turns.
      stats_.beat(nowNs);
      run.yielded = true;
      return false;
    } else {
      encodeAck(ackFor(request.command), request.id, kResultOk, ackOut + written * kAckFrameBytes);
      ++written;
      return true;
    }
  };
  if (answer(first)) {
    for (;;) {
      // A fresh object each time, built in place: assigning the result to
      // one variable would copy it through memory with loads that cannot be
      // forwarded from the stores that wrote it (a stall per frame).
      auto decoded = decodeRequest(bytes.subspan(consumed), maxFrameBytes);
      if (decoded.status != DecodeStatus::kFrame) {
        if (decoded.status == DecodeStatus::kError) run.error = decoded.error;
        break;
      }
      if (!answer(decoded)) break;
    }
  }
  if constexpr (kShed) shedder_->endRun();
  uint64_t endedNs = stats_.ranFrames(requests, written, startedNs);
  // The built-in ack runs nothing after this but our own bookkeeping before
  // the send, so the send can be stamped with this time instead of reading
  // the clock again. A module's batch_end may take its time.
  if constexpr (!kModule) run.endedNs = endedNs;
  sink.acksWritten(written);
  run.consumed = consumed;
  run.requests = requests;
  return run;
}

}  // namespace tcpfork
