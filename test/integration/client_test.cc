// tcpfork-client against the real worker, and against a deliberately wrong
// server to prove the bench's ack checks can fail.

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <thread>

#include "protocol/codec.h"
#include "test/integration/loopback_port.h"
#include "test/integration/running_master.h"
#include "test/integration/running_worker.h"
#include "test/integration/test_module.h"
#include "test/integration/tool_run.h"

namespace tcpfork::test {
namespace {

using namespace protocol;

TEST(ClientSend, PrintsTheAck) {
  RunningWorker worker;
  auto run = runClient({"send", "--addr", addr(worker.port()), "--id", "7", "--payload", "hi"});
  EXPECT_EQ(run.exitCode, 0) << run.output;
  EXPECT_NE(run.output.find("SubmitAck id=00000007 result=0"), std::string::npos) << run.output;
}

// The test module answers every request with 255: the server's "busy".
TEST(ClientSend, SaysBusyForResult255) {
  RunningMaster master(1, testModuleYaml("{result_int: 255}"));
  auto run = runClient({"send", "--addr", addr(master.port()), "--id", "7", "--payload", "hi"});
  EXPECT_EQ(run.exitCode, 1) << run.output;  // not processed: not result 0
  EXPECT_NE(run.output.find("SubmitAck id=00000007 result=255 (busy) rtt="), std::string::npos) << run.output;
}

TEST(ClientSend, SaysWhyWhenNoServerListens) {
  BoundPort nobodyListens = reservedLoopbackPort();
  int port = nobodyListens.port;
  auto run = runClient({"send", "--addr", addr(port)});
  EXPECT_EQ(run.exitCode, 2);
  EXPECT_NE(run.output.find("connect(127.0.0.1:" + std::to_string(port) + "): Connection refused"),
            std::string::npos)
      << run.output;
}

TEST(ClientBench, SendsAndChecksExactlyTheRequestedCount) {
  RunningWorker worker;
  auto run = runClient({"bench", "--addr", addr(worker.port()), "-n", "20000", "-c", "4", "-w", "32", "--threads",
                        "2", "-q"},
                       true);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_EQ(run.report["sent"], 20000);
  EXPECT_EQ(run.report["acked"], 20000);
  EXPECT_EQ(run.report["errors_total"], 0);
  EXPECT_EQ(run.report["unacked_at_end"], 0);
  EXPECT_EQ(run.report["latency_ns"]["count"], 20000);
  EXPECT_GT(run.report["latency_ns"]["p99"].get<uint64_t>(), 0u);
  EXPECT_NE(run.output.find("acks received    20,000"), std::string::npos) << run.output;
  // No busy answers: every ack was admitted and is goodput.
  EXPECT_EQ(run.report["busy"], 0);
  EXPECT_EQ(run.report["latency_admitted_ns"], run.report["latency_ns"]);
  EXPECT_EQ(run.report["latency_busy_ns"]["count"], 0);
  EXPECT_EQ(run.report["goodput_per_sec"], run.report["acks_per_sec"]);
  EXPECT_EQ(run.output.find("latency busy"), std::string::npos) << run.output;
}

// Busy answers are answers, not errors: counted apart, timed apart, and the
// run succeeds. Against a real server whose module answers 255 to everything.
TEST(ClientBench, CountsBusyAnswersApartFromErrors) {
  RunningMaster master(1, testModuleYaml("{result_int: 255}"));
  auto run = runClient({"bench", "--addr", addr(master.port()), "-d", "1.5", "-c", "4", "-w", "16", "--threads", "2"},
                       true);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  const auto& r = run.report;
  uint64_t acked = r["acked"];
  EXPECT_GT(acked, 0u) << run.output;
  EXPECT_EQ(r["sent"], acked);
  EXPECT_EQ(r["busy"], acked);
  EXPECT_EQ(r["errors_total"], 0);
  EXPECT_EQ(r["errors"]["nonzero_result"], 0);
  EXPECT_EQ(r["goodput_per_sec"], 0.0);
  EXPECT_GT(r["acks_per_sec"].get<double>(), 0.0);
  EXPECT_EQ(r["latency_ns"]["count"], acked);
  EXPECT_EQ(r["latency_busy_ns"], r["latency_ns"]);
  EXPECT_EQ(r["latency_admitted_ns"]["count"], 0);
  EXPECT_NE(run.output.find("[   1.0s] acks/s"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("busy/s "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("  latency admitted none: every ack was busy"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("  latency busy     p50 "), std::string::npos) << run.output;
}

TEST(ClientBench, ReportsTheWholeLatencyDistribution) {
  RunningWorker worker;
  auto run = runClient({"bench", "--addr", addr(worker.port()), "-n", "5000", "-c", "2", "-w", "8", "-q"}, true);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  uint64_t counted = 0, previous = 0;
  for (const auto& bucket : run.report["latency_ns"]["buckets"]) {
    EXPECT_GT(bucket[0].get<uint64_t>(), previous);  // ascending upper bounds
    previous = bucket[0].get<uint64_t>();
    counted += bucket[1].get<uint64_t>();
  }
  EXPECT_EQ(counted, 5000u);
  EXPECT_EQ(previous, run.report["latency_ns"]["max"].get<uint64_t>());
}

TEST(ClientConnects, EveryConnectionIsAckedAndTimed) {
  RunningWorker worker;
  auto run = runClient({"connects", "--addr", addr(worker.port()), "-c", "4", "-d", "0.5", "-q"}, true);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_GT(run.report["acked"].get<uint64_t>(), 0u) << run.output;
  EXPECT_EQ(run.report["failed"], 0);
  EXPECT_EQ(run.report["wrong_acks"], 0);
  EXPECT_GT(run.report["latency_us"]["max"].get<uint64_t>(), 0u);
  EXPECT_NE(run.output.find("connect to ack: p50"), std::string::npos) << run.output;
}

TEST(ClientConnects, CountsRefusedConnectsAndExitsOne) {
  BoundPort nobodyListens = reservedLoopbackPort();
  int port = nobodyListens.port;
  auto run = runClient({"connects", "--addr", addr(port), "-c", "1", "-d", "0.2", "-q"}, true);
  EXPECT_EQ(run.exitCode, 1) << run.output;
  EXPECT_EQ(run.report["acked"], 0);
  EXPECT_GT(run.report["connect_failed"].get<uint64_t>(), 0u);
  EXPECT_EQ(run.report["failed"], run.report["connect_failed"]);
  EXPECT_NE(run.output.find("x connect: Connection refused"), std::string::npos) << run.output;
}

TEST(ClientBench, PrintsProgressEverySecond) {
  RunningWorker worker;
  auto run = runClient({"bench", "--addr", addr(worker.port()), "-d", "2.5", "-c", "2", "-w", "4"});
  ASSERT_EQ(run.exitCode, 0) << run.output;
  EXPECT_NE(run.output.find("[   1.0s] acks/s"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("[   2.0s] acks/s"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find("busy/s"), std::string::npos) << run.output;  // only once the server says busy
}

TEST(ClientBench, OpenLoopOffersTheRequestedRate) {
  RunningWorker worker;
  auto run = runClient({"bench", "--addr", addr(worker.port()), "--rate", "2000", "-d", "2", "-c", "4", "-w", "16",
                        "-q"},
                       true);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  uint64_t sent = run.report["sent"];
  EXPECT_GE(sent, 3600u) << run.output;
  EXPECT_LE(sent, 4400u) << run.output;
  EXPECT_EQ(run.report["acked"], sent);
}

// One connection's worth of a server that answers every request wrongly.
// kEveryOtherBusy is right: it answers every second request busy (255).
enum class Wrong { kId, kCommand, kResult, kGarbage, kHostileId, kBusyWrongId, kEveryOtherBusy };

class WrongServer {
 public:
  explicit WrongServer(Wrong how) : listener_(listenTcp(parseAddress("127.0.0.1:0"))) {
    port_ = localAddress(listener_.get()).port();
    thread_ = std::thread([this, how] { serve(how); });
  }
  ~WrongServer() {
    ::shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  void serve(Wrong how) {
    pollfd p{listener_.get(), POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return;
    UniqueFd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) return;
    std::vector<std::byte> pending;
    std::byte buffer[4096];
    for (;;) {
      pollfd cp{conn.get(), POLLIN, 0};
      if (::poll(&cp, 1, 10000) <= 0) return;
      ssize_t n = ::read(conn.get(), buffer, sizeof buffer);
      if (n <= 0) return;
      pending.insert(pending.end(), buffer, buffer + n);
      size_t used = 0;
      std::vector<std::byte> out;
      for (;;) {
        auto d = decodeRequest(std::span<const std::byte>(pending).subspan(used), kDefaultMaxFrameBytes);
        if (d.status != DecodeStatus::kFrame) break;
        std::vector<std::byte> ack(kAckFrameBytes);
        Id id;
        std::copy(d.message.id.begin(), d.message.id.end(), id.begin());
        if (how == Wrong::kId || how == Wrong::kBusyWrongId) id = formatId(99999999);
        if (how == Wrong::kHostileId) std::memcpy(id.data(), "\x1b[2J\r\n\x07\xff", kIdBytes);
        Command command = how == Wrong::kCommand ? Command::kConnAck : Command::kSubmitAck;
        uint8_t result = how == Wrong::kResult ? 1 : 0;
        if (how == Wrong::kBusyWrongId || (how == Wrong::kEveryOtherBusy && answered_++ % 2 == 1)) {
          result = kResultBusy;
        }
        encodeAck(command, id, result, ack.data());
        if (how == Wrong::kGarbage) ack[3] = std::byte{0x20};
        out.insert(out.end(), ack.begin(), ack.end());
        used += d.size;
      }
      pending.erase(pending.begin(), pending.begin() + used);
      ::send(conn.get(), out.data(), out.size(), MSG_NOSIGNAL);
    }
  }

  UniqueFd listener_;
  int port_;
  std::thread thread_;
  uint64_t answered_ = 0;  // on the server's thread only
};

TEST(ClientSend, PrintsAServersIdEscaped) {
  WrongServer server(Wrong::kHostileId);
  auto run = runClient({"send", "--addr", addr(server.port()), "--id", "7"});
  EXPECT_EQ(run.exitCode, 2) << run.output;
  EXPECT_NE(run.output.find(R"(SubmitAck id=\x1b[2J\r\n\x07\xff result=0)"), std::string::npos) << run.output;
  EXPECT_EQ(run.output.find('\x1b'), std::string::npos) << run.output;
}

struct WrongCase {
  Wrong how;
  const char* errorKey;
};

class ClientBenchCatches : public ::testing::TestWithParam<WrongCase> {};

TEST_P(ClientBenchCatches, AWrongAck) {
  WrongServer server(GetParam().how);
  auto run = runClient({"bench", "--addr", addr(server.port()), "-n", "10", "-c", "1", "-w", "1", "--drain", "2",
                        "-q"},
                       true);
  EXPECT_EQ(run.exitCode, 1) << run.output;
  ASSERT_TRUE(run.report.is_object()) << run.output;
  EXPECT_GT(run.report["errors"][GetParam().errorKey].get<uint64_t>(), 0u) << run.report.dump(2);
}

INSTANTIATE_TEST_SUITE_P(EveryKind, ClientBenchCatches,
                         ::testing::Values(WrongCase{Wrong::kId, "wrong_id"},
                                           WrongCase{Wrong::kCommand, "wrong_command"},
                                           WrongCase{Wrong::kResult, "nonzero_result"},
                                           WrongCase{Wrong::kBusyWrongId, "wrong_id"},
                                           WrongCase{Wrong::kGarbage, "malformed_frame"}),
                         [](const auto& info) {
                           return std::string(info.param.errorKey) +
                                  (info.param.how == Wrong::kBusyWrongId ? "_when_busy" : "");
                         });

// Half the answers busy, in order with the right IDs: exact counts, the
// latency split adds up, goodput is the result-0 half.
TEST(ClientBench, SplitsGoodputAndLatencyByBusyAnswers) {
  WrongServer server(Wrong::kEveryOtherBusy);
  auto run = runClient({"bench", "--addr", addr(server.port()), "-n", "10000", "-c", "1", "-w", "16", "-q"}, true);
  ASSERT_EQ(run.exitCode, 0) << run.output;
  const auto& r = run.report;
  EXPECT_EQ(r["acked"], 10000);
  EXPECT_EQ(r["busy"], 5000);
  EXPECT_EQ(r["errors_total"], 0);
  EXPECT_EQ(r["latency_ns"]["count"], 10000);
  EXPECT_EQ(r["latency_admitted_ns"]["count"], 5000);
  EXPECT_EQ(r["latency_busy_ns"]["count"], 5000);
  for (const char* key : {"latency_admitted_ns", "latency_busy_ns"}) {
    EXPECT_GT(r[key]["p50"].get<uint64_t>(), 0u) << key;
    EXPECT_LE(r[key]["max"].get<uint64_t>(), r["latency_ns"]["max"].get<uint64_t>()) << key;
    uint64_t counted = 0;
    for (const auto& bucket : r[key]["buckets"]) counted += bucket[1].get<uint64_t>();
    EXPECT_EQ(counted, 5000u) << key;
  }
  double acksPerSecond = r["acks_per_sec"];
  EXPECT_GT(acksPerSecond, 0.0);
  EXPECT_NEAR(r["goodput_per_sec"].get<double>(), acksPerSecond / 2, acksPerSecond * 1e-9);
  EXPECT_NE(run.output.find("  busy acks        5,000  (result 255"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("  latency admitted p50 "), std::string::npos) << run.output;
}

}  // namespace
}  // namespace tcpfork::test
