// plant_profiles DIR symlink TARGET | DIR fifo
//
// A hostile process of the workers' user, for the profiling tests: watches
// DIR (inotify) and replaces every *.prof that appears there, the moment a
// worker renames it into place, with a symlink to TARGET or with a FIFO
// (made beside it, then renamed over it). Prints one line per swap. Exits
// after 120 s at most; the tests kill it sooner.

#include <sys/inotify.h>
#include <sys/stat.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3 || (std::strcmp(argv[2], "symlink") == 0 && argc != 4) ||
      (std::strcmp(argv[2], "fifo") == 0 && argc != 3)) {
    std::fprintf(stderr, "usage: plant_profiles DIR symlink TARGET | DIR fifo\n");
    return 2;
  }
  std::string dir = argv[1];
  bool symlink = std::strcmp(argv[2], "symlink") == 0;
  int watch = inotify_init1(IN_CLOEXEC);
  if (watch < 0 || inotify_add_watch(watch, dir.c_str(), IN_MOVED_TO) < 0) {
    std::fprintf(stderr, "inotify(%s): %s\n", dir.c_str(), std::strerror(errno));
    return 1;
  }
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  alignas(inotify_event) char events[64 * 1024];
  unsigned swaps = 0;
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{watch, POLLIN, 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    ssize_t n = ::read(watch, events, sizeof events);
    for (ssize_t at = 0; at < n;) {
      auto* event = reinterpret_cast<inotify_event*>(events + at);
      at += ssize_t(sizeof(inotify_event) + event->len);
      std::string name = event->len ? event->name : "";
      if (name.size() < 5 || name.compare(name.size() - 5, 5, ".prof") != 0) continue;
      std::string path = dir + "/" + name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // gone, or our own swap
      std::string swap = dir + "/.plant-" + std::to_string(swaps);
      int made = symlink ? ::symlink(argv[3], swap.c_str()) : ::mkfifo(swap.c_str(), 0600);
      if (made != 0 || ::rename(swap.c_str(), path.c_str()) != 0) {
        std::fprintf(stderr, "swap %s: %s\n", path.c_str(), std::strerror(errno));
        continue;
      }
      std::printf("swapped %s\n", name.c_str());
      std::fflush(stdout);
      ++swaps;
    }
  }
  return 0;
}
