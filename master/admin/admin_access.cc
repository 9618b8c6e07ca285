#include "master/admin/admin_access.h"

#include <arpa/inet.h>
#include <event2/keyvalq_struct.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <strings.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>

namespace tcpfork {
namespace {

// An IP address as bytes: 4 for IPv4 (an IPv4-mapped IPv6 address included), 16 for IPv6.
struct Ip {
  int family = AF_UNSPEC;
  unsigned char bytes[16]{};

  bool operator==(const Ip& other) const {
    return family == other.family && std::memcmp(bytes, other.bytes, family == AF_INET ? 4 : 16) == 0;
  }
};

Ip fromV6(const in6_addr& a) {
  Ip ip;
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    ip.family = AF_INET;
    std::memcpy(ip.bytes, a.s6_addr + 12, 4);
  } else {
    ip.family = AF_INET6;
    std::memcpy(ip.bytes, a.s6_addr, 16);
  }
  return ip;
}

std::optional<Ip> fromSockaddr(const sockaddr* address) {
  if (!address) return std::nullopt;
  if (address->sa_family == AF_INET) {
    Ip ip;
    ip.family = AF_INET;
    std::memcpy(ip.bytes, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, 4);
    return ip;
  }
  if (address->sa_family == AF_INET6) return fromV6(reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr);
  return std::nullopt;
}

// A numeric host: "127.0.0.1", "::1", "fe80::1%eth0" (the zone is dropped).
std::optional<Ip> parseIp(const std::string& host) {
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    Ip ip;
    ip.family = AF_INET;
    std::memcpy(ip.bytes, &v4, 4);
    return ip;
  }
  in6_addr v6{};
  std::string address = host.substr(0, host.find('%'));
  if (::inet_pton(AF_INET6, address.c_str(), &v6) == 1) return fromV6(v6);
  return std::nullopt;
}

bool isLoopbackIp(const Ip& ip) {
  if (ip.family == AF_INET) return ip.bytes[0] == 127;
  static const unsigned char kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::memcmp(ip.bytes, kLoopback6, 16) == 0;
}

// Read afresh on each use: addresses come and go (DHCP, a VPN), and only a
// request naming a numeric host that is neither loopback nor the listen
// address gets here.
bool onAnInterface(const Ip& ip) {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return false;
  std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> owned(list, &::freeifaddrs);
  for (ifaddrs* it = list; it; it = it->ifa_next) {
    if (auto address = fromSockaddr(it->ifa_addr); address && *address == ip) return true;
  }
  return false;
}

const char* header(evhttp_request* request, const char* name) {
  return evhttp_find_header(evhttp_request_get_input_headers(request), name);
}

bool hasBrowserMetadata(evhttp_request* request) {
  if (header(request, "Origin")) return true;
  const evkeyvalq* headers = evhttp_request_get_input_headers(request);
  for (const evkeyval* h = headers->tqh_first; h; h = h->next.tqe_next) {
    if (strncasecmp(h->key, "Sec-Fetch-", 10) == 0) return true;
  }
  return false;
}

// What the reply may quote of a value a peer sent.
std::string quoted(std::string_view value) {
  std::string out;
  for (char c : value.substr(0, 100)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  return out + (value.size() > 100 ? "..." : "");
}

}  // namespace

AdminAccess::AdminAccess(const SocketAddress& listen, bool anyHost) : listen_(listen), anyHost_(anyHost) {}

std::optional<std::string> AdminAccess::hostOf(std::string_view authority) {
  std::string_view host = authority;
  std::string_view port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return std::nullopt;
    if (!rest.empty()) port = rest.substr(1);
  } else if (std::count(authority.begin(), authority.end(), ':') == 1) {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  if (host.ends_with('.')) host.remove_suffix(1);
  if (host.empty()) return std::nullopt;
  std::string lower(host);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return lower;
}

bool AdminAccess::allowsHost(const std::string& host) const {
  if (anyHost_ || host == "localhost") return true;
  auto ip = parseIp(host);
  if (!ip) return false;
  if (isLoopbackIp(*ip) || ip == fromSockaddr(listen_.get())) return true;
  return onAnInterface(*ip);
}

std::optional<AdminAccess::Refusal> AdminAccess::checkHost(evhttp_request* request) const {
  if (anyHost_) return std::nullopt;
  auto refuse = [](std::string_view named) {
    return Refusal{421, "Misdirected Request",
                   fmt::format("Host '{}' is not a name of this server: the admin port answers to localhost, a loopback "
                               "address or an address of this machine (metrics.allow_remote: true lifts this)\n",
                               quoted(named))};
  };
  const evkeyvalq* headers = evhttp_request_get_input_headers(request);
  const char* named = nullptr;
  for (const evkeyval* h = headers->tqh_first; h; h = h->next.tqe_next) {
    if (strcasecmp(h->key, "Host") != 0) continue;
    if (named) return Refusal{400, "Bad Request", "more than one Host header\n"};
    named = h->value;
  }
  if (named && *named) {
    auto host = hostOf(named);
    if (!host || !allowsHost(*host)) return refuse(named);
  }
  // An absolute request-target names the host too, and wins over Host.
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
  if (const char* target = uri ? evhttp_uri_get_host(uri) : nullptr; target && *target) {
    auto host = hostOf(target);
    if (!host || !allowsHost(*host)) return refuse(target);
  }
  return std::nullopt;
}

std::optional<AdminAccess::Refusal> AdminAccess::checkProfileStart(evhttp_request* request) const {
  switch (evhttp_request_get_command(request)) {
    case EVHTTP_REQ_POST:
      break;
    case EVHTTP_REQ_GET:
      if (!hasBrowserMetadata(request)) return std::nullopt;  // google-pprof, go tool pprof, curl
      return Refusal{405, "Method Not Allowed",
                     "a profile starts with POST (curl -X POST URL); GET is kept for the pprof tools only, and refused "
                     "from a browser, which any page can make send it\n",
                     "POST"};
    default:
      return Refusal{405, "Method Not Allowed", "a profile starts with POST (GET for the pprof tools)\n", "POST, GET"};
  }
  const char* site = header(request, "Sec-Fetch-Site");
  if (site && strcasecmp(site, "same-origin") != 0 && strcasecmp(site, "none") != 0) {
    return Refusal{403, "Forbidden", fmt::format("refused: sent for a page of another site (Sec-Fetch-Site: {})\n", quoted(site))};
  }
  if (const char* origin = header(request, "Origin")) {
    std::string_view value = origin;
    size_t scheme = value.find("://");
    const char* host = header(request, "Host");
    if (scheme == std::string_view::npos || !host || strcasecmp(std::string(value.substr(scheme + 3)).c_str(), host) != 0) {
      return Refusal{403, "Forbidden", fmt::format("refused: sent for a page of another origin ({})\n", quoted(value))};
    }
  }
  return std::nullopt;
}

}  // namespace tcpfork
