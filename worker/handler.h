#pragma once
// Handler: the business-logic seam. The connection decodes a request, asks the
// handler for the ack's result byte and encodes the ack itself (the ack's
// command and ID are fixed by the protocol). Called on the worker loop for
// every request, so it must not block.

#include <cstdint>

#include "protocol/frame.h"

namespace tcpfork {

class Handler {
 public:
  virtual ~Handler() = default;
  // Returns the result byte of the ack for `request`; protocol::kResultOk is success.
  virtual uint8_t handle(const protocol::Request& request) = 0;
};

// The default: every Conn and Submit is accepted.
class AckHandler final : public Handler {
 public:
  uint8_t handle(const protocol::Request&) override { return protocol::kResultOk; }
};

}  // namespace tcpfork
