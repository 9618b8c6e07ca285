#pragma once
// Process-wide logging set-up (spdlog) and a rate limiter for messages a peer
// can trigger at will. Every line carries the role and the pid, so the
// interleaved output of a master and its workers stays attributable.

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace tcpfork {

// Replaces the default logger with one writing to stderr as
// "2026-11-23 19:10:01.123 [worker.0 4242] warn: message".
// `level` is one of spdlog's names (trace, debug, info, warn, error, critical, off).
void initLogging(std::string_view role, std::string_view level = "info");

// Points stdout and stderr at `path` (append, created 0640), so every later
// log line of this process (and of children it starts) goes there. Used at
// start-up and on SIGUSR1 (log rotation). Throws std::system_error naming the path.
void redirectOutputTo(const std::string& path);

// Text that did not come from this program's own code (a handler module's
// name and messages, a worker's exit reason read from the stats segment, a
// peer's bytes), made safe to put in a log line: every C0 control character
// and DEL becomes an escape (\n, \r, \t, else \x1b style), as do the C1
// controls and the line and paragraph separators U+2028 and U+2029 (\u0085
// style), which some terminals and log readers obey, and every byte that is
// not part of valid UTF-8 (\xff style). So such text can neither start a line
// that looks like one of ours nor drive the operator's terminal, and journald
// keeps it as text. A backslash stays as it is, so escaping twice (a worker's
// message, quoted again by the master) changes nothing; the price, harmless in
// a log, is that "\x1b" typed out by the text itself reads the same as an ESC.
std::string escapeForLog(std::string_view text);

// Admits at most `perSecond` messages per one-second window and reports how
// many were dropped once the next window opens. One per call site; used from a
// single loop thread, so not thread safe.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(unsigned perSecond = 10) : perSecond_(perSecond) {}

  template <typename... Args>
  void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    uint64_t dropped = 0;
    if (!admit(std::chrono::steady_clock::now(), dropped)) return;
    if (dropped > 0) spdlog::warn("({} similar messages suppressed)", dropped);
    spdlog::warn(fmt, std::forward<Args>(args)...);
  }

  // Exposed for tests: returns whether a message at `now` may be logged and
  // sets `dropped` to the count suppressed since the last admitted one.
  bool admit(std::chrono::steady_clock::time_point now, uint64_t& dropped);

 private:
  unsigned perSecond_;
  std::chrono::steady_clock::time_point windowStart_{};
  unsigned admittedInWindow_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace tcpfork
