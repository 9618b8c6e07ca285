/* The smallest complete tcpfork handler module: every request is acked with
 * result 0, as the built-in handler does. Build it with
 *
 *   cc -shared -fPIC -o ack.so ack.c $(pkg-config --cflags tcpfork-handler)
 *
 * and name it in the config:  handler: { module: /path/to/ack.so }
 */
#include <tcpfork/handler.h>

static void *ack_init(tcpfork_host *host, const tcpfork_host_api *api, const char *config_json, char *err,
                      size_t err_len) {
  (void)host, (void)api, (void)config_json, (void)err, (void)err_len;
  static int state; /* init must return non-NULL on success */
  return &state;
}

static int ack_handle(void *state, const tcpfork_request *request, tcpfork_pending *pending) {
  (void)state, (void)request, (void)pending;
  return 0;
}

static const tcpfork_handler ack_handler = {
    .abi_version = TCPFORK_HANDLER_ABI_VERSION,
    .name = "ack",
    .init = ack_init,
    .handle = ack_handle,
};

const tcpfork_handler *tcpfork_handler_entry(void) { return &ack_handler; }
