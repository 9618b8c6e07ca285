#!/usr/bin/env python3
"""Worker RSS per idle connection: opens N idle connections to one
tcpfork-worker and reports (RSS after - RSS before) / N. Source addresses
rotate over 127.0.0.x so that N can exceed one address's ephemeral ports.
Needs a file-descriptor limit above N (raised here when allowed)."""

import argparse
import os
import resource
import socket
import subprocess
import sys
import time


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(bin_dir, count):
    port = free_port()
    worker = subprocess.Popen([os.path.join(bin_dir, "tcpfork-worker"), "--listen", f"127.0.0.1:{port}",
                               "--max-connections", str(count + 100), "--idle-timeout", "0",
                               "--log-level", "warn"])
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
        before = rss(worker.pid)
        conns = []
        for i in range(count):
            s = socket.socket()
            s.bind((f"127.0.0.{2 + i // 20000}", 0))
            s.connect(("127.0.0.1", port))
            conns.append(s)
            if (i + 1) % 10000 == 0:
                print(f"  {i + 1} connections open", file=sys.stderr, flush=True)
        # Wait until the worker has accepted them all (its RSS stops growing).
        last, stable = -1, 0
        while stable < 5:
            time.sleep(0.2)
            now = rss(worker.pid)
            stable = stable + 1 if now == last else 0
            last = now
        after = last
        for s in conns:
            s.close()
        return before, after
    finally:
        worker.terminate()
        worker.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("--counts", default="10000,18000,50000")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    # The worker and this script each hold one descriptor per connection.
    want = max(counts) + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard) if hard < want else want, max(hard, want)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    skipped = [c for c in counts if c + 1000 > soft]
    counts = [c for c in counts if c + 1000 <= soft]
    for c in skipped:
        print(f"idle memory: skipping {c} connections: the descriptor limit here is {soft} "
              f"(hard {hard}); raise it (ulimit -n) to measure", file=sys.stderr)
    print("memory per idle connection (one tcpfork-worker):")
    for count in counts:
        before, after = measure(args.bin_dir, count)
        print(f"  {count:>6} idle connections: RSS {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB, "
              f"{(after - before) / count:.0f} bytes per connection", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
