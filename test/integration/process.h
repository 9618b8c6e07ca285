#pragma once
// Test fixture helpers: a child process owned by pid (killed and reaped on
// destruction), bounded waiting, and a blocking test connection with timeouts.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/socket.h"
#include "base/unique_fd.h"
#include "protocol/frame.h"

namespace tcpfork::test {

using namespace std::chrono_literals;

// Path of a built binary: TCPFORK_BIN_DIR/name.
std::string binary(const std::string& name);

// Polls `condition` every 5 ms until it holds or `timeout` passes.
bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

class ChildProcess {
 public:
  // fork + exec of argv[0]. `inheritFds` stay open in the child under the same
  // numbers; stdout and stderr go to `logPath` (appended) when given.
  ChildProcess(const std::vector<std::string>& argv, const std::vector<int>& inheritFds = {},
               const std::string& logPath = "");
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signal) const;
  // Waits for the child to exit; returns its wait status, or nullopt on timeout.
  std::optional<int> waitExit(std::chrono::milliseconds timeout);
  bool running();

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Every directory above `path` lets others search it: a worker that dropped
// to `nobody` can exec the binary there.
bool reachableByOthers(std::string path);

// The value of `field` in /proc/PID/status ("Uid", "CapEff", "VmRSS"), from
// its first non-blank character; empty when the process or field is absent.
std::string statusField(pid_t pid, const std::string& field);
// A size `field` of /proc/PID/status ("VmRSS", "VmData": kB there) in bytes,
// or 0.
size_t statusBytes(pid_t pid, const std::string& field);
// Resident set size of a process in bytes, or 0.
inline size_t residentBytes(pid_t pid) { return statusBytes(pid, "VmRSS"); }

// The pids whose parent is `parent` now (from /proc/PID/stat).
std::vector<pid_t> childPids(pid_t parent);

std::string readFile(const std::string& path);
// How many times `needle` occurs in `haystack`, overlapping ones included.
size_t count(const std::string& haystack, const std::string& needle);

// A fresh, empty file path under the test temp dir.
std::string tempPath(const std::string& stem);

// A directory path under the test temp dir (tempPath), removed with all it
// holds when the object goes.
struct TempDir {
  std::string path = tempPath("dir");
  TempDir() = default;
  explicit TempDir(const std::string& stem) : path(tempPath(stem)) {}
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// The paths of the files in `dir` whose names end with `suffix` (none when
// `dir` cannot be read).
std::vector<std::string> filesEndingWith(const std::string& dir, const std::string& suffix);

// "<pid>-<random>", unique to this test process among all runs: for names
// outside the temp dir (stats segments), which a crashed run may leave.
std::string uniqueTag();
// "tcpfork-test-<uniqueTag>-<n>", a new n each call: an instance (stats
// segment) name of its own for each master or segment a test makes.
std::string uniqueName();

// A blocking client socket whose reads give up after a timeout.
class TestConnection {
 public:
  explicit TestConnection(int port, std::chrono::milliseconds readTimeout = 5s);
  void send(std::span<const std::byte> bytes);
  void send(const std::vector<std::byte>& bytes) { send(std::span<const std::byte>(bytes)); }
  // Reads exactly n bytes; returns fewer when the peer closed or the timeout hit.
  std::vector<std::byte> read(size_t n);
  // True when the peer closes (EOF or reset) within `timeout`, ignoring data.
  bool closedWithin(std::chrono::milliseconds timeout);
  void shutdownWrite();
  void close() { fd_.reset(); }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

// Bytes from literal values, for hand-made frames.
std::vector<std::byte> bytes(std::initializer_list<int> values);
std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b);

// The size of every ack (ConnAck and SubmitAck): length, command, ID, result.
inline constexpr size_t kAckBytes = protocol::kAckFrameBytes;

// "127.0.0.1:PORT", for the client's --addr.
std::string addr(int port);

// Bytes of one Submit with id formatId(n) and `payload`.
std::vector<std::byte> submitFrame(uint64_t n, std::string_view payload = "hello");
// Bytes of the SubmitAck expected for id formatId(n).
std::vector<std::byte> submitAckFrame(uint64_t n);

}  // namespace tcpfork::test
