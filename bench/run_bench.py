#!/usr/bin/env python3
"""make bench: tcpfork-worker against the bare epoll baseline, same scenarios,
same run, same CPUs; then the worker with its stats counting on and off,
with the built-in ack handler against the same logic as a handler module
(examples/handlers/ack.c), the journal module (handlers/journal) with
fsync: always (an ack after the fdatasync that covers it) and fsync: never,
and the allocator: tcmalloc sampling heap profiles at the default 512 KiB
(as the master starts every worker, and as every other row runs), tcmalloc
not sampling, and glibc's malloc (tcpfork-worker-glibc).

Each comparison runs `rounds` rounds; a round runs the two servers back to
back, in alternating order, so drift of the machine hits both alike. The
server is pinned to one CPU and the client to another, so "one worker" means
one core. Beside each server's acks/s (the client's count, median of the
rounds) stands its CPU time per ack (cpu_per_ack.py: utime + stime over the
acks the client counted in the same span, warm-up left out; median of the
rounds). A ratio of acks/s is the ratio of the two medians printed beside
it; a CPU ratio is the median of the per-round ratios, so a round that
caught the machine slow counts once. The targets (targets.py) are judged on
CPU per ack wherever throughput is what the machine's other load decides.
Prints the tables and writes every round's numbers as JSON.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import cpu_per_ack
from proc_status import status_bytes
from targets import allocator_check, fmt_cpu, fmt_ns, fmt_rate, judge
from build_tree import ack_module, free_port, journal_module

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

# What the allocator and heap sampling cost: every scenario.
ALLOC_SCENARIOS = SCENARIOS
ALLOC_KINDS = ("sampled", "unsampled", "glibc")
# And what tcmalloc (sampling) does where a handler module allocates on the
# worker's behalf: ack.c, and the journal with fsync: never (its CPU, not
# the disk's wait), each against the same module on glibc's malloc.
ALLOC_MODULE_ROWS = [
    # row name, server kind, connections, window
    ("ack.c pipelined", "ack-module", 100, 1024),
    ("ack.c req/resp", "ack-module", 100, 1),
    ("journal pipelined", "journal-never", 100, 1024),
    ("journal req/resp", "journal-never", 100, 1),
]
GLIBC = "+glibc"
# What the master puts in each worker's environment (profile.heap_sample).
DEFAULT_HEAP_SAMPLE = 512 * 1024

# Throughput against pipeline depth, both servers, for the plot
# (build/bench/window_sweep.png): shorter and fewer rounds than the tables.
SWEEP_WINDOWS = (1, 4, 16, 64, 256, 1024)
SWEEP_CONNECTIONS = 100


def peak_rss_bytes(pid):
    return status_bytes(pid, "VmHWM") or 0


class Server:
    """One server process, pinned, on its own loopback port, stopped by pid."""

    def __init__(self, kind, bin_dir, cpu):
        self.port = free_port()
        addr = f"127.0.0.1:{self.port}"
        # "<kind>+glibc": the same server on glibc's malloc.
        on_glibc = kind == "glibc" or kind.endswith(GLIBC)
        kind = kind.removesuffix(GLIBC)
        binary = "tcpfork-baseline" if kind == "baseline" else "tcpfork-worker-glibc" if on_glibc else "tcpfork-worker"
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
        # tcmalloc reads its sampling rate before main, as the master sets it.
        env = dict(os.environ, TCMALLOC_SAMPLE_PARAMETER=str(0 if kind == "unsampled" else DEFAULT_HEAP_SAMPLE))
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)
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

    def serving_pids(self):
        """The processes whose CPU time serves the load: the server itself
        (taskset execs it), one process with all its threads."""
        return [self.proc.pid]

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


def run_client(client, server, connections, window, args, cpu, duration):
    """The client's JSON report, with the server's CPU per ack (cpu_per_ack.py) under "cpu"."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = ["taskset", "-c", str(cpu), client, "bench", "--addr", server.addr, "-c", str(connections), "-w",
               str(window), "-d", str(duration), "--payload-bytes", str(args.payload_bytes), "--threads",
               str(args.client_threads), "--json", out.name]
        measured = cpu_per_ack.run(cmd, server.serving_pids, duration, args.warmup)
        report = json.load(open(out.name))
    report["cpu"] = measured
    return report


