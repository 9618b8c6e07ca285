#pragma once
// `tcpfork-client send`: one request, wait for its ack, print it.

#include <string>

namespace tcpfork::client {

struct SendOptions {
  std::string addr = "127.0.0.1:8888";
  std::string id = "00000001";  // 8 bytes; shorter digit strings are zero-padded
  std::string payload = "hello";
  bool conn = false;             // send Conn instead of Submit
  double timeoutSeconds = 5;
};

// Returns the exit status: 0 ack with result 0, 1 ack with another result
// (255, busy, too: the request was not processed),
// 2 no valid ack (connect failure, timeout, malformed or mismatched reply).
int runSend(const SendOptions& options);

}  // namespace tcpfork::client
