#pragma once
// A minimal HTTP/1.0 GET over loopback for tests (admin endpoints, the
// Prometheus API). Not a general client.

#include <chrono>
#include <string>
#include <vector>

namespace tcpfork::test {

struct HttpResponse {
  int status = 0;  // 0 when the request failed
  std::string headers;  // the status line and header lines, each ended by CRLF
  std::string body;
};

HttpResponse httpGet(int port, const std::string& pathAndQuery);

// `method` with `headers` ("Name: value" each; one named Host replaces the
// default "Host: 127.0.0.1"); a POST carries "Content-Length: 0". Gives up
// (status 0) when no whole answer came within `timeout`.
HttpResponse httpRequest(int port, const std::string& method, const std::string& pathAndQuery,
                         const std::vector<std::string>& headers = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The value of an unlabelled sample line "name value" in Prometheus text, or
// of the exact series "name{labels}"; -1 when absent.
double metricValue(const std::string& exposition, const std::string& series);

}  // namespace tcpfork::test
