/* A handler module for the tests, driven by its config (JSON, read with
 * strstr: the tests write it):
 *   "defer_every": N      every Nth request (N > 0) is answered later
 *   "defer_prefix": "p"   so is every request whose payload starts with p
 *   "thread": true        ... by a thread of the module, in shuffled order
 *                         (otherwise at the end of the read batch, on the loop)
 *   "delay_ms": N         ... no sooner than N ms after it was deferred
 *   "hold": true          deferred requests are never completed, unless
 *   "complete_on_close"   ... their connection closes: then all at once
 *   "complete_twice"      every completion is sent twice
 *   "fail_init": "text"   init fails with this message
 *   "crash_on": "text"    handle() crashes on a Submit with this payload
 *   "spin_on": "text"     handle() spins forever on a Submit with this
 *                         payload, in spin_forever() (a hung worker)
 *   "burn_us": N          handle() spends N microseconds of CPU, in
 *                         burn_cpu(), on every request (a slow module:
 *                         capacity 1e6/N a second)
 *   "leak_bytes": N       handle() allocates N bytes on every request, in
 *                         leak_memory(), and never frees them (a leaking
 *                         module, for heap profiles)
 *   "counter_checks"      init also checks that counter() refuses a bad
 *                         name, a name declared twice, a name tcpfork's own
 *                         handler_*_total counters have, and a 17th counter
 *   "result_int": N       handle() returns N for every request, whatever N
 *                         (a module breaking the contract with 256 or -2)
 *   "fork_in": "init"     init calls fork(), or
 *   "fork_in": "handle"   handle() does, on a Submit with payload "fork";
 *                         the child returns into the worker as the parent
 *                         does, unless
 *   "fork_child": "exec"  ... it execs /bin/true, or
 *   "fork_child": "exit"  ... it calls _exit(0)
 *   "fork_with": "clone"  the raw clone system call instead of fork(), as a
 *                         runtime that bypasses libc might: no
 *                         pthread_atfork handler runs
 *   "evil_strings": true  hostile text everywhere a module gives the server
 *                         some: its name (taken from the worker's command
 *                         line, as the name is read before init), a counter
 *                         "evil" whose help forges a sample, a log line from
 *                         init, and every Submit's payload (a client's
 *                         bytes) logged as it came
 *   "fail_init_evil": true  init fails with a message that forges a line
 * The ack's result is payload[1] when the payload starts with 'r', else 0.
 * It counts the requests it sees ("seen") and defers ("deferred"), and logs
 * once from init. */
/* syscall(2), for "fork_with": "clone". */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <tcpfork/handler.h>
#include <unistd.h>

typedef struct deferred {
  tcpfork_pending *token;
  uint8_t result;
  uint64_t connection;
} deferred;

typedef struct state {
  const tcpfork_host_api *api;
  tcpfork_host *host;
  long defer_every;
  int thread, hold, complete_on_close, complete_twice;
  char crash_on[64];
  char spin_on[64];
  char defer_prefix[64];
  uint64_t seen;
  char fork_child[16];
  char fork_with[16];
  int fork_in_handle;
  /* Deferred requests not completed yet (guarded by lock when thread). */
  pthread_mutex_t lock;
  pthread_cond_t wake;
  deferred *queue;
  size_t queued, capacity;
  int stopping;
  pthread_t worker;
  int seen_counter, deferred_counter;
  long delay_ms;
  long burn_us;
  long leak_bytes;
  int has_result_int;
  int result_int;
  int log_payloads;
} state;

/* Text that tries to pass for lines of the master's log, to clear the
 * operator's screen and to add a sample to the exposition. */
#define FORGED_LINE "\n[master 1] critical: forged by "
#define TERMINAL_ATTACK "\r\x1b[2J\x1b]0;pwned\x07\x7f"
static const char evil_help[] = "Evil help, C:\\dir\nfake_injected_metric 12345\n# " TERMINAL_ATTACK "\xff";
static const char evil_log[] = "client said: hello" FORGED_LINE "a log line" TERMINAL_ATTACK;
static const char evil_failure[] = "no database" FORGED_LINE "an init error" TERMINAL_ATTACK;

