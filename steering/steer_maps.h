#pragma once
// What the steering program (steer.bpf.c) and the master that writes its
// maps (reuseport_steering.cc) share: the layout of a set of eligible worker
// indices and the program's counters. C, for both compilers.

#ifdef __cplusplus
#include <cstdint>
using __u32 = uint32_t;
#endif

// max_workers' upper bound (config.cc).
#define STEER_MAX_WORKERS 4096

// The worker indices that take new connections: index[0..count).
struct steer_set {
  __u32 count;
  __u32 index[STEER_MAX_WORKERS];
};

enum {
  STEER_STAT_STEERED = 0,  // a new connection went to an eligible worker
  STEER_STAT_MIGRATED,     // a closing listener's connection went to one
  STEER_STAT_UNSET,        // no set written yet: the kernel's hash chose
  STEER_STAT_MISSED,       // no socket of the set could be selected: hash
  STEER_STAT_COUNT,
};
