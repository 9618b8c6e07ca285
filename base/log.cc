#include "base/log.h"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace tcpfork {

void initLogging(std::string_view role, std::string_view level) {
  auto logger = spdlog::stderr_logger_st(std::string(role));
  logger->set_pattern(fmt::format("%Y-%m-%d %H:%M:%S.%e [{} %P] %l: %v", role));
  logger->set_level(spdlog::level::from_str(std::string(level)));
  // Warnings and errors reach the terminal or journal at once.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
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
