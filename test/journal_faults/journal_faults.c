/* Disk faults the tests can switch on, for one process and its children:
 * loaded with LD_PRELOAD, it fails pwrite and fdatasync with EIO, as a
 * failing disk does, but only on files under TCPFORK_TEST_FAULT_DIR and only
 * while the file TCPFORK_TEST_FAULT_FILE names the call ("pwrite",
 * "fdatasync", or both, one a line). "holdsync" there makes fdatasync wait
 * instead, for as long as it is there (a slow disk: written, not yet
 * durable), at most a minute. The file is read at each such call, so
 * a test turns a fault on and off by writing it, while the server runs.
 * Nothing else is touched: the stats segment, logs and sockets go on as
 * they are. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*fdatasync_fn)(int);

/* Whether the control file names `call` now. */
static int armed(const char *call) {
  const char *control = getenv("TCPFORK_TEST_FAULT_FILE");
  if (!control) return 0;
  int fd = open(control, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[256];
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return 0;
  text[n] = '\0';
  return strstr(text, call) != NULL;
}

/* Whether `fd` is a file under the faulty directory (an O_TMPFILE file not
 * yet linked reads "DIR/#INODE (deleted)": under it too). */
static int underFaultyDir(int fd) {
  const char *dir = getenv("TCPFORK_TEST_FAULT_DIR");
  if (!dir || !*dir) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  size_t len = strlen(dir);
  return strncmp(path, dir, len) == 0 && path[len] == '/';
}

static int fails(const char *call, int fd) { return armed(call) && underFaultyDir(fd); }

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
  static pwrite_fn real;
  if (!real) real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
  if (fails("pwrite", fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) { return pwrite(fd, buf, count, offset); }

int fdatasync(int fd) {
  static fdatasync_fn real;
  if (!real) real = (fdatasync_fn)dlsym(RTLD_NEXT, "fdatasync");
  for (int waited = 0; waited < 60000 && fails("holdsync", fd); ++waited) usleep(1000);
  if (fails("fdatasync", fd)) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}
