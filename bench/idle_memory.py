#!/usr/bin/env python3
"""Worker RSS per idle connection: opens N idle connections to
tcpfork-worker and reports (RSS after - RSS before) / N, and the kernel slab
growth. Source addresses rotate over 127.0.0.x so that N can exceed one
address's ephemeral ports. When N exceeds the per-process descriptor limit,
the connections are spread over several SO_REUSEPORT workers and client
processes, as a master with several workers would serve them."""

import argparse
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import time

from proc_status import status_bytes
from build_tree import free_port


def rss(pid):
    return status_bytes(pid, "VmRSS") or 0


IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h; not exported by Python's socket module


def slab_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Slab:"):
                return int(line.split()[1]) * 1024
    return 0


def hold_connections(port, first, count, ready, release):
    """Child process: opens `count` idle connections (sources rotate over
    127.0.0.x from connection number `first`), says so, holds them until told."""
    conns = []
    try:
        for i in range(first, first + count):
            s = socket.socket()
            # Choose the source port at connect time, per 4-tuple: ports held
            # in TIME_WAIT by earlier runs do not block a bind to port 0.
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((f"127.0.0.{2 + i // 20000}", 0))
            s.connect(("127.0.0.1", port))
            conns.append(s)
    except OSError as e:
        ready.send(f"connection {len(conns) + 1} of {count}: {e}")
        return
    ready.send(len(conns))
    release.recv()
    for s in conns:
        s.close()


def wait_stable(pids):
    """Until the workers have accepted everything: their RSS stops growing."""
    last, stable = -1, 0
    while stable < 5:
        time.sleep(0.2)
        now = sum(rss(p) for p in pids)
        stable = stable + 1 if now == last else 0
        last = now
    return last


def measure(bin_dir, worker, count, per_process):
    """Opens `count` idle connections to as many SO_REUSEPORT workers (and
    client processes) as the per-process descriptor limit requires."""
    port = free_port()
    shares = -(-count // per_process)
    # tcmalloc's heap sampling as the master sets it (profile.heap_sample's default).
    env = dict(os.environ, TCMALLOC_SAMPLE_PARAMETER=str(512 * 1024))
    workers = [subprocess.Popen([os.path.join(bin_dir, worker), "--listen", f"127.0.0.1:{port}",
                                 "--max-connections", str(count + 100), "--idle-timeout", "0",
                                 "--log-level", "warn"], env=env) for _ in range(shares)]
    holders = []
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("worker did not start")
                time.sleep(0.05)
        time.sleep(0.2)
        pids = [w.pid for w in workers]
        before = sum(rss(p) for p in pids)
        slab_before = slab_bytes()
        opened = 0
        for k in range(shares):
            n = min(per_process, count - k * per_process)
            ready_r, ready_w = multiprocessing.Pipe(False)
            release_r, release_w = multiprocessing.Pipe(False)
            child = multiprocessing.Process(target=hold_connections, args=(port, k * per_process, n, ready_w, release_r))
            child.start()
            ready_w.close()  # so that a child that dies shows as EOF here
            holders.append((child, release_w))
            try:
                got = ready_r.recv()
            except EOFError:
                raise RuntimeError("a client process died before opening its connections")
            if isinstance(got, str):
                raise RuntimeError(got)
            opened += got
            print(f"  {opened} connections open", file=sys.stderr, flush=True)
        after = wait_stable(pids)
        slab_after = slab_bytes()
        if shares > 1:
            # SO_REUSEPORT hashes connections over the workers; report the spread.
            print(f"  spread over {shares} workers (one process holds at most {per_process} descriptors here)",
                  file=sys.stderr)
        return before, after, slab_after - slab_before, shares
    finally:
        for child, release in holders:
            try:
                release.send(1)
            except OSError:
                pass
            child.join(30)
            if child.is_alive():
                child.kill()
        for w in workers:
            w.terminate()
            w.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("--counts", default="10000,18000,50000")
    ap.add_argument("--worker", default="tcpfork-worker",
                    help="the worker binary in --bin-dir (tcpfork-worker-glibc: the same on glibc's malloc)")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    # Each worker and each client process holds one descriptor per connection:
    # beyond this process's limit the connections are spread over several
    # workers and client processes (a worker per core serves them anyway).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    per_process = soft - 1000
    print(f"memory per idle connection, {args.worker} (descriptor limit {soft} per process):")
    for count in counts:
        before, after, slab, workers = measure(args.bin_dir, args.worker, count, per_process)
        where = f"one {args.worker}" if workers == 1 else f"{workers} {args.worker}s together"
        print(f"  {count:>6} idle connections, {where}: RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB, "
              f"{(after - before) / count:.0f} bytes per connection; kernel slab +{slab / 2**20:.1f} MiB "
              f"({slab / count:.0f} bytes per connection, both loopback ends, system-wide)", flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
