// Compiled as C++ by the build (include/CMakeLists.txt): the ABI header from
// a C++ module, with the names DESIGN.md fixes.
#include <tcpfork/handler.h>

#include <type_traits>

static_assert(TCPFORK_HANDLER_ABI_VERSION == 1);
static_assert(TCPFORK_PENDING == -1 && TCPFORK_CONN == 0x01 && TCPFORK_SUBMIT == 0x02);
static_assert(std::is_standard_layout_v<tcpfork_request> && std::is_standard_layout_v<tcpfork_handler> &&
              std::is_standard_layout_v<tcpfork_host_api>);

extern "C" const tcpfork_handler* tcpfork_handler_entry() {
  static const tcpfork_handler handler = {
      TCPFORK_HANDLER_ABI_VERSION,
      "abi-check-cxx",
      [](tcpfork_host* host, const tcpfork_host_api*, const char*, char*, size_t) -> void* { return host; },
      [](void*, const tcpfork_request* request, tcpfork_pending*) { return request->command == TCPFORK_CONN ? 0 : 1; },
      nullptr,
      nullptr,
      nullptr,
      nullptr,
  };
  return &handler;
}