static const char *find(const char *json, const char *key) {
  const char *at = strstr(json, key);
  return at ? at + strlen(key) : NULL;
}

static int flag(const char *json, const char *key) {
  const char *at = find(json, key);
  return at && strncmp(at, "true", 4) == 0;
}

/* "key":"value" -> value into out; 0 when absent. */
static int text(const char *json, const char *key, char *out, size_t len) {
  const char *at = find(json, key);
  if (!at || *at != '"') return 0;
  ++at;
  size_t n = 0;
  while (at[n] && at[n] != '"' && n + 1 < len) ++n;
  memcpy(out, at, n);
  out[n] = '\0';
  return 1;
}

static void complete(state *s, tcpfork_pending *token, uint8_t result) {
  s->api->complete(token, result);
  if (s->complete_twice) s->api->complete(token, result);
}

static void push(state *s, deferred d) {
  if (s->queued == s->capacity) {
    s->capacity = s->capacity ? 2 * s->capacity : 64;
    s->queue = realloc(s->queue, s->capacity * sizeof *s->queue);
    if (!s->queue) abort();
  }
  s->queue[s->queued++] = d;
}

/* fork(): the parent goes on; so does the child, unless fork_child says
 * otherwise. */
static void fork_here(const char *fork_child, const char *fork_with) {
  pid_t pid = strcmp(fork_with, "clone") == 0 ? (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0) : fork();
  if (pid != 0) return;
  if (strcmp(fork_child, "exec") == 0) {
    execl("/bin/true", "true", (char *)NULL);
    _exit(127);
  }
  if (strcmp(fork_child, "exit") == 0) _exit(0);
}

/* Completes what is queued in a shuffled order, a little later. */
static void *run(void *arg) {
  state *s = arg;
  unsigned seed = 42;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    while (s->queued == 0 && !s->stopping) pthread_cond_wait(&s->wake, &s->lock);
    if (s->queued == 0) break;
    size_t n = s->queued;
    deferred *batch = malloc(n * sizeof *batch);
    if (!batch) abort();
    memcpy(batch, s->queue, n * sizeof *batch);
    s->queued = 0;
    pthread_mutex_unlock(&s->lock);
    long us = (long)(rand_r(&seed) % 500) + s->delay_ms * 1000;
    struct timespec pause = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&pause, NULL);
    for (size_t i = n; i > 1; --i) {
      size_t j = (size_t)rand_r(&seed) % i;
      deferred t = batch[i - 1];
      batch[i - 1] = batch[j];
      batch[j] = t;
    }
    for (size_t i = 0; i < n; ++i) complete(s, batch[i].token, batch[i].result);
    free(batch);
    pthread_mutex_lock(&s->lock);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

