#pragma once
// A minimal HTTP/1.0 GET over loopback for tests (admin endpoints, the
// Prometheus API). Not a general client.

#include <string>

namespace tcpfork::test {

struct HttpResponse {
  int status = 0;  // 0 when the request failed
  std::string headers;  // the status line and header lines, each ended by CRLF
  std::string body;
};

HttpResponse httpGet(int port, const std::string& pathAndQuery);

// The value of an unlabelled sample line "name value" in Prometheus text, or
// of the exact series "name{labels}"; -1 when absent.
double metricValue(const std::string& exposition, const std::string& series);

}  // namespace tcpfork::test
