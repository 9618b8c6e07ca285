#!/usr/bin/env python3
"""Overload shedding, on against off in the same run (make bench).

One worker, pinned to one CPU, with the test handler module spending
`--burn-us` (100) microseconds a request; the client on another CPU. First
its capacity: a closed-loop run (shedding off) whose acks/s is the most this
worker serves. Then open loop (tcpfork-client bench --rate) at 0.5, 1, 2 and
4 times that capacity, each with overload.shed on and off, a fresh worker
per run. Reported per run: goodput (result-0 acks/s), admitted p50/p99 (the
latency of the acks that were not busy, from each request's intended send),
the busy fraction and the busy p99. Each run is measured after a warm-up at
the same load (`--warmup`), so that the figures are the steady state's: an
overload begins only once a queue has stood for a whole overload.interval
(CoDel's design: shorter queues are bursts it absorbs), and the requests
served during that first interval wait on it. Shedding off sheds nothing:
beyond the capacity its queue grows for as long as the load lasts, so those
control runs have no warm-up and are shorter (their drain is as long again
as the excess they queued).

Targets (printed as met/SHORT lines): at 2x and 4x with shedding on,
goodput at least 90% of the capacity measured in the same run, admitted p99
and busy p99 under 10 x overload.target; at 0.5x with shedding on, under
0.1% shed. Writes the figures as JSON; bench/plots.py draws goodput and
admitted p99 against offered load from it (build/bench/overload_*.png)."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from targets import fmt_ns, fmt_rate
from build_tree import free_port, test_module

LOADS = (0.5, 1, 2, 4)
TARGET_MS = 5  # overload.target's default, which the runs keep
GOODPUT_SHARE = 0.9
LATENCY_TARGETS = 10  # x target
SHED_AT_HALF = 0.001
# The measured client starts this long before the warm-up's stops.
OVERLAP_S = 0.2


class Worker:
    """tcpfork-worker with the slow test module, pinned, stopped by pid."""

    def __init__(self, args, shed):
        self.addr = f"127.0.0.1:{free_port()}"
        self.client = os.path.join(args.bin_dir, "tcpfork-client")
        cmd = ["taskset", "-c", str(args.server_cpu), os.path.join(args.bin_dir, "tcpfork-worker"),
               "--listen", self.addr, "--log-level", "warn", "--handler-module", test_module(args.bin_dir),
               "--handler-config", json.dumps({"burn_us": args.burn_us}), "--overload-shed", shed,
               "--overload-target", f"{TARGET_MS}ms"]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            if subprocess.run([self.client, "send", "--addr", self.addr, "--timeout", "1"],
                              capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        self.log.seek(0)
        raise RuntimeError(f"worker on {self.addr} never became ready:\n{self.log.read().decode()}")

    def cpu_seconds(self):
        """utime + stime so far (taskset execs the worker: one process)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def client_cmd(args, worker, extra, duration, drain, json_path):
    return ["taskset", "-c", str(args.client_cpu), worker.client, "bench", "--addr", worker.addr,
            "-c", str(args.connections), "-d", str(duration), "--drain", str(drain), "-q",
            "--json", json_path] + extra


def bench(args, worker, extra, duration, drain, warmup=0.0):
    """The client's JSON report. With `warmup`, another client first sends
    the same load for that long, and the one measured starts just before it
    stops (OVERLAP_S), so what it sees is the steady state: the onset (one
    overload.interval of queue, by design) is the warm-up's."""
    warm = None
    if warmup > 0:
        warm = subprocess.Popen(client_cmd(args, worker, extra, warmup + OVERLAP_S, drain, os.devnull),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(warmup)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = client_cmd(args, worker, extra, duration, drain, out.name)
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + drain + 60)
        if warm:
            warm.wait(timeout=warmup + drain + 60)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({run.returncode}):\n{run.stdout}{run.stderr}")
        report = json.load(open(out.name))
    for key in ("busy", "goodput_per_sec", "latency_admitted_ns", "latency_busy_ns"):
        if key not in report:
            raise RuntimeError(f"tcpfork-client's JSON has no '{key}': it predates busy acks")
    if report["errors_total"] or report["unacked_at_end"]:
        raise RuntimeError(f"ack errors {report['errors']}, unacked {report['unacked_at_end']}")
    return report


