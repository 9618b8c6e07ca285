#include "client/send.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "base/log.h"
#include "base/socket.h"
#include "protocol/codec.h"

namespace tcpfork::client {
namespace {

using namespace protocol;

Id parseId(const std::string& text) {
  bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits && text.size() <= kIdBytes) return formatId(std::stoull(text));
  if (text.size() != kIdBytes) {
    throw std::invalid_argument(fmt::format("--id '{}': an ID is 8 bytes (or up to 8 digits)", text));
  }
  Id id;
  std::memcpy(id.data(), text.data(), kIdBytes);
  return id;
}

void writeAll(int fd, const std::vector<std::byte>& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(fmt::format("send(): {}", std::strerror(errno)));
    done += static_cast<size_t>(n);
  }
}

// Reads until one ack frame is complete or the deadline passes.
std::vector<std::byte> readAck(int fd, std::chrono::steady_clock::time_point deadline) {
  std::vector<std::byte> in(kAckFrameBytes);
  size_t have = 0;
  while (have < kAckFrameBytes) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("timed out waiting for the ack");
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) throw std::runtime_error(fmt::format("poll(): {}", std::strerror(errno)));
    if (ready == 0) continue;
    ssize_t n = ::read(fd, in.data() + have, in.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(fmt::format("read(): {}", std::strerror(errno)));
    if (n == 0) throw std::runtime_error(fmt::format("server closed the connection after {} bytes", have));
    have += static_cast<size_t>(n);
  }
  return in;
}

}  // namespace

int runSend(const SendOptions& options) {
  try {
    Id id = parseId(options.id);
    Command command = options.conn ? Command::kConn : Command::kSubmit;
    auto payload = options.conn ? std::span<const std::byte>() : asBytes(options.payload);
    std::vector<std::byte> frame(requestFrameBytes(payload.size()));
    encodeRequest(command, id, payload, frame.data());

    UniqueFd fd = connectTcp(parseAddress(options.addr));
    auto start = std::chrono::steady_clock::now();
    writeAll(fd.get(), frame);
    auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                std::chrono::duration<double>(options.timeoutSeconds));
    std::vector<std::byte> reply = readAck(fd.get(), deadline);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

    auto decoded = decodeAck(reply, kDefaultMaxFrameBytes);
    if (decoded.status != DecodeStatus::kFrame) {
      fmt::print(stderr, "tcpfork-client: malformed ack ({})\n", decodeErrorName(decoded.error));
      return 2;
    }
    const Ack& ack = decoded.message;
    const char* name = ack.command == Command::kConnAck ? "ConnAck" : "SubmitAck";
    // The ID is the server's bytes: they must not drive the terminal.
    const char* meaning = ack.result == kResultBusy ? " (busy)" : "";
    fmt::print("{} id={} result={}{} rtt={:.3f} ms\n", name, escapeForLog(asText(ack.id)), ack.result, meaning, ms);
    if (ack.command != ackFor(command) || std::memcmp(ack.id.data(), id.data(), kIdBytes) != 0) {
      fmt::print(stderr, "tcpfork-client: the ack does not match the request\n");
      return 2;
    }
    return ack.result == kResultOk ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "tcpfork-client: {}\n", e.what());
    return 2;
  }
}

}  // namespace tcpfork::client