def print_table(rows, columns):
    """One row per scenario; columns are (title, width, format of a row)."""
    header = f"{'scenario':<18} " + " ".join(f"{title:>{width}}" for title, width, _ in columns)
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['scenario']:<18} " + " ".join(f"{cell(row):>{width}}" for _, width, cell in columns))


def count_rounds(n):
    return f"{n} round" if n == 1 else f"{n} rounds"


def median_of(runs, key):
    return statistics.median(key(rep) for rep in runs)


def acks_per_sec(rep):
    return rep["acks_per_sec"]


def cpu_ns(rep):
    return rep["cpu"]["cpu_per_ack_ns"]


def summary(runs, kind, prefix):
    """`kind`'s medians over its rounds, and every round, as `prefix`_... keys."""
    return {
        f"{prefix}_acks_per_sec": median_of(runs[kind], acks_per_sec),
        f"{prefix}_cpu_per_ack_ns": median_of(runs[kind], cpu_ns),
        f"{prefix}_rounds_acks_per_sec": [acks_per_sec(rep) for rep in runs[kind]],
        f"{prefix}_rounds_cpu_per_ack_ns": [cpu_ns(rep) for rep in runs[kind]],
        f"{prefix}_rounds_cpu": [rep["cpu"] for rep in runs[kind]],
    }


