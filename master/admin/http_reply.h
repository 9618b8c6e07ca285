#pragma once
// What every admin HTTP handler needs: a whole reply in one call, and
// whether the request came from this machine.

#include <event2/http.h>

#include <string_view>

namespace tcpfork {

void sendReply(evhttp_request* request, int code, const char* reason, const char* contentType, std::string_view body);
// The peer's address is 127.0.0.0/8, ::1 or ::ffff:127.x.y.z.
bool fromLoopback(evhttp_request* request);

}  // namespace tcpfork
