#pragma once
// Connector: new connections, one request each, from a thread, until
// stopped; counts what succeeded and what failed (no ack, a wrong one, a
// refused or reset connection). For reloads and restarts under traffic.

#include <atomic>
#include <thread>

namespace tcpfork::test {

class Connector {
 public:
  explicit Connector(int port);
  ~Connector() { stop(); }
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  void stop();
  int succeeded() const { return succeeded_.load(); }
  int failed() const { return failed_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> succeeded_{0};
  std::atomic<int> failed_{0};
  std::thread thread_;
};

}  // namespace tcpfork::test
