#include "worker/handler_module.h"

#include <dlfcn.h>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "base/log.h"

#include "worker/slot_publisher.h"

#include "contract/worker_settings.h"

// The opaque tcpfork_host of the ABI: what a module's callbacks need.
struct tcpfork_host {
  std::string name;  // the module's, for its log lines (escaped: escapeForLog)
  tcpfork::stats::Slot* slot;
  bool counting;
  bool initializing = true;  // counter() is for init only
  int declared = 0;
  // The last error (level 3) it logged, from whatever thread, escaped: what
  // a worker it stops quotes as the reason.
  std::mutex errorMutex;
  std::string lastError;
};

namespace tcpfork {
namespace {

// See handler_module.h: the ABI's complete() has no host argument.
std::atomic<Completions*> gCompletions{nullptr};

// The module's description for a forked child's last words, written when the
// module loads: the child must not allocate or take spdlog's lock (a module
// thread may have held it at the fork).
char gForkedChildName[512] = "handler module";

// Declares the next of the slot's module counters: name and help first, then
// the count with a release store (layout.h).
int hostCounter(tcpfork_host* host, const char* name, const char* help) {
  std::string text = name ? name : "(null)";
  auto refuse = [&](const char* why) {
    spdlog::error("handler module {}: counter '{}' refused: {}", host->name, escapeForLog(text), why);
    return -1;
  };
  if (!host->initializing) return refuse("counters are declared in init only");
  if (!name) return refuse(stats::handlerCounterNameProblem(""));
  if (const char* why = stats::handlerCounterNameProblem(text)) return refuse(why);
  stats::Slot& slot = *host->slot;
  for (int i = 0; i < host->declared; ++i) {
    if (text == slot.handlerCounters[i].name) return refuse("declared twice");
  }
  if (host->declared == int(stats::kHandlerCounters)) return refuse("a module has at most 16 counters");
  stats::HandlerCounter& counter = slot.handlerCounters[host->declared];
  std::memset(&counter, 0, sizeof counter);
  std::memcpy(counter.name, text.data(), text.size());
  // Help is any text: the master escapes it for the exposition, as it must
  // whatever a worker wrote. A long one is cut where a character starts.
  std::string_view about = help ? help : "";
  size_t kept = std::min(about.size(), sizeof counter.help - 1);
  while (kept < about.size() && kept > 0 && (static_cast<unsigned char>(about[kept]) & 0xc0) == 0x80) --kept;
  std::memcpy(counter.help, about.data(), kept);
  stats::storeRelease(slot.handlerCounterCount, uint64_t(++host->declared));
  return host->declared - 1;
}

void hostAdd(tcpfork_host* host, int counter, uint64_t n) {
  if (counter < 0 || counter >= host->declared || !host->counting) return;
  stats::add(host->slot->handlerCounters[counter].value, n);
}

void hostComplete(tcpfork_pending* pending, uint8_t result) {
  Completions* completions = gCompletions.load(std::memory_order_acquire);
  if (!completions) {
    spdlog::error("handler module: complete() after the module was destroyed; ignored");
    return;
  }
  completions->push(reinterpret_cast<uintptr_t>(pending), result);
}

void hostLog(tcpfork_host* host, int level, const char* message) {
  static constexpr spdlog::level::level_enum kLevels[] = {spdlog::level::debug, spdlog::level::info,
                                                          spdlog::level::warn, spdlog::level::err};
  auto spdLevel = level <= 0 ? kLevels[0] : level >= 3 ? kLevels[3] : kLevels[level];
  // A module may well log what a client sent: that must not make lines of its own.
  std::string text = message ? escapeForLog(message) : "(null)";
  spdlog::log(spdLevel, "[{}] {}", host->name, text);
  if (level >= 3) {
    std::lock_guard lock(host->errorMutex);
    host->lastError = std::move(text);
  }
}

}  // namespace

std::atomic<bool> HandlerModule::inForkedChild_{false};

std::string HandlerModule::lastError() const {
  std::lock_guard lock(host_->errorMutex);
  return host_->lastError;
}

void HandlerModule::exitForkedChild(const char* call) {
  char line[1024];
  int n = std::snprintf(line, sizeof line,
                        "worker pid %d: %s: its %s called fork() and the child returned into the worker; the child "
                        "exits now (a module's child must exec or _exit)\n",
                        int(::getpid()), gForkedChildName, call);
  if (n > 0) {
    ssize_t ignored = ::write(STDERR_FILENO, line, std::min(size_t(n), sizeof line - 1));
    (void)ignored;
  }
  ::_exit(kExitFatal);
}

HandlerModule::Library::~Library() {
  if (handle) ::dlclose(handle);
}

HandlerModule::HandlerModule(const std::string& path, const std::string& configJson, ModuleHostInfo info,
                             Completions& completions)
    : path_(path), description_(path) {
  static const int kAtFork =
      ::pthread_atfork(nullptr, nullptr, [] { inForkedChild_.store(true, std::memory_order_relaxed); });
  auto fail = [&](const std::string& why) { throw ModuleError("handler module " + path_ + ": " + why); };
  if (kAtFork != 0) fail(std::string("pthread_atfork: ") + std::strerror(kAtFork));
  library_.handle = ::dlopen(path_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library_.handle) fail("dlopen: " + escapeForLog(::dlerror()));
  auto* entry = reinterpret_cast<const tcpfork_handler* (*)()>(::dlsym(library_.handle, "tcpfork_handler_entry"));
  if (!entry) fail("no tcpfork_handler_entry: " + escapeForLog(::dlerror()));
  entry_ = entry();
  if (!entry_) fail("tcpfork_handler_entry() returned NULL");
  if (entry_->abi_version != TCPFORK_HANDLER_ABI_VERSION) {
    fail("ABI version " + std::to_string(entry_->abi_version) + "; this worker speaks version " +
         std::to_string(TCPFORK_HANDLER_ABI_VERSION));
  }
  if (!entry_->init || !entry_->handle) fail("init and handle are required");
  // The module's own text, like its log and error messages: every log line
  // that quotes it gets it escaped.
  std::string name = entry_->name && *entry_->name ? escapeForLog(entry_->name) : "unnamed";
  description_ = name + " (" + path_ + ")";
  std::snprintf(gForkedChildName, sizeof gForkedChildName, "handler module %s", description_.c_str());
  if (!info.slot) fail("no stats slot for its counters");
  host_ = std::make_unique<tcpfork_host>(name, info.slot, info.counting);
  api_.worker_index = info.workerIndex;
  api_.generation = info.generation;
  api_.counter = hostCounter;
  api_.add = hostAdd;
  api_.complete = hostComplete;
  api_.log = hostLog;

  Completions* none = nullptr;
  if (!gCompletions.compare_exchange_strong(none, &completions)) fail("another module is loaded in this worker");
  char err[1024] = "";
  state_ = entry_->init(host_.get(), &api_, configJson.c_str(), err, sizeof err);
  leaveIfForkedChild("init");
  if (!state_) {
    gCompletions.store(nullptr);
    err[sizeof err - 1] = '\0';
    fail("init failed: " + (*err ? escapeForLog(err) : std::string("(no message)")));
  }
  host_->initializing = false;
  spdlog::info("handler module {} loaded", description_);
}

HandlerModule::~HandlerModule() {
  if (entry_->destroy) entry_->destroy(state_);
  leaveIfForkedChild("destroy");
  // The module has joined its threads (the ABI asks it to, in destroy): no
  // complete() can still be running.
  gCompletions.store(nullptr, std::memory_order_release);
}

int HandlerModule::invalidResult(int result) {
  count(host_->counting ? host_->slot : nullptr, stats::Counter::kHandlerInvalidResults, 1);
  if (!invalidResultSaid_) {
    invalidResultSaid_ = true;
    spdlog::error(
        "handler module {}: handle() returned {}, which is neither a result (0..255) nor TCPFORK_PENDING (-1); "
        "every such request is acked with result {} (TCPFORK_RESULT_HANDLER_ERROR) and counted in "
        "handler_invalid_results_total (said once per worker)",
        description_, result, TCPFORK_RESULT_HANDLER_ERROR);
  }
  return TCPFORK_RESULT_HANDLER_ERROR;
}

void HandlerModule::batchEnd() {
  if (entry_->batch_end) entry_->batch_end(state_);
  leaveIfForkedChild("batch_end");
}

void HandlerModule::opened(uint64_t connection) {
  if (entry_->open) entry_->open(state_, connection);
  leaveIfForkedChild("open");
}

void HandlerModule::closed(uint64_t connection) {
  if (entry_->close) entry_->close(state_, connection);
  leaveIfForkedChild("close");
}

}  // namespace tcpfork
