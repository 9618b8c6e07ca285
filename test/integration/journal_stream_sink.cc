// journal_stream_sink: runs a command in a mount namespace of its own whose
// /run is empty but for a stand-in for journald's stdout socket
// (/run/systemd/journal/stdout, where sd_journal_stream_fd connects), and
// appends every byte written to it to OUTPUT: a daemon's journal stream,
// readable by a test on a machine where journald does not run. With --none
// there is no socket at all: journald is absent.
//
//   journal_stream_sink [--none] OUTPUT COMMAND [ARG...]
//
// Prints "exit N" (the command's wait status decoded) once the command ends,
// keeps collecting what its descendants still write, and exits on SIGTERM or
// after kLifetime. Needs root (a mount namespace).

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr const char* kSocketPath = "/run/systemd/journal/stdout";
// Longer than any test that starts it; a sink its test forgot dies anyway.
constexpr auto kLifetime = std::chrono::minutes(5);

volatile sig_atomic_t stopping = 0;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "journal_stream_sink: %s: %s\n", what, std::strerror(errno));
  std::exit(2);
}

void writeAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("write(OUTPUT)");
    data += n;
    size -= size_t(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int arg = 1;
  bool listen = true;
  if (arg < argc && std::strcmp(argv[arg], "--none") == 0) {
    listen = false;
    ++arg;
  }
  if (argc - arg < 2) {
    std::fprintf(stderr, "usage: journal_stream_sink [--none] OUTPUT COMMAND [ARG...]\n");
    return 2;
  }
  int output = ::open(argv[arg], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (output < 0) die("open(OUTPUT)");
  char** command = argv + arg + 1;

  if (::unshare(CLONE_NEWNS) != 0) die("unshare(CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die("mount(/, private)");
  if (::mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) die("mount(tmpfs, /run)");

  int listener = -1;
  if (listen) {
    if (::mkdir("/run/systemd", 0755) != 0 || ::mkdir("/run/systemd/journal", 0755) != 0) die("mkdir");
    listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listener < 0) die("socket");
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, kSocketPath, sizeof address.sun_path - 1);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) die("bind");
    if (::listen(listener, 16) != 0) die("listen");
  }

  struct sigaction onTerm {};
  onTerm.sa_handler = [](int) { stopping = 1; };
  ::sigaction(SIGTERM, &onTerm, nullptr);

  pid_t child = ::fork();
  if (child < 0) die("fork");
  if (child == 0) {
    ::execv(command[0], command);
    die("execv(COMMAND)");
  }

  std::vector<pollfd> fds;
  if (listener >= 0) fds.push_back({listener, POLLIN, 0});
  auto deadline = std::chrono::steady_clock::now() + kLifetime;
  bool reaped = false;
  char buffer[65536];
  while (!stopping && std::chrono::steady_clock::now() < deadline) {
    if (!reaped) {
      int status = 0;
      if (::waitpid(child, &status, WNOHANG) == child) {
        reaped = true;
        std::printf("exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        std::fflush(stdout);
      }
    }
    int ready = ::poll(fds.data(), fds.size(), 20);
    if (ready < 0 && errno != EINTR) die("poll");
    if (ready <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (fds[i].fd == listener) {
        int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (connection >= 0) fds.push_back({connection, POLLIN, 0});
        continue;
      }
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        writeAll(output, buffer, size_t(n));
      } else if (n == 0 || errno != EAGAIN) {
        ::close(fds[i].fd);
        fds[i].fd = -1;  // poll ignores it from now on
      }
    }
  }
  if (!reaped) ::kill(child, SIGKILL);
  return 0;
}
