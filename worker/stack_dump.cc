#include "worker/stack_dump.h"

#include <dirent.h>
#include <execinfo.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>

#include "base/log.h"
#include "contract/worker_settings.h"
#include "worker/symbolizer.h"

namespace tcpfork {
namespace {

constexpr int kMaxThreads = 64;
constexpr int kMaxFrames = 64;
// How long the dump thread waits for every signalled thread to capture: far
// under the master's default hang_dump_grace (1 s), which must leave time
// to name and write the frames.
constexpr auto kGatherWindow = std::chrono::milliseconds(200);

struct Capture {
  pid_t tid;
  int depth;
  void* frames[kMaxFrames];
};

// Written by signal handlers, read by the dump thread once a round is in.
// One round at a time: `round` is 1 from the thread that fans out until the
// dump thread has written the round.
Capture gCaptures[kMaxThreads];
std::atomic<int> gTaken{0};     // slots claimed this round
std::atomic<int> gCaptured{0};  // slots filled this round
std::atomic<int> gExpected{0};  // threads signalled this round, the first included
std::atomic<int> gRound{0};
std::atomic<pid_t> gDumpTid{0};
sem_t gWake;

pid_t currentTid() { return pid_t(::syscall(SYS_gettid)); }

// Every thread of this process but the caller and the dump thread gets the
// signal again (tgkill: SI_TKILL, so it captures and passes nothing on).
// Only system calls: /proc/self/task read with getdents64.
int signalOtherThreads(int signal) {
  int fd = ::open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return 0;
  pid_t self = currentTid();
  pid_t pid = ::getpid();
  int sent = 0;
  alignas(8) char buffer[4096];
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      auto* entry = reinterpret_cast<dirent64*>(buffer + at);
      at += entry->d_reclen;
      pid_t tid = 0;
      for (const char* c = entry->d_name; *c >= '0' && *c <= '9'; ++c) tid = tid * 10 + (*c - '0');
      if (tid <= 0 || tid == self || tid == gDumpTid.load()) continue;
      if (sent + 1 < kMaxThreads && ::syscall(SYS_tgkill, pid, tid, signal) == 0) ++sent;
    }
  }
  ::close(fd);
  return sent;
}

void onSignal(int signal, siginfo_t* info, void*) {
  int savedErrno = errno;
  if (info->si_code != SI_TKILL) {
    // From outside (the master, or kill(1)): this thread starts a round,
    // unless one is still being written.
    int idle = 0;
    if (!gRound.compare_exchange_strong(idle, 1)) {
      errno = savedErrno;
      return;
    }
    gTaken.store(0);
    gCaptured.store(0);
    gExpected.store(1 + signalOtherThreads(signal));
  } else if (gRound.load() != 1) {
    errno = savedErrno;
    return;
  }
  int slot = gTaken.fetch_add(1);
  if (slot < kMaxThreads) {
    gCaptures[slot].tid = currentTid();
    gCaptures[slot].depth = ::backtrace(gCaptures[slot].frames, kMaxFrames);
    gCaptured.fetch_add(1);
  }
  ::sem_post(&gWake);
  errno = savedErrno;
}

std::string threadName(pid_t tid) {
  std::ifstream comm("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name.empty() ? "?" : name;
}

void writeRound() {
  int captured = std::min(gCaptured.load(), kMaxThreads);
  Symbolizer symbols;
  spdlog::error("stack dump ({}, which the master sends to a worker it is about to kill as hung): {} of {} threads",
                kStackDumpSignalName, captured, gExpected.load());
  for (int i = 0; i < captured; ++i) {
    const Capture& c = gCaptures[i];
    // The first frames are the capture's own: onSignal, which called
    // backtrace(3) (and, under a sanitizer, its runtime's wrapper), then the
    // signal return trampoline the kernel entered the handler from. The
    // frame after it is where the thread was interrupted.
    int first = 0;
    for (int f = 0; f < c.depth && f < 8; ++f) {
      if (symbols.isSignalTrampoline(c.frames[f])) {
        first = f + 1;
        break;
      }
    }
    std::string lines;
    for (int f = first; f < c.depth; ++f) {
      // A module's symbol and source names, and the names its threads gave
      // themselves, are its text, not ours.
      lines += fmt::format("\n  #{} {}", f - first, escapeForLog(symbols.describe(c.frames[f], f == first)));
    }
    spdlog::error("thread {} ({}){}", c.tid, escapeForLog(threadName(c.tid)), lines);
  }
}

}  // namespace

StackDump::StackDump(stats::Slot* slot) : slot_(slot) {
  if (::sem_init(&gWake, 0, 0) != 0) throw std::system_error(errno, std::generic_category(), "sem_init");
  // backtrace(3) loads its unwinder (libgcc_s) on first use, which
  // allocates: done here, never first in a signal handler.
  void* warm[2];
  ::backtrace(warm, 2);
  struct sigaction action {};
  action.sa_sigaction = &onSignal;
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (::sigaction(stackDumpSignal(), &action, nullptr) != 0) {
    throw std::system_error(errno, std::generic_category(), "sigaction(stack dump signal)");
  }
  thread_ = std::thread([this] { run(); });
}

StackDump::~StackDump() {
  ::signal(stackDumpSignal(), SIG_IGN);
  gRound.store(2);  // tells the thread to end
  ::sem_post(&gWake);
  thread_.join();
}

void StackDump::run() {
  // This thread takes no stack dump signal: it writes the dump.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, stackDumpSignal());
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  gDumpTid.store(currentTid());
  for (;;) {
    while (::sem_wait(&gWake) != 0 && errno == EINTR) {
    }
    if (gRound.load() == 2) return;
    if (gRound.load() != 1) continue;
    // Give every signalled thread its moment to capture, bounded: a thread
    // blocked with the signal masked never will.
    auto deadline = std::chrono::steady_clock::now() + kGatherWindow;
    while (gCaptured.load() < gExpected.load() && std::chrono::steady_clock::now() < deadline) {
      struct timespec until {};
      ::clock_gettime(CLOCK_REALTIME, &until);
      until.tv_nsec += 5'000'000;
      if (until.tv_nsec >= 1'000'000'000) {
        until.tv_sec += 1;
        until.tv_nsec -= 1'000'000'000;
      }
      ::sem_timedwait(&gWake, &until);
    }
    try {
      writeRound();
    } catch (const std::exception& e) {
      spdlog::error("stack dump: {}", e.what());
    }
    if (slot_) stats::add(slot_->stackDumps, 1);
    // Posts of this round not consumed yet go; one still to come finds no
    // round in progress and is skipped.
    while (::sem_trywait(&gWake) == 0) {
    }
    int one = 1;
    gRound.compare_exchange_strong(one, 0);
  }
}

}  // namespace tcpfork
