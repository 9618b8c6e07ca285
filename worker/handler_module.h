#pragma once
// HandlerModule: a handler module (DESIGN.md, "Handler modules") loaded into
// this worker, never into the master: the dlopen handle, the module's entry
// table, the state its init returned, and the host API it calls back. Every
// error names the module's path.
//
// complete() in the ABI carries no host pointer, so the one module of the
// process reaches the worker's Completions through a process-wide pointer,
// set while the module lives. Pending tokens are serial numbers, never
// reused, so a token completed twice is recognised instead of touching freed
// memory.
//
// A module that calls fork() and lets the child return into the worker
// would have that child run the worker's code: its loop shares the parent's
// epoll set, and its shutdown (it stops once it sees its parent is not the
// master) deletes the parent's registrations from that set, so the parent
// never accepts again while it still beats. A pthread_atfork child handler
// flags such a child; every return from the module checks the flag (one
// load) and the child _exits there, before it touches anything of the
// worker's. A child that execs or _exits, as a child should, never returns.

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>

#include "stats/layout.h"
#include "tcpfork/handler.h"
#include "worker/completions.h"
#include "worker/handler.h"

struct tcpfork_host;

namespace tcpfork {

class ModuleError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ModuleHostInfo {
  uint32_t workerIndex = 0;
  uint32_t generation = 0;
  stats::Slot* slot = nullptr;  // where the module's counters live
  bool counting = true;         // false with --no-stats: declared, never added to
};

class HandlerModule final : public Handler {
 public:
  // dlopen(RTLD_NOW | RTLD_LOCAL), the entry symbol, the ABI version, then
  // init with `configJson`. Throws ModuleError ("handler module PATH: why").
  HandlerModule(const std::string& path, const std::string& configJson, ModuleHostInfo info,
                Completions& completions);
  // The module's destroy, then dlclose.
  ~HandlerModule() override;
  HandlerModule(const HandlerModule&) = delete;
  HandlerModule& operator=(const HandlerModule&) = delete;

  // The module's handle and state, taken once per run of frames: the call is
  // opaque to the compiler, which would otherwise reload both from memory
  // after every request.
  class Caller {
   public:
    int operator()(const protocol::Request& request, uint64_t connection, uint64_t token) const {
      return (*this)(request.command, request.id.data(), request.payload, connection, token);
    }
    // The same from the pieces, for a caller that has them in registers: a
    // Request just returned through memory is read back with wide loads that
    // cannot be forwarded from its narrow stores, which costs more per frame
    // than the rest of the call (measured: 28% of a pipelined load).
    int operator()(protocol::Command command, const std::byte* id, std::span<const std::byte> payload,
                   uint64_t connection, uint64_t token) const {
      tcpfork_request r{connection, static_cast<uint8_t>(command), reinterpret_cast<const char*>(id),
                        reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
      int result = handle_(state_, &r, reinterpret_cast<tcpfork_pending*>(static_cast<uintptr_t>(token)));
      leaveIfForkedChild("handle");
      // One compare for every valid result byte; the rest is off the hot path.
      if (static_cast<unsigned>(result) <= 255u) [[likely]] return result;
      return result == TCPFORK_PENDING ? kPending : module_->invalidResult(result);
    }

    static Caller none() { return Caller(nullptr, nullptr, nullptr); }  // for the built-in path, never called

   private:
    friend class HandlerModule;
    Caller(decltype(tcpfork_handler::handle) handle, void* state, HandlerModule* module)
        : handle_(handle), state_(state), module_(module) {}
    decltype(tcpfork_handler::handle) handle_;
    void* state_;
    HandlerModule* module_;
  };
  Caller caller() { return Caller(entry_->handle, state_, this); }

  int handle(const protocol::Request& request, uint64_t connection, uint64_t token) override {
    return caller()(request, connection, token);
  }
  void batchEnd() override;
  void opened(uint64_t connection) override;
  void closed(uint64_t connection) override;

  // "NAME (PATH)", for log lines.
  const std::string& describe() const { return description_; }
  // The last error the module logged (escaped; empty: none), from any thread.
  std::string lastError() const;

  // After each call into the module: in a child that fork() created and the
  // module let return, says so on stderr (the log) and _exits.
  static void leaveIfForkedChild(const char* call) {
    if (inForkedChild_.load(std::memory_order_relaxed)) [[unlikely]] exitForkedChild(call);
  }

 private:
  [[noreturn]] static void exitForkedChild(const char* call);
  // Set by the pthread_atfork child handler, in the child only.
  static std::atomic<bool> inForkedChild_;
  // handle() returned neither a result byte nor TCPFORK_PENDING, the
  // module's bug: counted, said once per worker, and answered with
  // TCPFORK_RESULT_HANDLER_ERROR (its low byte could read as ok or busy).
  [[gnu::cold, gnu::noinline]] int invalidResult(int result);

  struct Library {
    void* handle = nullptr;
    ~Library();
  };

  std::string path_;
  std::string description_;
  Library library_;
  const tcpfork_handler* entry_ = nullptr;
  std::unique_ptr<tcpfork_host> host_;
  tcpfork_host_api api_{};
  void* state_ = nullptr;
  bool invalidResultSaid_ = false;
};

}  // namespace tcpfork
