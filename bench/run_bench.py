#!/usr/bin/env python3
"""make bench: tcpfork-worker against the bare epoll baseline, same scenarios,
same run, same CPUs; then the worker with its stats counting on and off,
with the built-in ack handler against the same logic as a handler module
(examples/handlers/ack.c), and the journal module (handlers/journal) with
fsync: always (an ack after the fdatasync that covers it) and fsync: never.

Each scenario runs `rounds` times against each server, alternating, so slow
drift of the machine hits both alike; the table shows the median round, and
the ratio is the median of the per-round ratios (each round runs the two
back to back, so a round that caught the machine slow counts once). The
server is pinned to one CPU and the client to another, so "one worker" means
one core. Prints a table and writes the raw numbers as JSON.
"""

import argparse
import json
import os
import socket
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from proc_status import status_bytes

SCENARIOS = [
    # name, connections, window
    ("pipelined", 100, 1024),
    ("shallow pipeline", 100, 16),
    ("request/response", 100, 1),
]

# What the per-batch stats writes cost: the same worker with --no-stats.
STATS_SCENARIOS = [("pipelined", 100, 1024), ("request/response", 100, 1)]

# What the handler module ABI costs: every scenario, built-in vs ack.c.
MODULE_SCENARIOS = SCENARIOS

# The journal's price: records written per read batch, synced by group commit.
JOURNAL_SCENARIOS = [("pipelined", 100, 1024), ("request/response", 100, 1)]
JOURNAL_KINDS = ("journal-always", "journal-never")

# Throughput against pipeline depth, both servers, for the plot
# (build/bench/window_sweep.png): shorter and fewer rounds than the tables.
SWEEP_WINDOWS = (1, 4, 16, 64, 256, 1024)
SWEEP_CONNECTIONS = 100

TARGETS = {
    "ratio": 0.9,
    "pipelined_acks_per_sec": 8_000_000,
    "request/response_acks_per_sec": 150_000,
    "request/response_p99_ns": 2_000_000,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ack_module(bin_dir):
    """examples/handlers/ack.c as the build leaves it, beside bin/."""
    path = os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "lib", "tcpfork", "examples", "ack.so")
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing: build everything first (make build)")
    return path


def journal_module(bin_dir):
    """handlers/journal as the build leaves it, beside bin/."""
    path = os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "lib", "tcpfork", "handlers", "journal.so")
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing: build everything first (make build)")
    return path


def peak_rss_bytes(pid):
    return status_bytes(pid, "VmHWM") or 0


class Server:
    """One server process, pinned, on its own loopback port, stopped by pid."""

    def __init__(self, kind, bin_dir, cpu):
        self.port = free_port()
        addr = f"127.0.0.1:{self.port}"
        binary = "tcpfork-baseline" if kind == "baseline" else "tcpfork-worker"
        cmd = ["taskset", "-c", str(cpu), os.path.join(bin_dir, binary), "--listen", addr]
        if kind != "baseline":
            # The journal's summary at exit (records per fsync) is an info line.
            cmd += ["--log-level", "info" if kind.startswith("journal-") else "warn"]
        if kind == "no-stats":
            cmd += ["--no-stats"]
        if kind == "ack-module":
            cmd += ["--handler-module", ack_module(bin_dir)]
        self.journal_dir = None
        if kind.startswith("journal-"):
            # Under the build directory: on the disk the build is on, not a
            # tmpfs /tmp where fdatasync costs nothing.
            parent = os.path.join(os.path.dirname(os.path.abspath(bin_dir)), "bench-journal")
            os.makedirs(parent, exist_ok=True)
            self.journal_dir = tempfile.mkdtemp(dir=parent)
            config = {"dir": self.journal_dir, "fsync": kind.removeprefix("journal-")}
            cmd += ["--handler-module", journal_module(bin_dir), "--handler-config", json.dumps(config)]
        self.summary = ""
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        self.client = os.path.join(bin_dir, "tcpfork-client")
        self.addr = addr
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            probe = subprocess.run([self.client, "send", "--addr", self.addr, "--timeout", "1"],
                                   capture_output=True)
            if probe.returncode == 0:
                return
            time.sleep(0.05)
        self.log.seek(0)
        raise RuntimeError(f"server on {self.addr} never became ready:\n{self.log.read().decode()}")

    def stop(self):
        rss = peak_rss_bytes(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.journal_dir:
            self.log.seek(0)
            found = re.findall(r"\[journal\] (closed: .*)", self.log.read().decode(errors="replace"))
            self.summary = found[-1] if found else ""
            shutil.rmtree(self.journal_dir, ignore_errors=True)
        return rss


def run_client(client, addr, connections, window, args, cpu, duration):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = ["taskset", "-c", str(cpu), client, "bench", "--addr", addr, "-c", str(connections), "-w",
               str(window), "-d", str(duration), "--payload-bytes", str(args.payload_bytes), "--threads",
               str(args.client_threads), "-q", "--json", out.name]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"client failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return json.load(open(out.name))


def fmt_rate(v):
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.1f} k"


