#include "base/log.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

namespace tcpfork {

void initLogging(std::string_view role, std::string_view level) {
  // Thread-safe: a handler module may log from threads of its own.
  auto logger = spdlog::stderr_logger_mt(std::string(role));
  logger->set_pattern(fmt::format("%Y-%m-%d %H:%M:%S.%e [{} %P] %l: %v", role));
  logger->set_level(spdlog::level::from_str(std::string(level)));
  // Warnings and errors reach the terminal or journal at once.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

void redirectOutputTo(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "open(" + path + ")");
  std::fflush(stdout);
  std::fflush(stderr);
  int rc = (::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0) ? errno : 0;
  ::close(fd);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "dup2(" + path + ")");
}

bool RateLimitedLog::admit(Clock::time_point now, uint64_t& dropped) {
  dropped = 0;
  if (now - windowStart_ >= window_) {
    windowStart_ = now;
    admittedInWindow_ = 0;
  }
  if (admittedInWindow_ >= perWindow_) {
    ++suppressed_;
    return false;
  }
  ++admittedInWindow_;
  dropped = suppressed_;
  suppressed_ = 0;
  return true;
}

uint64_t RateLimitedLog::takeSummary(Clock::time_point now) {
  if (suppressed_ == 0 || now - windowStart_ < window_) return 0;
  windowStart_ = now;
  admittedInWindow_ = perWindow_;
  return std::exchange(suppressed_, 0);
}

void RateLimitedLog::flush(Clock::time_point now) {
  if (uint64_t dropped = takeSummary(now)) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(window_).count();
    spdlog::log(level_, "({} {} suppressed in the last {} s)", dropped, what_, double(ms) / 1000);
  }
}

}  // namespace tcpfork
