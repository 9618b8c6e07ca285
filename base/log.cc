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

namespace {

// The length of the UTF-8 sequence `text` starts with, and its code point;
// 0 when it is not one (a stray continuation byte, a truncated sequence, an
// overlong form, a surrogate, past U+10FFFF).
size_t decodeUtf8(std::string_view text, char32_t& codePoint) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  unsigned char lead = byte(0);
  size_t length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 0;
  if (length == 0 || lead > 0xf4 || text.size() < length) return 0;
  codePoint = lead & (0x7f >> length);
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
    codePoint = (codePoint << 6) | (byte(i) & 0x3f);
  }
  static constexpr char32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (codePoint < kSmallest[length] || codePoint > 0x10ffff) return 0;
  if (codePoint >= 0xd800 && codePoint <= 0xdfff) return 0;
  return length;
}

}  // namespace

std::string escapeForLog(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += char(c);
      ++i;
    } else if (c < 0x80) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default: out += fmt::format("\\x{:02x}", c);
      }
      ++i;
    } else {
      char32_t codePoint = 0;
      size_t length = decodeUtf8(text.substr(i), codePoint);
      if (length == 0) {
        out += fmt::format("\\x{:02x}", c);
        ++i;
        continue;
      }
      if (codePoint <= 0x9f || codePoint == 0x2028 || codePoint == 0x2029) {
        out += fmt::format("\\u{:04x}", uint32_t(codePoint));
      } else {
        out.append(text.substr(i, length));
      }
      i += length;
    }
  }
  return out;
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
