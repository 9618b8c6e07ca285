#include "master/supervise/spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <system_error>

#include "base/unique_fd.h"

namespace tcpfork {
namespace {

// Child side: report `what` failed with errno through the pipe, then exit.
[[noreturn]] void childFail(int reportFd, int step) {
  int report[2] = {step, errno};
  ssize_t ignored = ::write(reportFd, report, sizeof report);
  (void)ignored;
  _exit(127);
}

constexpr const char* kSteps[] = {"fcntl(inherit fd)", "setgroups", "setgid", "setuid", "execve"};

}  // namespace

pid_t spawnProcess(const SpawnRequest& request) {
  std::vector<char*> argv;
  for (const auto& a : request.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // The environment is built before fork: the child may not allocate.
  std::vector<std::string> envStrings;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    auto name = entry.substr(0, entry.find('=') + 1);
    bool replaced = std::any_of(request.env.begin(), request.env.end(),
                                [&](const std::string& extra) { return extra.starts_with(name); });
    if (!replaced) envStrings.emplace_back(entry);
  }
  envStrings.insert(envStrings.end(), request.env.begin(), request.env.end());
  std::vector<char*> envp;
  for (auto& e : envStrings) envp.push_back(e.data());
  envp.push_back(nullptr);

  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2()");
  UniqueFd readEnd(pipeFds[0]);
  UniqueFd writeEnd(pipeFds[1]);
  pid_t parent = ::getpid();

  // Block every signal across fork: a signal arriving in the child before its
  // dispositions are reset would run the master's libevent handler there and
  // write into the master's signal socketpair.
  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &saved);
  pid_t pid = ::fork();
  if (pid < 0) {
    int error = errno;
    sigprocmask(SIG_SETMASK, &saved, nullptr);
    throw std::system_error(error, std::generic_category(), "fork()");
  }
  if (pid == 0) {
    // Async-signal-safe calls only from here to exec.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s) sigaction(s, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (request.dieWithParent) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) _exit(0);  // the master died before prctl
    }
    // A master granted CAP_BPF and CAP_NET_ADMIN as ambient capabilities (to
    // load the steering program) would pass them through execve to the
    // workers; they need neither. Fails only on kernels without ambient
    // capabilities (before 4.3), which then have none to pass.
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    for (int fd : request.inheritFds) {
      int flags = ::fcntl(fd, F_GETFD);
      if (flags < 0 || ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) != 0) childFail(pipeFds[1], 0);
    }
    if (request.gid) {
      gid_t gid = *request.gid;
      if (::setgroups(1, &gid) != 0) childFail(pipeFds[1], 1);
      if (::setgid(gid) != 0) childFail(pipeFds[1], 2);
    }
    if (request.uid && ::setuid(*request.uid) != 0) childFail(pipeFds[1], 3);
    ::execve(argv[0], argv.data(), envp.data());
    childFail(pipeFds[1], 4);
  }

  sigprocmask(SIG_SETMASK, &saved, nullptr);
  writeEnd.reset();
  int report[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(readEnd.get(), report, sizeof report);
  } while (n < 0 && errno == EINTR);
  if (n == sizeof report) {
    int status;
    ::waitpid(pid, &status, 0);
    throw std::system_error(report[1], std::generic_category(),
                            std::string(kSteps[report[0]]) + " for " + request.argv[0]);
  }
  return pid;
}

}  // namespace tcpfork
