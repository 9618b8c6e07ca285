#include "test/integration/connector.h"

#include "test/integration/process.h"

namespace tcpfork::test {

Connector::Connector(int port)
    : thread_([this, port] {
        for (uint64_t i = 0; !stop_.load(); ++i) {
          bool ok = false;
          try {
            TestConnection c(port, 3s);
            c.send(submitFrame(i));
            ok = c.read(kAckBytes) == submitAckFrame(i);
          } catch (const std::exception&) {
          }
          (ok ? succeeded_ : failed_).fetch_add(1);
        }
      }) {}

void Connector::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

}  // namespace tcpfork::test