def fmt_ns(ns):
    return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.0f} us"


def print_table(rows, columns):
    """One row per scenario; columns are (title, width, format of a row)."""
    header = f"{'scenario':<18} " + " ".join(f"{title:>{width}}" for title, width, _ in columns)
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['scenario']:<18} " + " ".join(f"{cell(row):>{width}}" for _, width, cell in columns))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("--out", default="build/bench.json")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    ap.add_argument("--rounds", type=int, default=5, help="runs per scenario and server (median shown)")
    ap.add_argument("--payload-bytes", type=int, default=16)
    ap.add_argument("--client-threads", type=int, default=1)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--sweep-duration", type=float, default=2.0, help="seconds per run of the window sweep")
    ap.add_argument("--sweep-rounds", type=int, default=2, help="runs per window and server in the sweep")
    args = ap.parse_args()

    client = os.path.join(args.bin_dir, "tcpfork-client")
    total_runs = ((len(SCENARIOS) + len(STATS_SCENARIOS) + len(MODULE_SCENARIOS) + len(JOURNAL_SCENARIOS)) * 2 *
                  args.rounds + len(SWEEP_WINDOWS) * 2 * args.sweep_rounds)
    counter = [0]

    def compare(name, conns, window, kinds, rounds=None, duration=None):
        """Runs `rounds` alternating rounds per kind; returns the median report and peak RSS per kind."""
        runs = {kind: [] for kind in kinds}
        peak = {kind: 0 for kind in kinds}
        for r in range(rounds or args.rounds):
            for kind in kinds:
                counter[0] += 1
                print(f"[{counter[0]}/{total_runs}] {name} ({conns} x {window}) against {kind}, round {r + 1}",
                      file=sys.stderr, flush=True)
                server = Server(kind, args.bin_dir, args.server_cpu)
                try:
                    report = run_client(client, server.addr, conns, window, args, args.client_cpu,
                                        duration or args.duration)
                finally:
                    peak[kind] = max(peak[kind], server.stop())
                report["journal_summary"] = server.summary
                if report["errors_total"] or report["unacked_at_end"]:
                    raise RuntimeError(f"{kind} {name}: ack errors {report['errors']}, "
                                       f"unacked {report['unacked_at_end']}")
                runs[kind].append(report)
        medians = {}
        for kind in kinds:
            ordered = sorted(runs[kind], key=lambda rep: rep["acks_per_sec"])
            medians[kind] = ordered[len(ordered) // 2]
        return medians, peak, runs

    def paired_ratio(ours, theirs):
        """The median over rounds of ours / theirs, the two runs of each round taken together."""
        ratios = [a["acks_per_sec"] / b["acks_per_sec"] for a, b in zip(ours, theirs) if b["acks_per_sec"]]
        return statistics.median(ratios) if ratios else 0.0

    results = []
    for name, conns, window in SCENARIOS:
        medians, peak, runs = compare(name, conns, window, ("tcpfork", "baseline"))
        ours, base = medians["tcpfork"], medians["baseline"]
        results.append({
            "scenario": name, "connections": conns, "window": window,
            "tcpfork_acks_per_sec": ours["acks_per_sec"], "baseline_acks_per_sec": base["acks_per_sec"],
            "ratio": paired_ratio(runs["tcpfork"], runs["baseline"]),
            "tcpfork_p50_ns": ours["latency_ns"]["p50"], "tcpfork_p99_ns": ours["latency_ns"]["p99"],
            "baseline_p50_ns": base["latency_ns"]["p50"], "baseline_p99_ns": base["latency_ns"]["p99"],
            "tcpfork_peak_rss_bytes": peak["tcpfork"], "baseline_peak_rss_bytes": peak["baseline"],
            "tcpfork_rounds_acks_per_sec": [rep["acks_per_sec"] for rep in runs["tcpfork"]],
            "baseline_rounds_acks_per_sec": [rep["acks_per_sec"] for rep in runs["baseline"]],
            # The median round's whole latency distribution: [upper bound ns, count] per bucket.
            "tcpfork_latency_buckets": ours["latency_ns"].get("buckets", []),
            "baseline_latency_buckets": base["latency_ns"].get("buckets", []),
        })

    stats_results = []
    for name, conns, window in STATS_SCENARIOS:
        medians, _, runs = compare(name, conns, window, ("tcpfork", "no-stats"))
        on, off = medians["tcpfork"]["acks_per_sec"], medians["no-stats"]["acks_per_sec"]
        stats_results.append({
            "scenario": name, "connections": conns, "window": window,
            "stats_on_acks_per_sec": on, "stats_off_acks_per_sec": off,
            "ratio": paired_ratio(runs["tcpfork"], runs["no-stats"]),
            "stats_on_rounds": [rep["acks_per_sec"] for rep in runs["tcpfork"]],
            "stats_off_rounds": [rep["acks_per_sec"] for rep in runs["no-stats"]],
        })

    module_results = []
    for name, conns, window in MODULE_SCENARIOS:
        medians, _, runs = compare(name, conns, window, ("tcpfork", "ack-module"))
        module_results.append({
            "scenario": name, "connections": conns, "window": window,
            "builtin_acks_per_sec": medians["tcpfork"]["acks_per_sec"],
            "module_acks_per_sec": medians["ack-module"]["acks_per_sec"],
            "module_p99_ns": medians["ack-module"]["latency_ns"]["p99"],
            "ratio": paired_ratio(runs["ack-module"], runs["tcpfork"]),
            "builtin_rounds": [rep["acks_per_sec"] for rep in runs["tcpfork"]],
            "module_rounds": [rep["acks_per_sec"] for rep in runs["ack-module"]],
        })

    def records_per_fsync(summary):
        found = re.search(r"\(([0-9.]+) records per fsync, ([0-9.]+) us per fsync\)", summary)
        return (float(found.group(1)), float(found.group(2))) if found else (0.0, 0.0)

    journal_results = []
    for name, conns, window in JOURNAL_SCENARIOS:
        medians, _, runs = compare(name, conns, window, JOURNAL_KINDS)
        always, never = medians["journal-always"], medians["journal-never"]
        per_fsync, fsync_us = records_per_fsync(always["journal_summary"])
        journal_results.append({
            "scenario": name, "connections": conns, "window": window,
            "always_acks_per_sec": always["acks_per_sec"], "always_p99_ns": always["latency_ns"]["p99"],
            "always_records_per_fsync": per_fsync, "always_us_per_fsync": fsync_us,
            "never_acks_per_sec": never["acks_per_sec"], "never_p99_ns": never["latency_ns"]["p99"],
            "always_rounds": [rep["acks_per_sec"] for rep in runs["journal-always"]],
            "never_rounds": [rep["acks_per_sec"] for rep in runs["journal-never"]],
            "always_summaries": [rep["journal_summary"] for rep in runs["journal-always"]],
        })

    sweep_results = []
    for window in SWEEP_WINDOWS:
        medians, _, runs = compare(f"window {window}", SWEEP_CONNECTIONS, window, ("tcpfork", "baseline"),
                                   rounds=args.sweep_rounds, duration=args.sweep_duration)
        sweep_results.append({
            "scenario": f"window {window}", "window": window, "connections": SWEEP_CONNECTIONS,
            "tcpfork_acks_per_sec": medians["tcpfork"]["acks_per_sec"],
            "baseline_acks_per_sec": medians["baseline"]["acks_per_sec"],
            "ratio": paired_ratio(runs["tcpfork"], runs["baseline"]),
        })

    print()
    print(f"one worker on CPU {args.server_cpu}, client on CPU {args.client_cpu}, {args.payload_bytes}-byte "
          f"payloads, {args.duration:g} s per run, median of {args.rounds}")
    print_table(results, [
        ("tcpfork acks/s", 15, lambda r: fmt_rate(r["tcpfork_acks_per_sec"])),
        ("baseline acks/s", 16, lambda r: fmt_rate(r["baseline_acks_per_sec"])),
        ("ratio", 6, lambda r: f"{r['ratio']:.2f}"),
        ("p50", 9, lambda r: fmt_ns(r["tcpfork_p50_ns"])),
        ("p99", 9, lambda r: fmt_ns(r["tcpfork_p99_ns"])),
        ("base p99", 9, lambda r: fmt_ns(r["baseline_p99_ns"])),
        ("peak RSS", 9, lambda r: f"{r['tcpfork_peak_rss_bytes'] / 2**20:.1f} M"),
    ])

    print()
    print("stats cost: the same worker counting into its stats slot (on) and with --no-stats (off)")
    print_table(stats_results, [
        ("stats on acks/s", 16, lambda r: fmt_rate(r["stats_on_acks_per_sec"])),
        ("stats off acks/s", 17, lambda r: fmt_rate(r["stats_off_acks_per_sec"])),
        ("ratio", 6, lambda r: f"{r['ratio']:.3f}"),
    ])

    print()
    print("handler module cost: the built-in ack handler and the same as a module (examples/handlers/ack.c)")
    print_table(module_results, [
        ("built-in acks/s", 16, lambda r: fmt_rate(r["builtin_acks_per_sec"])),
        ("ack.c acks/s", 13, lambda r: fmt_rate(r["module_acks_per_sec"])),
        ("ack.c p99", 10, lambda r: fmt_ns(r["module_p99_ns"])),
        ("ratio", 6, lambda r: f"{r['ratio']:.3f}"),
    ])

    print()
    print("journal module: every Submit a record on disk; fsync: always acks after the fdatasync that covers it")
    print_table(journal_results, [
        ("always acks/s", 14, lambda r: fmt_rate(r["always_acks_per_sec"])),
        ("always p99", 11, lambda r: fmt_ns(r["always_p99_ns"])),
        ("recs/fsync", 11, lambda r: f"{r['always_records_per_fsync']:.1f}"),
        ("us/fsync", 9, lambda r: f"{r['always_us_per_fsync']:.0f}"),
        ("never acks/s", 13, lambda r: fmt_rate(r["never_acks_per_sec"])),
        ("never p99", 10, lambda r: fmt_ns(r["never_p99_ns"])),
    ])

    print()
    print(f"window sweep: {SWEEP_CONNECTIONS} connections, {args.sweep_rounds} rounds of {args.sweep_duration} s "
          "(median), for build/bench/window_sweep.png")
    print_table(sweep_results, [
        ("tcpfork acks/s", 15, lambda r: fmt_rate(r["tcpfork_acks_per_sec"])),
        ("baseline acks/s", 16, lambda r: fmt_rate(r["baseline_acks_per_sec"])),
        ("ratio", 6, lambda r: f"{r['ratio']:.2f}"),
    ])

    by_name = {row["scenario"]: row for row in results}
    checks = [
        ("ratio >= 0.9 in every scenario", all(row["ratio"] >= TARGETS["ratio"] for row in results)),
        ("pipelined >= 8 M acks/s",
         by_name["pipelined"]["tcpfork_acks_per_sec"] >= TARGETS["pipelined_acks_per_sec"]),
        ("request/response >= 150 k acks/s",
         by_name["request/response"]["tcpfork_acks_per_sec"] >= TARGETS["request/response_acks_per_sec"]),
        ("request/response p99 <= 2 ms",
         by_name["request/response"]["tcpfork_p99_ns"] <= TARGETS["request/response_p99_ns"]),
        ("stats on >= 98% of stats off", all(row["ratio"] >= 0.98 for row in stats_results)),
        ("ack.c module >= 95% of built-in in every scenario", all(row["ratio"] >= 0.95 for row in module_results)),
    ]
    print()
    for what, ok in checks:
        print(f"  {'met  ' if ok else 'SHORT'}  {what}")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"duration_s": args.duration, "rounds": args.rounds, "payload_bytes": args.payload_bytes,
                   "scenarios": results, "stats_cost": stats_results, "module_cost": module_results,
                   "journal": journal_results, "window_sweep": sweep_results, "targets_met": {what: ok for what, ok in checks}}, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
