/* A wall clock the tests can step, for one process and its children: loaded
 * with LD_PRELOAD, it moves CLOCK_REALTIME (clock_gettime, gettimeofday,
 * time) by TCPFORK_TEST_CLOCK_STEP_S seconds (negative: back) once
 * TCPFORK_TEST_CLOCK_STEP_AFTER_MS milliseconds have passed since the
 * process first asked the time, and the kernel's receive stamps
 * (SCM_TIMESTAMPNS from recvmsg) of what arrives from then on with it, as
 * an NTP step or a VM resume moves the host's clock. The host's own clock
 * is never touched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef ssize_t (*recvmsg_fn)(int, struct msghdr *, int);

static clock_gettime_fn real_clock_gettime;
static recvmsg_fn real_recvmsg;
static int64_t step_ns, after_ns, start_ns = -1;
static int64_t stepped_at_ns = -1; /* the real wall clock when the step came */

static int64_t ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec; }

static void init(void) {
  if (real_clock_gettime) return;
  real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
  real_recvmsg = (recvmsg_fn)dlsym(RTLD_NEXT, "recvmsg");
  const char *step = getenv("TCPFORK_TEST_CLOCK_STEP_S");
  const char *after = getenv("TCPFORK_TEST_CLOCK_STEP_AFTER_MS");
  step_ns = step ? strtoll(step, NULL, 10) * 1000000000LL : 0;
  after_ns = after ? strtoll(after, NULL, 10) * 1000000LL : 0;
}

/* Whether the step has come, by the monotonic clock; notes the real wall
 * clock at that moment the first time. */
static int stepped(void) {
  init();
  if (step_ns == 0) return 0;
  if (stepped_at_ns >= 0) return 1;
  struct timespec now;
  real_clock_gettime(CLOCK_MONOTONIC, &now);
  if (start_ns < 0) start_ns = ns(&now);
  if (ns(&now) - start_ns < after_ns) return 0;
  real_clock_gettime(CLOCK_REALTIME, &now);
  stepped_at_ns = ns(&now);
  return 1;
}

static void shift(struct timespec *ts) {
  int64_t t = ns(ts) + step_ns;
  ts->tv_sec = t / 1000000000;
  ts->tv_nsec = t % 1000000000;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
  init();
  int rc = real_clock_gettime(clock, ts);
  if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE) && stepped()) shift(ts);
  return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
  (void)tz;
  struct timespec ts;
  int rc = clock_gettime(CLOCK_REALTIME, &ts);
  if (rc == 0) {
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
  }
  return rc;
}

time_t time(time_t *out) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (out) *out = ts.tv_sec;
  return ts.tv_sec;
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  init();
  ssize_t n = real_recvmsg(fd, msg, flags);
  if (n < 0 || !stepped()) return n;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
    struct timespec *ts = (struct timespec *)CMSG_DATA(c);
    /* What arrived before the step keeps the wall clock it arrived on. */
    if (ns(ts) >= stepped_at_ns) shift(ts);
  }
  return n;
}