static void *test_init(tcpfork_host *host, const tcpfork_host_api *api, const char *config, char *err,
                       size_t err_len) {
  char failure[256];
  if (text(config, "\"fail_init\":", failure, sizeof failure)) {
    snprintf(err, err_len, "%s", failure);
    return NULL;
  }
  if (flag(config, "\"fail_init_evil\":")) {
    snprintf(err, err_len, "%s", evil_failure);
    return NULL;
  }
  state *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->api = api;
  s->host = host;
  const char *every = find(config, "\"defer_every\":");
  s->defer_every = every ? strtol(every, NULL, 10) : 0;
  s->thread = flag(config, "\"thread\":");
  const char *delay = find(config, "\"delay_ms\":");
  s->delay_ms = delay ? strtol(delay, NULL, 10) : 0;
  const char *burn = find(config, "\"burn_us\":");
  s->burn_us = burn ? strtol(burn, NULL, 10) : 0;
  const char *leak = find(config, "\"leak_bytes\":");
  s->leak_bytes = leak ? strtol(leak, NULL, 10) : 0;
  s->hold = flag(config, "\"hold\":");
  s->complete_on_close = flag(config, "\"complete_on_close\":");
  s->complete_twice = flag(config, "\"complete_twice\":");
  text(config, "\"crash_on\":", s->crash_on, sizeof s->crash_on);
  text(config, "\"spin_on\":", s->spin_on, sizeof s->spin_on);
  text(config, "\"defer_prefix\":", s->defer_prefix, sizeof s->defer_prefix);
  const char *result_int = find(config, "\"result_int\":");
  s->has_result_int = result_int != NULL;
  s->result_int = result_int ? (int)strtol(result_int, NULL, 10) : 0;
  s->seen_counter = api->counter(host, "seen", "Requests the test handler saw.");
  s->deferred_counter = api->counter(host, "deferred", "Requests the test handler answered later.");
  if (s->seen_counter != 0 || s->deferred_counter != 1) {
    snprintf(err, err_len, "counter() returned %d and %d, not 0 and 1", s->seen_counter, s->deferred_counter);
    free(s);
    return NULL;
  }
  if (flag(config, "\"counter_checks\":")) {
    const char *failed = NULL;
    if (api->counter(host, "Bad-Name", "") != -1) failed = "a bad name";
    if (api->counter(host, "seen", "") != -1) failed = "a name declared twice";
    if (api->counter(host, "invalid_results", "") != -1) failed = "a name of tcpfork's own (invalid_results)";
    for (int i = 2; i < 16 && !failed; ++i) {
      char name[24]; /* room for any int: -O1 builds check that it fits */
      snprintf(name, sizeof name, "extra_%d", i);
      if (api->counter(host, name, "An extra counter.") != i) failed = "counter 3 to 16";
    }
    if (!failed && api->counter(host, "seventeenth", "") != -1) failed = "a 17th counter";
    if (failed) {
      snprintf(err, err_len, "counter() did not refuse %s", failed);
      free(s);
      return NULL;
    }
    api->log(host, 1, "counter checks passed");
  }
  if (flag(config, "\"evil_strings\":")) {
    if (api->counter(host, "evil", evil_help) < 0) {
      snprintf(err, err_len, "counter() refused a help text");
      free(s);
      return NULL;
    }
    api->log(host, 2, evil_log);
    s->log_payloads = 1;
  }
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->wake, NULL);
  if (s->thread && pthread_create(&s->worker, NULL, run, s) != 0) {
    snprintf(err, err_len, "pthread_create failed");
    free(s);
    return NULL;
  }
  char fork_in[16] = "";
  text(config, "\"fork_in\":", fork_in, sizeof fork_in);
  text(config, "\"fork_child\":", s->fork_child, sizeof s->fork_child);
  text(config, "\"fork_with\":", s->fork_with, sizeof s->fork_with);
  s->fork_in_handle = strcmp(fork_in, "handle") == 0;
  if (strcmp(fork_in, "init") == 0) fork_here(s->fork_child, s->fork_with);
  char line[128];
  snprintf(line, sizeof line, "test handler ready in worker %u, generation %u", api->worker_index, api->generation);
  api->log(host, 1, line);
  return s;
}

/* A handler stuck for good: the frame a hang's stack dump must show. */
static __attribute__((noinline)) void spin_forever(void) {
  volatile unsigned long spins = 0;
  for (;;) ++spins;
}

/* CPU time, not a sleep: the loop is busy, as with real work. Never
 * inlined, so that profiles show the time under a name of its own. */
__attribute__((noinline)) static void burn_cpu(long us) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  do {
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000000L + (now.tv_nsec - start.tv_nsec) / 1000 < us);
}

/* Each block links the one before, so the leak stays reachable and
 * LeakSanitizer does not fail the worker for it: only a heap profile tells. */
static void *leaked;
__attribute__((noinline)) static void leak_memory(long bytes) {
  size_t size = (size_t)bytes < sizeof(void *) ? sizeof(void *) : (size_t)bytes;
  void **block = malloc(size);
  if (!block) return;
  memset(block, 0xab, size);
  *block = leaked;
  leaked = block;
}

static int is(const tcpfork_request *r, const char *payload) {
  return payload[0] && r->payload_len == strlen(payload) && memcmp(r->payload, payload, r->payload_len) == 0;
}

