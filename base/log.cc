#include "base/log.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

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

bool RateLimitedLog::admit(std::chrono::steady_clock::time_point now, uint64_t& dropped) {
  dropped = 0;
  if (now - windowStart_ >= std::chrono::seconds(1)) {
    windowStart_ = now;
    admittedInWindow_ = 0;
  }
  if (admittedInWindow_ >= perSecond_) {
    ++suppressed_;
    return false;
  }
  ++admittedInWindow_;
  dropped = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace tcpfork
