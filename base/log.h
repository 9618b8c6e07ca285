#pragma once
// Process-wide logging set-up (spdlog) and a rate limiter for messages a peer
// can trigger at will. Every line carries the role and the pid, so the
// interleaved output of a master and its workers stays attributable.

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

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

// Admits at most `perWindow` messages per window (one second unless told)
// and reports how many were dropped once the next window opens. One per call
// site; used from a single loop thread, so not thread safe.
//
// A caller that also calls flush() periodically gets a condition that
// persists logged once and then counted: each window that dropped messages
// ends in one line saying how many, and the next window admits none until a
// whole window passes without any.
class RateLimitedLog {
 public:
  using Clock = std::chrono::steady_clock;

  // `what` names the dropped messages in the lines that count them.
  explicit RateLimitedLog(unsigned perWindow = 10, Clock::duration window = std::chrono::seconds(1),
                          std::string what = "similar messages")
      : perWindow_(perWindow), window_(window), what_(std::move(what)) {}

  template <typename... Args>
  void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    log(spdlog::level::warn, fmt, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(spdlog::format_string_t<Args...> fmt, Args&&... args) {
    log(spdlog::level::info, fmt, std::forward<Args>(args)...);
  }

  // Once the window is over: says how many messages it dropped, if any, and
  // opens a window that admits none.
  void flush(Clock::time_point now);

  // Exposed for tests: returns whether a message at `now` may be logged and
  // sets `dropped` to the count suppressed since the last admitted one.
  bool admit(Clock::time_point now, uint64_t& dropped);
  // Exposed for tests: flush()'s decision; the count to report, or 0.
  uint64_t takeSummary(Clock::time_point now);

 private:
  template <typename... Args>
  void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt, Args&&... args) {
    uint64_t dropped = 0;
    if (!admit(Clock::now(), dropped)) {
      level_ = level;
      return;
    }
    if (dropped > 0) spdlog::log(level, "({} {} suppressed)", dropped, what_);
    spdlog::log(level, fmt, std::forward<Args>(args)...);
  }

  unsigned perWindow_;
  Clock::duration window_;
  std::string what_;
  Clock::time_point windowStart_{};
  unsigned admittedInWindow_ = 0;
  uint64_t suppressed_ = 0;
  spdlog::level::level_enum level_ = spdlog::level::warn;  // of the last one dropped
};

}  // namespace tcpfork
