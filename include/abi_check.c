/* Compiled as C99 by the build (include/CMakeLists.txt): the ABI header and
 * every name DESIGN.md fixes, used the way a module uses them. */
#include <tcpfork/handler.h>

static void *check_init(tcpfork_host *host, const tcpfork_host_api *api, const char *config_json, char *err,
                        size_t err_len) {
  (void)config_json, (void)err, (void)err_len;
  int counter = api->counter(host, "checked", "requests checked");
  api->add(host, counter, 1);
  api->log(host, 1, "init");
  return host;
}

static int check_handle(void *state, const tcpfork_request *request, tcpfork_pending *pending) {
  (void)state, (void)pending;
  if (request->command == TCPFORK_CONN) return 0;
  return request->command == TCPFORK_SUBMIT && request->payload_len > 0 && request->id[0] ? 0 : TCPFORK_PENDING;
}

static const tcpfork_handler check_handler = {
    TCPFORK_HANDLER_ABI_VERSION, "abi-check", check_init, check_handle, NULL, NULL, NULL, NULL,
};

const tcpfork_handler *tcpfork_handler_entry(void) { return &check_handler; }