static int test_handle(void *opaque, const tcpfork_request *r, tcpfork_pending *pending) {
  state *s = opaque;
  uint8_t result = r->payload_len >= 2 && r->payload[0] == 'r' ? r->payload[1] : 0;
  if (is(r, s->crash_on)) raise(SIGSEGV);
  if (is(r, s->spin_on)) spin_forever();
  if (s->burn_us > 0) burn_cpu(s->burn_us);
  if (s->leak_bytes > 0) leak_memory(s->leak_bytes);
  if (s->fork_in_handle && is(r, "fork")) fork_here(s->fork_child, s->fork_with);
  if (s->log_payloads && r->command == TCPFORK_SUBMIT) {
    char line[256];
    snprintf(line, sizeof line, "client sent: %.*s", (int)(r->payload_len < 200 ? r->payload_len : 200),
             (const char *)r->payload);
    s->api->log(s->host, 2, line);
  }
  ++s->seen;
  s->api->add(s->host, s->seen_counter, 1);
  if (s->has_result_int) return s->result_int;
  size_t prefix = strlen(s->defer_prefix);
  int by_prefix = prefix > 0 && r->payload_len >= prefix && memcmp(r->payload, s->defer_prefix, prefix) == 0;
  int by_count = s->defer_every > 0 && s->seen % (uint64_t)s->defer_every == 0;
  if (!by_prefix && !by_count) return result;
  s->api->add(s->host, s->deferred_counter, 1);
  deferred d = {pending, result, r->connection};
  if (s->thread) {
    pthread_mutex_lock(&s->lock);
    push(s, d);
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
  } else {
    push(s, d);
  }
  return TCPFORK_PENDING;
}

/* Without a thread, what was deferred completes at the end of its batch, on
 * the loop thread. */
static void test_batch_end(void *opaque) {
  state *s = opaque;
  if (s->thread || s->hold) return;
  for (size_t i = 0; i < s->queued; ++i) complete(s, s->queue[i].token, s->queue[i].result);
  s->queued = 0;
}

static void test_close(void *opaque, uint64_t connection) {
  state *s = opaque;
  if (!s->complete_on_close || s->thread) return;
  size_t kept = 0;
  for (size_t i = 0; i < s->queued; ++i) {
    if (s->queue[i].connection == connection) {
      complete(s, s->queue[i].token, s->queue[i].result);
    } else {
      s->queue[kept++] = s->queue[i];
    }
  }
  s->queued = kept;
}

static void test_destroy(void *opaque) {
  state *s = opaque;
  s->api->log(s->host, 1, "test handler destroyed");
  if (s->thread) {
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->worker, NULL);
  }
  free(s->queue);
  free(s);
}

static const tcpfork_handler test_handler = {
    .abi_version = TCPFORK_HANDLER_ABI_VERSION,
    .name = "test",
    .init = test_init,
    .handle = test_handle,
    .batch_end = test_batch_end,
    .close = test_close,
    .destroy = test_destroy,
};

static const tcpfork_handler evil_handler = {
    .abi_version = TCPFORK_HANDLER_ABI_VERSION,
    .name = "test" FORGED_LINE "a module name" TERMINAL_ATTACK,
    .init = test_init,
    .handle = test_handle,
    .batch_end = test_batch_end,
    .close = test_close,
    .destroy = test_destroy,
};

/* Whether the worker's command line (its --handler-config JSON) asks for
 * "evil_strings": the entry point runs before init is given the config. */
static int evil_strings_asked(void) {
  static char args[65536];
  FILE *f = fopen("/proc/self/cmdline", "r");
  if (!f) return 0;
  size_t n = fread(args, 1, sizeof args - 1, f);
  fclose(f);
  args[n] = '\0';
  for (size_t at = 0; at < n; at += strlen(args + at) + 1) {
    if (strstr(args + at, "\"evil_strings\":true")) return 1;
  }
  return 0;
}

const tcpfork_handler *tcpfork_handler_entry(void) { return evil_strings_asked() ? &evil_handler : &test_handler; }
