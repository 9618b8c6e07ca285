/* SPDX-License-Identifier: MIT */
/* tcpfork handler module ABI, version 1.
 *
 * A handler module is a shared object that tcpfork workers load with
 * dlopen(RTLD_NOW | RTLD_LOCAL) when the config names it (handler.module).
 * It exports one symbol, tcpfork_handler_entry, and needs nothing else: it
 * does not link against tcpfork. Build one with
 *
 *   cc -shared -fPIC -o my.so my.c $(pkg-config --cflags tcpfork-handler)
 *
 * The names and meanings below are fixed. Later versions may only add
 * optional members at the end of a struct, with TCPFORK_HANDLER_ABI_VERSION
 * bumped; a worker refuses a module whose abi_version it does not know.
 *
 * Rules the worker keeps (see docs/handlers.md):
 *  - init, handle, batch_end, open, close and destroy run on the worker's
 *    loop thread, one at a time; handle must not block.
 *  - Acks on one connection go out in request order: a pending request holds
 *    back the acks after it on that connection only.
 *  - complete() may be called from any thread, exactly once per pending
 *    token, until destroy returns (join your threads in destroy).
 *  - A crash in a module is a crash of its worker: the master restarts it.
 */
#ifndef TCPFORK_HANDLER_H
#define TCPFORK_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TCPFORK_HANDLER_ABI_VERSION 1
#define TCPFORK_PENDING (-1) /* handle(): the result comes later */
/* The worker's, not a module's: handle() returned neither a result byte
   (0..255) nor TCPFORK_PENDING, a bug of the module. Such a request is acked
   with this result (the low byte of what it returned could read as 0, "ok"),
   counted in <ns>_handler_invalid_results_total and logged once per worker.
   It says nothing about whether the module acted on the request. A module
   does not return it for a meaning of its own. */
#define TCPFORK_RESULT_HANDLER_ERROR 254
/* The server's "busy": the request was not processed; the client may retry
   after a backoff. A worker answers it, in order, to a request it sheds under
   overload (overload.shed), without calling handle(). A module may return it
   too, for a request it declines for load (its own queue full, a backend
   saturated): the client sees the same answer. Counted apart from errors by
   tcpfork-client. */
#define TCPFORK_RESULT_BUSY 255
enum { TCPFORK_CONN = 0x01, TCPFORK_SUBMIT = 0x02 };

typedef struct tcpfork_request {
  uint64_t connection;    /* unique within the worker for the process's life */
  uint8_t command;        /* TCPFORK_CONN or TCPFORK_SUBMIT */
  const char *id;         /* the 8 ID bytes, not NUL-terminated; valid only during handle() */
  const uint8_t *payload; /* after the ID; valid only during handle() */
  size_t payload_len;
} tcpfork_request;

typedef struct tcpfork_host tcpfork_host;       /* opaque: the worker */
typedef struct tcpfork_pending tcpfork_pending; /* opaque: one deferred request */

typedef struct tcpfork_host_api {
  uint32_t worker_index;
  uint32_t generation;
  /* init only: declares a counter exported as <ns>_handler_<name>_total;
     name [a-z][a-z0-9_]{0,47}; returns its index >= 0, or -1 (bad name, over 16).
     help is any text: the master escapes it for the exposition */
  int (*counter)(tcpfork_host *, const char *name, const char *help);
  void (*add)(tcpfork_host *, int counter, uint64_t n); /* loop thread only */
  /* completes a deferred request; from ANY thread, exactly once per token */
  void (*complete)(tcpfork_pending *, uint8_t result);
  /* 0 debug .. 3 error; control characters and bytes that are not UTF-8 in
     the message are escaped (\n, \x1b, \xff), so it stays one log line */
  void (*log)(tcpfork_host *, int level, const char *message);
} tcpfork_host_api;

typedef struct tcpfork_handler {
  uint32_t abi_version; /* TCPFORK_HANDLER_ABI_VERSION */
  const char *name;
  /* once per worker before it serves; NULL + a message in err = the worker exits
     with that message (tcpfork -t and a reload report it) */
  void *(*init)(tcpfork_host *, const tcpfork_host_api *, const char *config_json, char *err, size_t err_len);
  /* loop thread, per request: the result byte 0..255, or TCPFORK_PENDING after
     keeping `pending` for host_api->complete(); any other value is acked
     with TCPFORK_RESULT_HANDLER_ERROR */
  int (*handle)(void *state, const tcpfork_request *, tcpfork_pending *pending);
  void (*batch_end)(void *state);                  /* optional: after a read batch, before its flush */
  void (*open)(void *state, uint64_t connection);  /* optional */
  void (*close)(void *state, uint64_t connection); /* optional; its pendings must still be completed */
  void (*destroy)(void *state);                    /* optional: at exit, after the drain */
} tcpfork_handler;

/* The one symbol a module exports. Declared with default visibility, so a
   module built with -fvisibility=hidden still exports it. */
#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const tcpfork_handler *tcpfork_handler_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* TCPFORK_HANDLER_H */
