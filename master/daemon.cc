#include "master/daemon.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <fmt/format.h>
#include <systemd/sd-journal.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

#include "base/log.h"

namespace tcpfork {
namespace {

// Connects stdout and stderr to journald, as systemd does for a service: the
// master's lines, its workers' (they inherit both) and whatever a handler
// module or a stack dump writes there. Connected from the daemon itself, so
// the journal attributes the stream to the master's pid.
void logToJournal() {
  int fd = sd_journal_stream_fd("tcpfork", LOG_INFO, /*level_prefix=*/0);
  if (fd < 0) {
    throw std::runtime_error(fmt::format("-d: the daemon would have nowhere to log: journald does not answer "
                                         "(sd_journal_stream_fd: {}); set log.file in the config, or --log-file",
                                         std::strerror(-fd)));
  }
  int rc = (::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0) ? errno : 0;
  ::close(fd);
  if (rc != 0) throw std::system_error(rc, std::generic_category(), "dup2(journal stream)");
}

}  // namespace

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
  try {
    if (!logFile.empty()) {
      redirectOutputTo(logFile);
    } else {
      logToJournal();
    }
  } catch (const std::exception& e) {
    reportDaemonFailure(fds[1], e.what());
    std::exit(1);
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
