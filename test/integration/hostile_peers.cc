#include "test/integration/hostile_peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "protocol/codec.h"
#include "test/integration/http_get.h"

namespace tcpfork::test {

std::vector<std::byte> submits(uint64_t firstId, size_t count, std::string_view payload) {
  std::vector<std::byte> out;
  for (uint64_t i = firstId; i < firstId + count; ++i) out = concat(std::move(out), submitFrame(i, payload));
  return out;
}

std::vector<std::byte> submitAcks(uint64_t firstId, size_t count) {
  std::vector<std::byte> out;
  for (uint64_t i = firstId; i < firstId + count; ++i) out = concat(std::move(out), submitAckFrame(i));
  return out;
}

Bystander::Bystander(const RunningMaster& master)
    : bench_({"--addr", "127.0.0.1:" + std::to_string(master.port()), "-c", std::to_string(kConnections), "-w", "8",
              "--rate", std::to_string(kRate), "-d", "120", "--drain", "5", "-q"}) {
  // Hostile traffic starts only once the bystander is being served.
  if (!waitUntil([&] { return metricValue(master.scrape(), "tcp_server_client_connected") == kConnections; }, 10s)) {
    throw std::runtime_error("the bystander's connections never showed up in tcp_server_client_connected");
  }
}

nlohmann::json Bystander::stop() {
  bench_.interrupt();
  ToolRun run = bench_.finish(30s);
  if (run.exitCode < 0 || run.report.is_discarded()) {
    ADD_FAILURE() << "the bystander did not report; its output:\n" << run.output;
    return nlohmann::json::object();
  }
  return run.report;
}

void expectFullService(const nlohmann::json& r) {
  ASSERT_TRUE(r.contains("sent")) << r.dump();
  EXPECT_GT(r["acked"].get<uint64_t>(), 0u) << r.dump();
  EXPECT_EQ(r["acked"], r["sent"]) << r.dump();
  EXPECT_EQ(r["errors_total"], 0) << r.dump();
  EXPECT_EQ(r["connects_failed"], 0) << r.dump();
  EXPECT_EQ(r["closed_by_server"], 0) << r.dump();
  EXPECT_EQ(r["unacked_at_end"], 0) << r.dump();
  EXPECT_GE(r["acks_per_sec"].get<double>(), Bystander::kRate / 10.0) << r.dump();
}

std::string summary(const nlohmann::json& r) {
  if (!r.contains("sent")) return "no report";
  char line[256];
  std::snprintf(line, sizeof line,
                "sent %llu acked %llu (%.0f/s over %.1f s) errors %llu connects_failed %llu closed_by_server %llu "
                "p99 %.2f ms max %.2f ms",
                r["sent"].get<unsigned long long>(), r["acked"].get<unsigned long long>(), r["acks_per_sec"].get<double>(),
                r["measured_s"].get<double>(), r["errors_total"].get<unsigned long long>(),
                r["connects_failed"].get<unsigned long long>(), r["closed_by_server"].get<unsigned long long>(),
                r["latency_ns"]["p99"].get<double>() / 1e6, r["latency_ns"]["max"].get<double>() / 1e6);
  return line;
}

RssPeak::RssPeak(std::set<pid_t> pids)
    : sampler_([this, pids = std::move(pids)](std::stop_token stop) {
        while (!stop.stop_requested()) {
          for (pid_t pid : pids) {
            size_t rss = residentBytes(pid);
            size_t seen = peak_.load();
            while (rss > seen && !peak_.compare_exchange_weak(seen, rss)) {
            }
          }
          std::this_thread::sleep_for(10ms);
        }
      }) {
  // The first sample is in before any hostile traffic starts.
  waitUntil([&] { return peak_.load() > 0; }, 2s);
}

RssPeak::~RssPeak() { sampler_.request_stop(); }

bool DescriptorLimit::raiseFor(rlim_t needed) {
  if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) return false;
  rlimit raised = saved_;
  // Raising the hard limit needs CAP_SYS_RESOURCE; without it setrlimit fails.
  if (raised.rlim_max != RLIM_INFINITY && raised.rlim_max < needed) raised.rlim_max = needed;
  raised.rlim_cur = raised.rlim_max == RLIM_INFINITY ? std::max(saved_.rlim_cur, needed) : raised.rlim_max;
  raised_ = ::setrlimit(RLIMIT_NOFILE, &raised) == 0;
  return raised_;
}

