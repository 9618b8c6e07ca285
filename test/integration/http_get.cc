#include "test/integration/http_get.h"

#include <strings.h>

#include <sstream>

#include "test/integration/process.h"

namespace tcpfork::test {

HttpResponse httpGet(int port, const std::string& pathAndQuery) { return httpRequest(port, "GET", pathAndQuery); }

HttpResponse httpRequest(int port, const std::string& method, const std::string& pathAndQuery,
                         const std::vector<std::string>& headers, std::chrono::milliseconds timeout) {
  HttpResponse response;
  try {
    TestConnection c(port, timeout);
    std::string request = method + " " + pathAndQuery + " HTTP/1.0\r\n";
    bool host = false;
    for (const auto& header : headers) {
      request += header + "\r\n";
      host = host || strncasecmp(header.c_str(), "Host:", 5) == 0;
    }
    if (!host) request += "Host: 127.0.0.1\r\n";
    if (method == "POST") request += "Content-Length: 0\r\n";
    request += "\r\n";
    c.send(std::as_bytes(std::span<const char>(request.data(), request.size())));
    std::string raw;
    for (;;) {
      auto chunk = c.read(4096);
      raw.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
      if (chunk.size() < 4096 && c.closedWithin(100ms)) break;
      if (chunk.empty()) break;
    }
    auto space = raw.find(' ');
    auto headerEnd = raw.find("\r\n\r\n");
    if (space == std::string::npos || headerEnd == std::string::npos) return response;
    response.status = std::stoi(raw.substr(space + 1, 3));
    response.headers = raw.substr(0, headerEnd + 2);
    response.body = raw.substr(headerEnd + 4);
  } catch (const std::exception&) {
    response.status = 0;
  }
  return response;
}

double metricValue(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

}  // namespace tcpfork::test
