#include "client/bench.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "base/socket.h"
#include "client/bench_thread.h"
#include "client/report.h"

namespace tcpfork::client {
namespace {

void validate(const BenchOptions& o) {
  if (o.connections == 0) throw std::invalid_argument("-c must be at least 1");
  if (o.window == 0) throw std::invalid_argument("-w must be at least 1");
  if (o.threads == 0) throw std::invalid_argument("--threads must be at least 1");
  if (o.durationSeconds <= 0) throw std::invalid_argument("-d must be more than 0 seconds");
}

// Requests each connection sends: N spread as evenly as possible; 0 = unlimited.
std::vector<uint64_t> quotas(const BenchOptions& o) {
  std::vector<uint64_t> q(o.connections, 0);
  if (o.requests == 0) return q;
  for (unsigned i = 0; i < o.connections; ++i) q[i] = o.requests / o.connections + (i < o.requests % o.connections);
  return q;
}

}  // namespace

BenchResult runBench(const BenchOptions& options, const std::atomic<bool>& stop) {
  validate(options);
  SocketAddress address = parseAddress(options.addr);
  unsigned threadCount = std::min(options.threads, options.connections);

  std::vector<uint64_t> allQuotas = quotas(options);
  std::vector<std::unique_ptr<ThreadCounters>> counters;
  std::vector<std::unique_ptr<BenchThread>> benchThreads;
  for (unsigned t = 0; t < threadCount; ++t) {
    std::vector<uint64_t> mine;
    for (unsigned c = t; c < options.connections; c += threadCount) mine.push_back(allQuotas[c]);
    counters.push_back(std::make_unique<ThreadCounters>());
    benchThreads.push_back(std::make_unique<BenchThread>(options, address, mine, *counters.back(), stop));
  }

  auto start = std::chrono::steady_clock::now();
  std::atomic<unsigned> running{threadCount};
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> failures(threadCount);
  for (unsigned t = 0; t < threadCount; ++t) {
    threads.emplace_back([&, t] {
      try {
        benchThreads[t]->run();
      } catch (...) {
        failures[t] = std::current_exception();
      }
      running.fetch_sub(1);
    });
  }

  auto gather = [&] {
    Progress p;
    for (const auto& c : counters) {
      p.sent += ThreadCounters::read(c->sent);
      p.acked += ThreadCounters::read(c->acked);
      p.busy += ThreadCounters::read(c->busy);
      for (const auto& e : c->errors) p.errors += ThreadCounters::read(e);
      p.latencyNs += c->admittedNs.snapshot();
      p.latencyNs += c->busyNs.snapshot();
    }
    return p;
  };

  Progress previous;
  auto nextTick = start + std::chrono::seconds(1);
  while (running.load() > 0) {
    std::this_thread::sleep_until(std::min(nextTick, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
    if (std::chrono::steady_clock::now() < nextTick) continue;
    Progress now = gather();
    if (options.progress) {
      double elapsed = std::chrono::duration<double>(nextTick - start).count();
      printProgressLine(stderr, elapsed, now, previous);
    }
    previous = now;
    nextTick += std::chrono::seconds(1);
  }
  for (auto& thread : threads) thread.join();
  for (auto& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }

  BenchResult result;
  result.elapsedSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (unsigned t = 0; t < threadCount; ++t) {
    const ThreadCounters& c = *counters[t];
    result.sent += ThreadCounters::read(c.sent);
    result.acked += ThreadCounters::read(c.acked);
    result.busy += ThreadCounters::read(c.busy);
    for (size_t e = 0; e < kAckErrorCount; ++e) result.errors[e] += ThreadCounters::read(c.errors[e]);
    result.connectsFailed += ThreadCounters::read(c.connectsFailed);
    result.connectsReset += ThreadCounters::read(c.connectsReset);
    result.connectionsClosedByServer += ThreadCounters::read(c.closedByServer);
    result.unackedOnClosedConnections += ThreadCounters::read(c.unackedOnClose);
    result.latencyAdmittedNs += c.admittedNs.snapshot();
    result.latencyBusyNs += c.busyNs.snapshot();
    result.measuredAcks += benchThreads[t]->measuredAcks();
    result.measuredOk += benchThreads[t]->measuredOk();
    result.measuredSeconds = std::max(result.measuredSeconds, benchThreads[t]->measuredNs() / 1e9);
    result.unackedAtEnd += benchThreads[t]->unackedAtEnd();
  }
  return result;
}

}  // namespace tcpfork::client
