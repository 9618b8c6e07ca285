#include "test/integration/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

#include "protocol/codec.h"

namespace tcpfork::test {

std::string binary(const std::string& name) { return std::string(TCPFORK_BIN_DIR) + "/" + name; }

bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::vector<int>& inheritFds,
                           const std::string& logPath) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int logFd = -1;
  if (!logPath.empty()) {
    logFd = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logFd < 0) throw std::runtime_error("open(" + logPath + "): " + std::strerror(errno));
  }
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork(): ") + std::strerror(errno));
  if (pid_ == 0) {
    // Only async-signal-safe calls from here to exec.
    for (int fd : inheritFds) {
      int flags = ::fcntl(fd, F_GETFD);
      ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    if (logFd >= 0) {
      ::dup2(logFd, STDOUT_FILENO);
      ::dup2(logFd, STDERR_FILENO);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  if (logFd >= 0) ::close(logFd);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(other.status_) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
}

void ChildProcess::signal(int signal) const {
  if (pid_ > 0) ::kill(pid_, signal);
}

std::optional<int> ChildProcess::waitExit(std::chrono::milliseconds timeout) {
  waitUntil([&] { return !running(); }, timeout);
  return status_;
}

bool ChildProcess::running() {
  if (status_ || pid_ <= 0) return false;
  int status;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = status;
    return false;
  }
  return true;
}

bool reachableByOthers(std::string path) {
  while (!path.empty() && path != "/") {
    path = path.substr(0, path.rfind('/'));
    struct stat st {};
    if (::stat(path.empty() ? "/" : path.c_str(), &st) != 0 || !(st.st_mode & S_IXOTH)) return false;
  }
  return true;
}

std::string statusField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    size_t value = line.find_first_not_of(" \t", field.size() + 1);
    return value == std::string::npos ? "" : line.substr(value);
  }
  return "";
}

size_t statusBytes(pid_t pid, const std::string& field) {
  std::string kib = statusField(pid, field);
  return kib.empty() ? 0 : std::stoul(kib) * 1024;
}

std::vector<pid_t> childPids(pid_t parent) {
  std::vector<pid_t> children;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
    // the fields start after its last ')'.
    std::string stat = readFile(entry.path().string() + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(stat.substr(close + 1));
    char state = 0;
    pid_t ppid = 0;
    if (fields >> state >> ppid && ppid == parent) children.push_back(pid_t(std::stol(name)));
  }
  return children;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

namespace {

// Every file a test process makes lives in one directory, removed when all of
// its tests passed (kept for a look otherwise). mkdtemp makes it fresh even
// when an earlier run with the same pid left its directory behind: a stale
// log there would satisfy the next test's readiness wait.
const std::string& testDir() {
  static const std::string kDir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base ? base : "/tmp") + "/tcpfork-test-" + std::to_string(::getpid()) + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp(" + pattern + "): " + std::strerror(errno));
    }
    return pattern;
  }();
  return kDir;
}

class RemoveTestDirOnSuccess : public ::testing::Environment {
 public:
  void TearDown() override {
    if (!::testing::UnitTest::GetInstance()->Passed()) return;
    std::error_code ec;
    std::filesystem::remove_all(testDir(), ec);
  }
};

[[maybe_unused]] const auto* const kCleanup = ::testing::AddGlobalTestEnvironment(new RemoveTestDirOnSuccess);

}  // namespace

std::string uniqueTag() {
  static const std::string kTag = std::filesystem::path(testDir()).filename().string().substr(sizeof "tcpfork-test-" - 1);
  return kTag;
}

std::string uniqueName() {
  static std::atomic<int> counter{0};
  return "tcpfork-test-" + uniqueTag() + "-" + std::to_string(counter++);
}

std::string tempPath(const std::string& stem) {
  static std::atomic<int> counter{0};
  return testDir() + "/" + std::to_string(counter++) + "-" + stem;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

std::vector<std::string> filesEndingWith(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().string().ends_with(suffix)) out.push_back(e.path().string());
  }
  return out;
}

TestConnection::TestConnection(int port, std::chrono::milliseconds readTimeout)
    : fd_(connectTcp(parseAddress("127.0.0.1:" + std::to_string(port)))) {
  timeval tv{static_cast<time_t>(readTimeout.count() / 1000), static_cast<suseconds_t>(readTimeout.count() % 1000 * 1000)};
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void TestConnection::send(std::span<const std::byte> bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd_.get(), bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string("send(): ") + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
}

std::vector<std::byte> TestConnection::read(size_t n) {
  std::vector<std::byte> out(n);
  size_t have = 0;
  while (have < n) {
    ssize_t r = ::read(fd_.get(), out.data() + have, n - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += static_cast<size_t>(r);
  }
  out.resize(have);
  return out;
}

bool TestConnection::closedWithin(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char sink[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_.get(), POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(1, left.count()))) <= 0) continue;
    ssize_t r = ::recv(fd_.get(), sink, sizeof sink, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
  }
  return false;
}

void TestConnection::shutdownWrite() { ::shutdown(fd_.get(), SHUT_WR); }

std::vector<std::byte> bytes(std::initializer_list<int> values) {
  std::vector<std::byte> out;
  for (int v : values) out.push_back(std::byte(v));
  return out;
}

std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string addr(int port) {
  return "127.0.0.1:" + std::to_string(port);
}

std::vector<std::byte> submitFrame(uint64_t n, std::string_view payload) {
  auto bytes = protocol::asBytes(payload);
  std::vector<std::byte> frame(protocol::requestFrameBytes(bytes.size()));
  protocol::encodeRequest(protocol::Command::kSubmit, protocol::formatId(n), bytes, frame.data());
  return frame;
}

std::vector<std::byte> submitAckFrame(uint64_t n) {
  std::vector<std::byte> frame(protocol::kAckFrameBytes);
  protocol::encodeAck(protocol::Command::kSubmitAck, protocol::formatId(n), protocol::kResultOk, frame.data());
  return frame;
}

}  // namespace tcpfork::test