def paired(runs, first, second):
    """How `first` compares with `second`: acks_ratio is the ratio of the two
    acks/s medians (what the table prints beside it); cpu_ratio is the median
    of the per-round ratios of CPU per ack (each round runs the two back to
    back, so a round that caught the machine slow counts once)."""
    per_round = [cpu_ns(a) / cpu_ns(b) for a, b in zip(runs[first], runs[second])]
    return {
        "acks_ratio": median_of(runs[first], acks_per_sec) / median_of(runs[second], acks_per_sec),
        "cpu_ratio": statistics.median(per_round),
        "cpu_round_ratios": per_round,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("--out", default="build/bench.json")
    ap.add_argument("--duration", type=float, default=3.1,
                    help="seconds the client sends per run; CPU per ack is measured from the end of the warm-up "
                         f"to the last whole second at least {cpu_per_ack.END_MARGIN_S} s before the end")
    ap.add_argument("--warmup", type=int, default=1, help="whole seconds of each run left out of CPU per ack")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds per comparison (medians shown)")
    ap.add_argument("--payload-bytes", type=int, default=16)
    ap.add_argument("--client-threads", type=int, default=1)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--only", choices=["allocator"], help="run only this comparison (and print its table)")
    ap.add_argument("--sweep-duration", type=float, default=2.1, help="seconds per run of the window sweep")
    ap.add_argument("--sweep-rounds", type=int, default=2, help="alternating rounds per window in the sweep")
    args = ap.parse_args()
    span = cpu_per_ack.measured_span(args.duration, args.warmup)
    sweep_span = cpu_per_ack.measured_span(args.sweep_duration, args.warmup)

    client = os.path.join(args.bin_dir, "tcpfork-client")
    total_runs = ((len(SCENARIOS) + len(STATS_SCENARIOS) + len(MODULE_SCENARIOS) + len(JOURNAL_SCENARIOS)) * 2 *
                  args.rounds + len(ALLOC_SCENARIOS) * len(ALLOC_KINDS) * args.rounds +
                  len(SWEEP_WINDOWS) * 2 * args.sweep_rounds)
    total_runs += len(ALLOC_MODULE_ROWS) * 2 * args.rounds
    if args.only == "allocator":
        total_runs = (len(ALLOC_SCENARIOS) * len(ALLOC_KINDS) + len(ALLOC_MODULE_ROWS) * 2) * args.rounds
    counter = [0]

    def compare(name, conns, window, kinds, rounds=None, duration=None):
        """Runs `rounds` rounds of each kind back to back, the order reversed
        every other round (drift within a round then favours neither);
        returns every round's report and the peak RSS per kind."""
        runs = {kind: [] for kind in kinds}
        peak = {kind: 0 for kind in kinds}
        for r in range(rounds or args.rounds):
            for kind in (kinds if r % 2 == 0 else tuple(reversed(kinds))):
                counter[0] += 1
                print(f"[{counter[0]}/{total_runs}] {name} ({conns} x {window}) against {kind}, round {r + 1}",
                      file=sys.stderr, flush=True)
                server = Server(kind, args.bin_dir, args.server_cpu)
                try:
                    report = run_client(client, server, conns, window, args, args.client_cpu,
                                        duration or args.duration)
                finally:
                    peak[kind] = max(peak[kind], server.stop())
                report["journal_summary"] = server.summary
                if report["errors_total"] or report["unacked_at_end"]:
                    raise RuntimeError(f"{kind} {name}: ack errors {report['errors']}, "
                                       f"unacked {report['unacked_at_end']}")
                runs[kind].append(report)
        return runs, peak

    def median_round(reports):
        """The round of median throughput (odd rounds: the median itself), for its latency figures."""
        return sorted(reports, key=acks_per_sec)[len(reports) // 2]

    def rate(key):
        return lambda r: fmt_rate(r[key])

    def cpu(key):
        return lambda r: fmt_cpu(r[key])

    def ratio(key, digits):
        return lambda r: f"{r[key]:.{digits}f}"

    alloc_results = []
    for name, conns, window in ALLOC_SCENARIOS:
        runs, peak = compare(name, conns, window, ALLOC_KINDS)
        alloc_results.append({
            "scenario": name, "connections": conns, "window": window,
            **summary(runs, "sampled", "sampled"), **summary(runs, "unsampled", "unsampled"),
            **summary(runs, "glibc", "glibc"),
            "sampled_over_unsampled": paired(runs, "sampled", "unsampled"),
            "sampled_over_glibc": paired(runs, "sampled", "glibc"),
            "sampled_peak_rss_bytes": peak["sampled"], "glibc_peak_rss_bytes": peak["glibc"],
        })
    alloc_module_results = []
    for name, kind, conns, window in ALLOC_MODULE_ROWS:
        runs, peak = compare(name, conns, window, (kind, kind + GLIBC))
        alloc_module_results.append({
            "scenario": name, "kind": kind, "connections": conns, "window": window,
            **summary(runs, kind, "sampled"), **summary(runs, kind + GLIBC, "glibc"),
            **paired(runs, kind, kind + GLIBC),
            "sampled_peak_rss_bytes": peak[kind], "glibc_peak_rss_bytes": peak[kind + GLIBC],
        })

    def print_alloc_table():
        print()
        print("allocator: tcmalloc sampling heap profiles every 512 KiB (as workers run), tcmalloc not sampling, "
              f"glibc malloc (tcpfork-worker-glibc), {count_rounds(args.rounds)}")
        print_table(alloc_results, [
            ("sampled acks/s", 14, rate("sampled_acks_per_sec")),
            ("unsampled", 10, rate("unsampled_acks_per_sec")),
            ("glibc acks/s", 12, rate("glibc_acks_per_sec")),
            ("s/u", 5, lambda r: f"{r['sampled_over_unsampled']['acks_ratio']:.3f}"),
            ("s/glibc", 7, lambda r: f"{r['sampled_over_glibc']['acks_ratio']:.3f}"),
            ("sampled CPU/ack", 15, cpu("sampled_cpu_per_ack_ns")),
            ("glibc CPU/ack", 13, cpu("glibc_cpu_per_ack_ns")),
            ("CPU s/glibc", 11, lambda r: f"{r['sampled_over_glibc']['cpu_ratio']:.3f}"),
            ("peak RSS s/glibc", 16, lambda r: f"{r['sampled_peak_rss_bytes'] / 2**20:.1f}/"
                                                f"{r['glibc_peak_rss_bytes'] / 2**20:.1f} M"),
        ])
        print()
        print("allocator under a handler module: ack.c and the journal (fsync: never), tcmalloc sampling against "
              f"glibc malloc, {count_rounds(args.rounds)}")
        print_table(alloc_module_results, [
            ("sampled acks/s", 14, rate("sampled_acks_per_sec")),
            ("glibc acks/s", 12, rate("glibc_acks_per_sec")),
            ("ratio", 5, ratio("acks_ratio", 3)),
            ("sampled CPU/ack", 15, cpu("sampled_cpu_per_ack_ns")),
            ("glibc CPU/ack", 13, cpu("glibc_cpu_per_ack_ns")),
            ("CPU ratio", 9, ratio("cpu_ratio", 3)),
            ("peak RSS s/glibc", 16, lambda r: f"{r['sampled_peak_rss_bytes'] / 2**20:.1f}/"
                                                f"{r['glibc_peak_rss_bytes'] / 2**20:.1f} M"),
        ])

    def alloc_rows_judged():
        """Every allocator row as the target reads it: sampled tcmalloc over glibc."""
        return [{"scenario": r["scenario"], **r["sampled_over_glibc"]} for r in alloc_results] + alloc_module_results

    if args.only == "allocator":
        print_alloc_table()
        print()
        what, ok, evidence = allocator_check(alloc_rows_judged(), args.rounds)
        print(f"  {'met  ' if ok else 'SHORT'}  {what}\n           [{evidence}]")
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"duration_s": args.duration, "warmup_s": args.warmup, "cpu_span_s": span, "rounds": args.rounds,
                       "payload_bytes": args.payload_bytes, "allocator": alloc_results,
                       "allocator_modules": alloc_module_results, "targets_met": {what: ok}}, f, indent=2)
        print(f"\nwrote {args.out}")
        return

    results = []
    for name, conns, window in SCENARIOS:
        runs, peak = compare(name, conns, window, ("tcpfork", "baseline"))
        ours, base = median_round(runs["tcpfork"]), median_round(runs["baseline"])
        results.append({
            "scenario": name, "connections": conns, "window": window,
            **summary(runs, "tcpfork", "tcpfork"), **summary(runs, "baseline", "baseline"),
            **paired(runs, "tcpfork", "baseline"),
            "tcpfork_p50_ns": ours["latency_ns"]["p50"], "tcpfork_p99_ns": ours["latency_ns"]["p99"],
            "baseline_p50_ns": base["latency_ns"]["p50"], "baseline_p99_ns": base["latency_ns"]["p99"],
            "tcpfork_peak_rss_bytes": peak["tcpfork"], "baseline_peak_rss_bytes": peak["baseline"],
            # The median round's whole latency distribution: [upper bound ns, count] per bucket.
            "tcpfork_latency_buckets": ours["latency_ns"].get("buckets", []),
            "baseline_latency_buckets": base["latency_ns"].get("buckets", []),
        })

    stats_results = []
    for name, conns, window in STATS_SCENARIOS:
        runs, _ = compare(name, conns, window, ("tcpfork", "no-stats"))
        stats_results.append({
            "scenario": name, "connections": conns, "window": window,
            **summary(runs, "tcpfork", "stats_on"), **summary(runs, "no-stats", "stats_off"),
            **paired(runs, "tcpfork", "no-stats"),
        })

    module_results = []
    for name, conns, window in MODULE_SCENARIOS:
        runs, _ = compare(name, conns, window, ("tcpfork", "ack-module"))
        module_results.append({
            "scenario": name, "connections": conns, "window": window,
            **summary(runs, "tcpfork", "builtin"), **summary(runs, "ack-module", "module"),
            "module_p99_ns": median_round(runs["ack-module"])["latency_ns"]["p99"],
            **paired(runs, "ack-module", "tcpfork"),
        })

    def records_per_fsync(summary_line):
        found = re.search(r"\(([0-9.]+) records per fsync, ([0-9.]+) us per fsync\)", summary_line)
        return (float(found.group(1)), float(found.group(2))) if found else (0.0, 0.0)

    journal_results = []
    for name, conns, window in JOURNAL_SCENARIOS:
        runs, _ = compare(name, conns, window, JOURNAL_KINDS)
        always, never = median_round(runs["journal-always"]), median_round(runs["journal-never"])
        per_fsync, fsync_us = records_per_fsync(always["journal_summary"])
        journal_results.append({
            "scenario": name, "connections": conns, "window": window,
            **summary(runs, "journal-always", "always"), **summary(runs, "journal-never", "never"),
            "always_p99_ns": always["latency_ns"]["p99"], "never_p99_ns": never["latency_ns"]["p99"],
            "always_records_per_fsync": per_fsync, "always_us_per_fsync": fsync_us,
            "always_summaries": [rep["journal_summary"] for rep in runs["journal-always"]],
        })

    sweep_results = []
    for window in SWEEP_WINDOWS:
        runs, _ = compare(f"window {window}", SWEEP_CONNECTIONS, window, ("tcpfork", "baseline"),
                          rounds=args.sweep_rounds, duration=args.sweep_duration)
        sweep_results.append({
            "scenario": f"window {window}", "window": window, "connections": SWEEP_CONNECTIONS,
            **summary(runs, "tcpfork", "tcpfork"), **summary(runs, "baseline", "baseline"),
            **paired(runs, "tcpfork", "baseline"),
        })

    print()
    print(f"one worker on CPU {args.server_cpu}, client on CPU {args.client_cpu}, {args.payload_bytes}-byte "
          f"payloads, {args.duration:g} s per run")
    print("  acks/s     the client's count over its run; the median of the rounds")
    print(f"  CPU/ack    the server's CPU time (utime + stime of its threads, in ns from /proc/PID/task/*/schedstat) "
          f"from the\n             client's {span[0]} s to its {span[1]} s progress line, over the acks the client "
          "counted in between; the median of the rounds")
    print("  ratio      of the two acks/s medians beside it")
    print("  CPU ratio  the median of the per-round ratios of CPU/ack (each round runs both servers back to back,")
    print("             in alternating order); left server over right: below 1, the left spends less CPU per ack")
    print()
    print(f"tcpfork-worker against tcpfork-baseline (bare epoll), {count_rounds(args.rounds)}")
    print_table(results, [
        ("tcpfork acks/s", 14, rate("tcpfork_acks_per_sec")),
        ("baseline acks/s", 15, rate("baseline_acks_per_sec")),
        ("ratio", 5, ratio("acks_ratio", 2)),
        ("tcpfork CPU/ack", 15, cpu("tcpfork_cpu_per_ack_ns")),
        ("baseline CPU/ack", 16, cpu("baseline_cpu_per_ack_ns")),
        ("CPU ratio", 9, ratio("cpu_ratio", 3)),
        ("p50", 8, lambda r: fmt_ns(r["tcpfork_p50_ns"])),
        ("p99", 8, lambda r: fmt_ns(r["tcpfork_p99_ns"])),
        ("base p99", 8, lambda r: fmt_ns(r["baseline_p99_ns"])),
        ("peak RSS", 8, lambda r: f"{r['tcpfork_peak_rss_bytes'] / 2**20:.1f} M"),
    ])

    print()
    print(f"stats cost: the same worker counting into its stats slot (on) and with --no-stats (off), "
          f"{count_rounds(args.rounds)}")
    print_table(stats_results, [
        ("on acks/s", 10, rate("stats_on_acks_per_sec")),
        ("off acks/s", 10, rate("stats_off_acks_per_sec")),
        ("ratio", 5, ratio("acks_ratio", 3)),
        ("on CPU/ack", 10, cpu("stats_on_cpu_per_ack_ns")),
        ("off CPU/ack", 11, cpu("stats_off_cpu_per_ack_ns")),
        ("CPU ratio", 9, ratio("cpu_ratio", 3)),
    ])

    print()
    print("handler module cost: the same logic as a module (examples/handlers/ack.c) and the built-in ack "
          f"handler, {count_rounds(args.rounds)}")
    print_table(module_results, [
        ("ack.c acks/s", 12, rate("module_acks_per_sec")),
        ("built-in acks/s", 15, rate("builtin_acks_per_sec")),
        ("ratio", 5, ratio("acks_ratio", 3)),
        ("ack.c CPU/ack", 13, cpu("module_cpu_per_ack_ns")),
        ("built-in CPU/ack", 16, cpu("builtin_cpu_per_ack_ns")),
        ("CPU ratio", 9, ratio("cpu_ratio", 3)),
        ("ack.c p99", 9, lambda r: fmt_ns(r["module_p99_ns"])),
    ])

    print()
    print("journal module: every Submit a record on disk; fsync: always acks after the fdatasync that covers it "
          f"({count_rounds(args.rounds)}; CPU/ack counts no time waiting for the disk)")
    print_table(journal_results, [
        ("always acks/s", 13, rate("always_acks_per_sec")),
        ("CPU/ack", 8, cpu("always_cpu_per_ack_ns")),
        ("p99", 8, lambda r: fmt_ns(r["always_p99_ns"])),
        ("recs/fsync", 10, lambda r: f"{r['always_records_per_fsync']:.1f}"),
        ("us/fsync", 8, lambda r: f"{r['always_us_per_fsync']:.0f}"),
        ("never acks/s", 12, rate("never_acks_per_sec")),
        ("CPU/ack", 8, cpu("never_cpu_per_ack_ns")),
        ("p99", 8, lambda r: fmt_ns(r["never_p99_ns"])),
    ])

    print_alloc_table()

    print()
    print(f"window sweep: {SWEEP_CONNECTIONS} connections, {count_rounds(args.sweep_rounds)} of {args.sweep_duration:g} s "
          f"(CPU/ack from {sweep_span[0]} s to {sweep_span[1]} s), for build/bench/window_sweep.png")
    print_table(sweep_results, [
        ("tcpfork acks/s", 14, rate("tcpfork_acks_per_sec")),
        ("baseline acks/s", 15, rate("baseline_acks_per_sec")),
        ("ratio", 5, ratio("acks_ratio", 2)),
        ("tcpfork CPU/ack", 15, cpu("tcpfork_cpu_per_ack_ns")),
        ("baseline CPU/ack", 16, cpu("baseline_cpu_per_ack_ns")),
        ("CPU ratio", 9, ratio("cpu_ratio", 3)),
    ])

    checks = judge(results, stats_results, module_results, args.rounds) + [
        allocator_check(alloc_rows_judged(), args.rounds)]
    print()
    print("targets, each judged on the figure in brackets: CPU per ack wherever throughput is what the machine's "
          "other\nload decides (it moves between identical runs by far more than the margins judged here; CPU time "
          "per ack\nmuch less: being preempted costs the server time, not CPU); throughput stays printed above")
    for what, ok, evidence in checks:
        print(f"  {'met  ' if ok else 'SHORT'}  {what}\n           [{evidence}]")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"duration_s": args.duration, "warmup_s": args.warmup, "cpu_span_s": span,
                   "rounds": args.rounds, "payload_bytes": args.payload_bytes,
                   "scenarios": results, "stats_cost": stats_results, "module_cost": module_results,
                   "journal": journal_results, "allocator": alloc_results,
                   "allocator_modules": alloc_module_results, "window_sweep": sweep_results,
                   "targets_met": {what: ok for what, ok, _ in checks}}, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
