#include "master/daemon.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <system_error>

#include "base/log.h"

namespace tcpfork {

int daemonize(const std::string& logFile) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2()");
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t first = ::fork();
  if (first < 0) throw std::system_error(errno, std::generic_category(), "fork()");
  if (first > 0) {
    // The launcher: wait for the daemon's word (EOF without one = it died).
    ::close(fds[1]);
    std::string message;
    char buffer[512];
    ssize_t n;
    while ((n = ::read(fds[0], buffer, sizeof buffer)) != 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      message.append(buffer, size_t(n));
    }
    int status;
    ::waitpid(first, &status, 0);
    if (message.rfind("READY", 0) == 0) std::exit(0);
    fmt::print(stderr, "tcpfork: {}\n", message.empty() ? "the daemon exited before it was ready" : message);
    std::exit(1);
  }
  ::close(fds[0]);
  ::setsid();
  pid_t second = ::fork();
  if (second < 0) _exit(1);
  if (second > 0) _exit(0);
  if (::chdir("/") != 0) {
    reportDaemonFailure(fds[1], fmt::format("chdir(/): {}", std::strerror(errno)));
    std::exit(1);
  }
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::close(null);
  }
  if (!logFile.empty()) {
    try {
      redirectOutputTo(logFile);
    } catch (const std::exception& e) {
      reportDaemonFailure(fds[1], e.what());
      std::exit(1);
    }
  }
  return fds[1];
}

void reportDaemonFailure(int readyFd, const std::string& message) {
  if (readyFd < 0) return;
  ssize_t ignored = ::write(readyFd, message.data(), message.size());
  (void)ignored;
  ::close(readyFd);
}

}  // namespace tcpfork
