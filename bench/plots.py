#!/usr/bin/python3
"""Plots of the last `make bench` run (build/bench.json) as PNG files:

  window_sweep.png   acks/s against the pipeline window (1 to 1024 requests in
                     flight per connection, 100 connections), tcpfork and the
                     baseline
  latency_cdf.png    per scenario, the share of requests acked within a given
                     latency (the median round's whole distribution), tcpfork
                     and the baseline

and of the overload scenario (build/bench/overload.json, bench/overload_bench.py):

  overload_goodput.png      goodput (result-0 acks/s) against offered load,
                            shedding on and off, with the measured capacity
  overload_latency.png      admitted p99 against offered load, shedding on
                            and off, with the 10 x overload.target line

Needs matplotlib (Debian: python3-matplotlib, which `make deps` installs;
it lives in the system interpreter, hence /usr/bin/python3). Regenerate
from an existing bench.json without running the bench again:
    /usr/bin/python3 bench/plots.py --bench build/bench.json --out-dir build/bench
    /usr/bin/python3 bench/plots.py --overload build/bench/overload.json --out-dir build/bench"""

import argparse
import json
import os
import sys

try:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
except ImportError:
    print("plots: matplotlib is missing (apt-get install python3-matplotlib; make deps does)", file=sys.stderr)
    sys.exit(1)

COLORS = {"tcpfork": "#1f77b4", "baseline": "#7f7f7f"}


def rate_label(value, _):
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:g} {unit}"
    return f"{value:g}"


def window_sweep(bench, out):
    rows = bench.get("window_sweep") or []
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    windows = [r["window"] for r in rows]
    for kind in ("tcpfork", "baseline"):
        ax.plot(windows, [r[f"{kind}_acks_per_sec"] for r in rows], marker="o", color=COLORS[kind],
                label="tcpfork-worker" if kind == "tcpfork" else "baseline (bare epoll)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(windows)
    ax.set_xticklabels([str(w) for w in windows])
    ax.yaxis.set_major_formatter(FuncFormatter(rate_label))
    ax.set_xlabel("window: requests in flight per connection (100 connections)")
    ax.set_ylabel("acks/s")
    ax.set_title("Throughput against pipeline depth (one worker, 16-byte payloads)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out, "window_sweep.png")
    fig.savefig(path)
    plt.close(fig)
    return path


def cdf(buckets):
    """[(latency ms, share of requests at or under it)] from [[upper bound ns, count], ...]."""
    total = sum(count for _, count in buckets)
    points, seen = [], 0
    for upper, count in buckets:
        seen += count
        points.append((upper / 1e6, seen / total))
    return points


def latency_cdf(bench, out):
    scenarios = [s for s in bench.get("scenarios", []) if s.get("tcpfork_latency_buckets")]
    if not scenarios:
        return None
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), dpi=110, squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        for kind in ("tcpfork", "baseline"):
            points = cdf(scenario[f"{kind}_latency_buckets"])
            if points:
                ax.step([p[0] for p in points], [p[1] for p in points], where="post", color=COLORS[kind],
                        label="tcpfork-worker" if kind == "tcpfork" else "baseline")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("latency, send to ack (ms)")
        ax.set_ylabel("share of requests acked within")
        ax.set_title(f"{scenario['scenario']} ({scenario['connections']} x {scenario['window']})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    path = os.path.join(out, "latency_cdf.png")
    fig.savefig(path)
    plt.close(fig)
    return path


SHED_COLORS = {"on": "#2ca02c", "off": "#d62728"}


def overload_plot(overload, out, name, key, ylabel, title, reference, log_y):
    """`key` of each run against its offered load, one line per shedding mode."""
    runs = overload.get("runs") or []
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    capacity = overload["capacity_per_sec"]
    for shed in ("on", "off"):
        rows = sorted((r for r in runs if r["shed"] == shed), key=lambda r: r["offered_per_sec"])
        ax.plot([r["offered_per_sec"] for r in rows], [key(r) for r in rows], marker="o", color=SHED_COLORS[shed],
                label=f"shedding {shed}")
    value, label = reference
    ax.axhline(value, color="#7f7f7f", linestyle="--", label=label)
    ax.set_xscale("log", base=2)
    if log_y:
        ax.set_yscale("log")
    loads = sorted({r["offered_per_sec"] for r in runs})
    ax.set_xticks(loads)
    ax.set_xticklabels([f"{x / capacity:g}x\n{x / 1e3:.1f} k/s" for x in loads])
    if not log_y:
        ax.yaxis.set_major_formatter(FuncFormatter(rate_label))
    ax.set_xlabel("offered load (open loop), times the capacity measured in the same run")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path)
    plt.close(fig)
    return path


def overload_plots(overload, out):
    capacity = overload["capacity_per_sec"]
    bound_ms = 10 * overload["target_ms"]
    module = f"one worker, {overload['burn_us']} us a request"
    return [
        overload_plot(overload, out, "overload_goodput.png", lambda r: r["goodput_per_sec"], "goodput (result-0 acks/s)",
                      f"Goodput against offered load ({module})", (capacity, "capacity (closed loop)"), False),
        overload_plot(overload, out, "overload_latency.png", lambda r: r["admitted_p99_ns"] / 1e6,
                      "admitted p99 (ms, from intended send)", f"Served requests' p99 against offered load ({module})",
                      (bound_ms, f"10 x overload.target ({bound_ms:g} ms)"), True),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", help="make bench's bench.json (default build/bench.json without --overload)")
    ap.add_argument("--overload", help="the overload scenario's JSON (bench/overload_bench.py)")
    ap.add_argument("--out-dir", default="build/bench")
    args = ap.parse_args()
    if not args.bench and not args.overload:
        args.bench = "build/bench.json"
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    if args.bench:
        with open(args.bench) as f:
            bench = json.load(f)
        written += [p for p in (window_sweep(bench, args.out_dir), latency_cdf(bench, args.out_dir)) if p]
    if args.overload:
        with open(args.overload) as f:
            written += [p for p in overload_plots(json.load(f), args.out_dir) if p]
    if not written:
        print(f"plots: {args.bench or args.overload} has nothing to plot (from an older bench?)", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
