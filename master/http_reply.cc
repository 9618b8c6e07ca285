#include "master/http_reply.h"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <cstring>

#include "base/socket.h"

namespace tcpfork {

void sendReply(evhttp_request* request, int code, const char* reason, const char* contentType, std::string_view body) {
  evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type", contentType);
  evbuffer* out = evbuffer_new();
  evbuffer_add(out, body.data(), body.size());
  evhttp_send_reply(request, code, reason, out);
  evbuffer_free(out);
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
