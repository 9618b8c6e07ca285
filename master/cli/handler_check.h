#pragma once
// tcpfork -t with a handler module: the module's init and destroy run in a
// child (tcpfork-worker --check-handler), never in the master, whose address
// space a module must not touch. The child's output comes back as text.

#include <chrono>
#include <string>

#include "contract/worker_settings.h"

namespace tcpfork {

struct HandlerCheck {
  bool passed = false;
  std::string output;  // what the child printed (its message on failure), escaped (escapeForLog)
};

// Runs `workerBinary` in check mode on `handler`; a child that has not
// finished within `timeout` is killed and the check fails.
HandlerCheck checkHandlerModule(const std::string& workerBinary, const HandlerSettings& handler,
                                std::chrono::milliseconds timeout);

}  // namespace tcpfork
