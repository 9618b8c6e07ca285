#pragma once
// Handler: the business-logic seam. The connection decodes a request, asks the
// handler for the ack's result byte and encodes the ack itself (the ack's
// command and ID are fixed by the protocol). Called on the worker loop for
// every request, so it must not block. A handler may answer later: it
// returns kPending and the worker's Completions get (token, result) from any
// thread; the connection holds back the acks after a pending one.

#include <cstdint>

#include "protocol/frame.h"

namespace tcpfork {

class Handler {
 public:
  // handle(): the result comes later, completing `token`.
  static constexpr int kPending = -1;

  virtual ~Handler() = default;
  // The ack's result byte (0..255) for `request`, or kPending. `connection` is
  // unique within the worker for its life; `token` is unique per request.
  virtual int handle(const protocol::Request& request, uint64_t connection, uint64_t token) = 0;
  // After the requests of one read, before their acks are flushed.
  virtual void batchEnd() {}
  virtual void opened(uint64_t /*connection*/) {}
  // The connection is gone; its pending requests still get completed.
  virtual void closed(uint64_t /*connection*/) {}
};

// The default: every Conn and Submit is accepted at once.
class AckHandler final : public Handler {
 public:
  int handle(const protocol::Request&, uint64_t, uint64_t) override { return protocol::kResultOk; }
};

}  // namespace tcpfork