def measure(args):
    print("[1] capacity: closed loop, shedding off", file=sys.stderr, flush=True)
    worker = Worker(args, "off")
    try:
        closed = bench(args, worker, ["-w", "64"], args.capacity_duration, 30)
    finally:
        worker.stop()
    capacity = closed["acks_per_sec"]
    runs = []
    step = 1
    for factor in LOADS:
        for shed in ("on", "off"):
            step += 1
            rate = factor * capacity
            # Shedding off beyond the capacity queues the excess: a shorter
            # run, and a drain long enough for all of it.
            queues = shed == "off" and factor > 1
            duration = args.control_duration if queues else args.duration
            drain = 30 + duration * factor
            print(f"[{step}/{1 + 2 * len(LOADS)}] {factor:g}x ({fmt_rate(rate)}/s), shedding {shed}",
                  file=sys.stderr, flush=True)
            worker = Worker(args, shed)
            try:
                cpu_before = worker.cpu_seconds()
                wall_before = time.monotonic()
                rep = bench(args, worker, ["-w", "1024", "--rate", f"{rate:.0f}"], duration, drain,
                            0 if queues else args.warmup)
                # The worker's share of its CPU over the run (warm-up and drain
                # included): on a shared machine, what bounded its capacity.
                cpu_share = (worker.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
            finally:
                worker.stop()
            answered = rep["acked"]
            runs.append({
                "load": factor, "shed": shed, "offered_per_sec": rate, "duration_s": duration,
                "sent": rep["sent"], "acked": answered, "busy": rep["busy"],
                "busy_fraction": rep["busy"] / answered if answered else 0.0,
                "goodput_per_sec": rep["goodput_per_sec"],
                "admitted_p50_ns": rep["latency_admitted_ns"]["p50"],
                "admitted_p99_ns": rep["latency_admitted_ns"]["p99"],
                "busy_p99_ns": rep["latency_busy_ns"]["p99"] if rep["busy"] else 0,
                "worker_cpu_share": cpu_share,
            })
    return capacity, runs


def judge(capacity, runs):
    """[(target, met, the figures it was judged on)]."""
    by = {(r["load"], r["shed"]): r for r in runs}
    bound = LATENCY_TARGETS * TARGET_MS * 1_000_000
    checks = []
    for factor in (2, 4):
        r = by[(factor, "on")]
        checks.append((f"{factor}x, shedding on: goodput >= {GOODPUT_SHARE:.0%} of the capacity",
                       r["goodput_per_sec"] >= GOODPUT_SHARE * capacity,
                       f"{fmt_rate(r['goodput_per_sec'])}/s of {fmt_rate(capacity)}/s = "
                       f"{r['goodput_per_sec'] / capacity:.1%}"))
        checks.append((f"{factor}x, shedding on: admitted p99 < {LATENCY_TARGETS} x target ({fmt_ns(bound)})",
                       r["admitted_p99_ns"] < bound, f"admitted p99 {fmt_ns(r['admitted_p99_ns'])}"))
        checks.append((f"{factor}x, shedding on: busy p99 < {LATENCY_TARGETS} x target ({fmt_ns(bound)})",
                       r["busy"] > 0 and r["busy_p99_ns"] < bound,
                       f"busy p99 {fmt_ns(r['busy_p99_ns'])} over {r['busy']} busy acks"))
    half = by[(0.5, "on")]
    shed_share = half["busy"] / half["sent"] if half["sent"] else 0.0
    checks.append((f"0.5x, shedding on: under {SHED_AT_HALF:.1%} shed", shed_share < SHED_AT_HALF,
                   f"{half['busy']} of {half['sent']} = {shed_share:.3%}"))
    return checks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("--out", default="build/bench/overload.json")
    ap.add_argument("--burn-us", type=int, default=100, help="the module's time per request")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--capacity-duration", type=float, default=3)
    ap.add_argument("--duration", type=float, default=4, help="seconds per open-loop run")
    ap.add_argument("--control-duration", type=float, default=3,
                    help="seconds per run with shedding off beyond the capacity")
    ap.add_argument("--warmup", type=float, default=1,
                    help="seconds of the same load before each measured run (not with shedding off past capacity, "
                         "whose queue would only grow)")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    args = ap.parse_args()

    capacity, runs = measure(args)
    print()
    print(f"overload: one worker on CPU {args.server_cpu}, a module spending {args.burn_us} us a request, "
          f"capacity {fmt_rate(capacity)}/s (closed loop); open loop from {args.connections} connections, "
          f"overload.target {TARGET_MS} ms")
    header = (f"{'load':>5} {'shed':>4} {'offered/s':>10} {'goodput/s':>10} {'adm p50':>9} {'adm p99':>9} "
              f"{'busy':>7} {'busy p99':>9} {'CPU':>5}")
    print(header)
    print("-" * len(header))
    for r in runs:
        print(f"{r['load']:>4g}x {r['shed']:>4} {fmt_rate(r['offered_per_sec']):>10} "
              f"{fmt_rate(r['goodput_per_sec']):>10} {fmt_ns(r['admitted_p50_ns']):>9} "
              f"{fmt_ns(r['admitted_p99_ns']):>9} {r['busy_fraction']:>7.1%} "
              f"{fmt_ns(r['busy_p99_ns']) if r['busy'] else '-':>9} {r['worker_cpu_share']:>5.0%}")
    checks = judge(capacity, runs)
    print("  CPU: the worker's CPU time over the run's wall time; the module's time is wall time, so a worker kept")
    print("  from its CPU by other load (below 100% while it has work) serves less than its capacity")
    print()
    print("overload targets (latency from each request's intended send, as the client's open loop times it; "
          f"after a {args.warmup:g} s warm-up)")
    for what, ok, evidence in checks:
        print(f"  {'met  ' if ok else 'SHORT'}  {what}\n           [{evidence}]")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"capacity_per_sec": capacity, "burn_us": args.burn_us, "target_ms": TARGET_MS,
                   "connections": args.connections, "runs": runs,
                   "targets_met": {what: ok for what, ok, _ in checks}}, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        print(f"overload bench: {e}", file=sys.stderr)
        sys.exit(1)
