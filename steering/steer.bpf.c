// The reuseport selection program: picks which worker's listening socket
// takes a new connection (SK_REUSEPORT), and where the queued connections of
// a listener being closed go (SELECT_OR_MIGRATE), among the worker indices
// the master last marked eligible. The master rewrites that set every tick
// (steering/reuseport_steering.cc); the program never blocks and never drops:
// whatever it cannot decide falls back to the kernel's own hash over the
// group, which is plain SO_REUSEPORT.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "steering/steer_maps.h"

// Each listening socket of the group by worker index (the value the master
// writes is the socket's fd; the kernel keeps the socket).
struct {
  __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
  __uint(max_entries, STEER_MAX_WORKERS);  // lowered to max_workers at load
  __type(key, __u32);
  __type(value, __u64);
} listeners SEC(".maps");

// Two sets, written alternately, and which one is live: the master fills the
// idle one and then flips `live`, so a lookup never sees half a set.
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, struct steer_set);
} sets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} live SEC(".maps");

// What the program did, per CPU (STEER_STAT_*): read by tests and logs.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STEER_STAT_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} stats SEC(".maps");

// Candidates tried after the hashed one when a socket cannot be selected
// (closed since the set was written): a bound the verifier can see.
#define STEER_TRIES 4

static __always_inline void count(__u32 what) {
  __u64* n = bpf_map_lookup_elem(&stats, &what);
  if (n) *n += 1;
}

SEC("sk_reuseport/migrate")
int steer(struct sk_reuseport_md* md) {
  __u32 zero = 0;
  __u32* which = bpf_map_lookup_elem(&live, &zero);
  if (!which) return SK_PASS;
  __u32 key = *which & 1;
  struct steer_set* set = bpf_map_lookup_elem(&sets, &key);
  if (!set) return SK_PASS;
  __u32 n = set->count;
  if (n == 0 || n > STEER_MAX_WORKERS) {
    count(STEER_STAT_UNSET);
    return SK_PASS;
  }
  __u32 start = md->hash % n;
  for (__u32 i = 0; i < STEER_TRIES; i++) {
    if (i >= n) break;
    // The mask changes nothing (at < n <= STEER_MAX_WORKERS, a power of
    // two) but shows the verifier the bound.
    __u32 at = ((start + i) % n) & (STEER_MAX_WORKERS - 1);
    __u32 index = set->index[at];
    if (bpf_sk_select_reuseport(md, &listeners, &index, 0) == 0) {
      count(md->migrating_sk ? STEER_STAT_MIGRATED : STEER_STAT_STEERED);
      return SK_PASS;
    }
  }
  count(STEER_STAT_MISSED);
  return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
