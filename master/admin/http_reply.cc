#include "master/admin/http_reply.h"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <cstring>

#include "base/event_ptr.h"
#include "base/socket.h"

namespace tcpfork {

void sendReply(evhttp_request* request, int code, const char* reason, const char* contentType, std::string_view body) {
  evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", contentType);
  EvbufferPtr out(evbuffer_new());
  if (!out || evbuffer_add(out.get(), body.data(), body.size()) != 0) {
    evhttp_send_error(request, HTTP_INTERNAL, "out of memory");
    return;
  }
  evhttp_send_reply(request, code, reason, out.get());
}

bool fromLoopback(evhttp_request* request) {
  const sockaddr* peer = evhttp_connection_get_addr(evhttp_request_get_connection(request));
  if (!peer || (peer->sa_family != AF_INET && peer->sa_family != AF_INET6)) return false;
  SocketAddress address;
  address.length = peer->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  std::memcpy(&address.storage, peer, address.length);
  return isLoopback(address);
}

}  // namespace tcpfork
