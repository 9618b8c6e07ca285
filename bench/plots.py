#!/usr/bin/python3
"""Plots of the last `make bench` run (build/bench.json) as PNG files:

  window_sweep.png   acks/s against the pipeline window (1 to 1024 requests in
                     flight per connection, 100 connections), tcpfork and the
                     baseline
  latency_cdf.png    per scenario, the share of requests acked within a given
                     latency (the median round's whole distribution), tcpfork
                     and the baseline

Needs matplotlib (Debian: python3-matplotlib, which `make deps` installs;
it lives in the system interpreter, hence /usr/bin/python3). Regenerate
from an existing bench.json without running the bench again:
    /usr/bin/python3 bench/plots.py --bench build/bench.json --out-dir build/bench"""

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench", default="build/bench.json")
    ap.add_argument("--out-dir", default="build/bench")
    args = ap.parse_args()
    with open(args.bench) as f:
        bench = json.load(f)
    os.makedirs(args.out_dir, exist_ok=True)
    written = [p for p in (window_sweep(bench, args.out_dir), latency_cdf(bench, args.out_dir)) if p]
    if not written:
        print(f"plots: {args.bench} has no window sweep or latency distributions (from an older bench?)",
              file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
