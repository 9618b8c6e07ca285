#pragma once
// AdminAccess: which requests the admin port serves at all, before a path's
// own rules. Owned by AdminHttp; on the master loop.
//
// The Host rule (421 Misdirected Request): through DNS rebinding, a page on
// attacker.example whose name then resolves to 127.0.0.1 is served by the
// admin port to the operator's browser as if it were the attacker's own
// origin, with `Host: attacker.example`. So the host a request names (its
// Host header, and the authority of an absolute request-target) must be
// `localhost`, a loopback address, the address the port listens on, or an
// address of one of this machine's interfaces; the port is not compared (an
// SSH tunnel changes it, and a rebinding page cannot change the name). No
// Host at all is served: HTTP/1.0 tools may omit it, no browser does. With
// metrics.allow_remote every host is served, since the names remote
// scrapers use cannot be known here.
//
// The profile rule: starting a profile changes a worker's state, so it takes
// POST. GET is kept because google-pprof and `go tool pprof` fetch a profile
// URL with GET and cannot do otherwise; a GET that carries a browser's
// request metadata (Origin or Sec-Fetch-*) is refused with 405, since any
// page can make a browser GET a URL (an <img>). A POST that a browser sends
// for another site's page (Sec-Fetch-Site other than same-origin or none, or
// an Origin other than the Host) is refused with 403.

#include <event2/http.h>

#include <optional>
#include <string>
#include <string_view>

#include "base/socket.h"

namespace tcpfork {

class AdminAccess {
 public:
  struct Refusal {
    int code;
    const char* reason;
    std::string body;
    const char* allow = nullptr;  // the Allow header of a 405
  };

  // `listen`: the admin port's address; `anyHost`: metrics.allow_remote.
  AdminAccess(const SocketAddress& listen, bool anyHost);

  std::optional<Refusal> checkHost(evhttp_request* request) const;
  std::optional<Refusal> checkProfileStart(evhttp_request* request) const;

  // The host of an authority ("name", "name:port", "[v6]", "[v6]:port"),
  // lower-cased, without brackets, port or a trailing dot; nullopt when it is
  // not one.
  static std::optional<std::string> hostOf(std::string_view authority);
  // Whether `host` (as hostOf returns it) names this machine.
  bool allowsHost(const std::string& host) const;

 private:
  SocketAddress listen_;
  bool anyHost_;
};

}  // namespace tcpfork
