#include "master/cli/handler_check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/log.h"
#include "base/unique_fd.h"

namespace tcpfork {
namespace {

// The child's output is the module's as much as ours (init's message, what
// it printed): each line escaped, and those after the first indented, so
// none can pass for a line of tcpfork's own or drive the terminal.
std::string quoteOutput(std::string_view text) {
  std::string out;
  for (size_t start = 0;;) {
    size_t end = text.find('\n', start);
    out += escapeForLog(text.substr(start, end - start));
    if (end == std::string_view::npos) return out;
    out += "\n  ";
    start = end + 1;
  }
}

}  // namespace

HandlerCheck checkHandlerModule(const std::string& workerBinary, const HandlerSettings& handler,
                                std::chrono::milliseconds timeout) {
  WorkerArgs args;
  args.settings.handler = handler;
  args.role = "check";
  args.checkHandler = true;
  std::vector<std::string> argv = {workerBinary};
  for (auto& a : toArgv(args)) argv.push_back(std::move(a));
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  // Inherited SIGCHLD=SIG_IGN would reap the child for us and hide its status.
  ::signal(SIGCHLD, SIG_DFL);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {false, fmt::format("pipe: {}", std::strerror(errno))};
  UniqueFd readEnd(fds[0]);
  UniqueFd writeEnd(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) return {false, fmt::format("fork: {}", std::strerror(errno))};
  if (pid == 0) {
    // Async-signal-safe calls only until exec.
    ::dup2(writeEnd.get(), STDOUT_FILENO);
    ::dup2(writeEnd.get(), STDERR_FILENO);
    ::execv(cargv[0], cargv.data());
    const char message[] = "cannot run the worker binary for the handler check\n";
    [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(127);
  }
  writeEnd.reset();

  HandlerCheck check;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timedOut = false;
  char buffer[4096];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    pollfd p{readEnd.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, int(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    ssize_t n = ::read(readEnd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EOF: the child is done (or closed its output)
    if (check.output.size() < 64 * 1024) check.output.append(buffer, size_t(n));
  }
  while (!check.output.empty() && check.output.back() == '\n') check.output.pop_back();
  check.output = quoteOutput(check.output);
  if (timedOut) ::kill(pid, SIGKILL);
  int status = 0;
  pid_t waited;
  while ((waited = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (waited != pid) {
    check.output += fmt::format("{}waitpid: {}", check.output.empty() ? "" : "\n", std::strerror(errno));
    return check;  // not passed: its status is unknown
  }
  // The deadline and the child's own end can cross: one that exited by
  // itself, before the kill landed, finished in time and says how it went.
  if (timedOut && WIFEXITED(status)) timedOut = false;
  if (timedOut) {
    // It may have said it passed and been killed before it could exit: that
    // line was true of init, and the limit still failed the check.
    bool said = check.output.find("init and destroy passed") != std::string::npos;
    check.output = said ? fmt::format("{}\nbut the check did not finish within {} ms", check.output, timeout.count())
                        : fmt::format("{}{}init did not return within {} ms", check.output,
                                      check.output.empty() ? "" : "\n", timeout.count());
  } else if (WIFSIGNALED(status)) {
    check.output += fmt::format("{}the check was killed by signal {} (a crash in the module's init or destroy?)",
                                check.output.empty() ? "" : "\n", WTERMSIG(status));
  }
  check.passed = !timedOut && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return check;
}

}  // namespace tcpfork