DescriptorLimit::~DescriptorLimit() {
  if (raised_) ::setrlimit(RLIMIT_NOFILE, &saved_);
}

UniqueFd connectLoopback(int port, int receiveBuffer) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw std::system_error(errno, std::generic_category(), "socket()");
  if (receiveBuffer > 0) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &receiveBuffer, sizeof receiveBuffer);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(uint16_t(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  while (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "connect()");
  }
  return fd;
}

namespace {

void markClosed(ScriptedPeer& peer, bool reset, std::chrono::steady_clock::time_point start) {
  peer.closed = true;
  peer.reset = reset;
  peer.closedAfter = std::chrono::steady_clock::now() - start;
}

void receive(ScriptedPeer& peer, std::chrono::steady_clock::time_point start) {
  std::byte buffer[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(peer.fd.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      peer.received.insert(peer.received.end(), buffer, buffer + n);
      continue;
    }
    if (n == 0) return markClosed(peer, false, start);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) markClosed(peer, true, start);
    return;
  }
}

// The bytes still to send now, or an empty span while waiting or done.
std::span<const std::byte> pending(ScriptedPeer& peer) {
  if (!peer.onSecond && peer.sent == peer.first.size() && !peer.second.empty() &&
      peer.received.size() >= peer.awaitBytes) {
    peer.onSecond = true;
    peer.sent = 0;
  }
  const auto& out = peer.onSecond ? peer.second : peer.first;
  return std::span<const std::byte>(out).subspan(peer.sent);
}

bool allSent(const ScriptedPeer& peer) {
  return peer.second.empty() ? peer.sent == peer.first.size() : peer.onSecond && peer.sent == peer.second.size();
}

void transmit(ScriptedPeer& peer, std::chrono::steady_clock::time_point start) {
  for (auto out = pending(peer); !out.empty(); out = pending(peer)) {
    ssize_t n = ::send(peer.fd.get(), out.data(), std::min<size_t>(out.size(), 256 * 1024), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      peer.sent += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    return markClosed(peer, true, start);  // EPIPE or reset: the server is gone
  }
  if (peer.shutWrite && allSent(peer)) {
    ::shutdown(peer.fd.get(), SHUT_WR);
    peer.shutWrite = false;  // once
  }
}

}  // namespace

size_t runPeers(std::vector<ScriptedPeer>& peers, int port, std::chrono::milliseconds timeout) {
  for (auto& peer : peers) peer.fd = connectLoopback(port);
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + timeout;
  std::vector<pollfd> polls;
  std::vector<ScriptedPeer*> polled;
  size_t closed = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    polls.clear();
    polled.clear();
    for (auto& peer : peers) {
      if (peer.closed) continue;
      transmit(peer, start);
      if (peer.closed) continue;
      short events = POLLIN;
      if (!pending(peer).empty()) events |= POLLOUT;
      polls.push_back({peer.fd.get(), events, 0});
      polled.push_back(&peer);
    }
    if (polls.empty()) break;
    if (::poll(polls.data(), polls.size(), 50) <= 0) continue;
    for (size_t i = 0; i < polls.size(); ++i) {
      if (polls[i].revents & (POLLIN | POLLHUP | POLLERR)) receive(*polled[i], start);
    }
  }
  for (const auto& peer : peers) closed += peer.closed ? 1 : 0;
  return closed;
}

}  // namespace tcpfork::test
