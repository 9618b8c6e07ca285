"""make bench's targets, and the figure each one is judged on.

Throughput on a shared machine is whatever the other load leaves: the same
server's acks/s, and the ratio of two servers' acks/s, move between identical
runs by far more than the margins these targets judge. The server's CPU time
per ack moves far less (being preempted costs it time, not CPU), so every
target that is about efficiency is judged on it:

- a ratio of throughputs r when both sides are CPU-bound is a ratio of CPU
  per ack of 1/r, judged as the median of the per-round ratios;
- an absolute rate on one core is acks per CPU-second (1 / CPU per ack): what
  the worker serves when it has the core to itself and is the bottleneck.

Latency has no such stand-in: the p99 target stays on the measured p99."""

# tcpfork against the bare epoll baseline: 0.9 of its throughput.
BASELINE_RATIO = 0.9
# Counting stats: 0.98 of the throughput with --no-stats.
STATS_RATIO = 0.98
# The ack handler as a module: 0.95 of the built-in's throughput.
MODULE_RATIO = 0.95
# tcmalloc sampling heap profiles: 0.98 of glibc malloc's throughput.
ALLOCATOR_RATIO = 0.98
PIPELINED_ACKS_PER_CPU_SECOND = 8_000_000
REQUEST_RESPONSE_ACKS_PER_CPU_SECOND = 150_000
REQUEST_RESPONSE_P99_NS = 2_000_000


def fmt_rate(v):
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.1f} k"


def fmt_ns(ns):
    return f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.0f} us"


def fmt_cpu(ns):
    """CPU time per ack: ns below a microsecond, else us with two decimals."""
    return f"{ns:.0f} ns" if ns < 1000 else f"{ns / 1e3:.2f} us"


def _ratio_check(rows, what, throughput_ratio, rounds):
    """Every row's CPU ratio (first over second) at most 1 / throughput_ratio."""
    limit = 1 / throughput_ratio
    cpu = ", ".join(f"{row['scenario']} {row['cpu_ratio']:.3f}" for row in rows)
    acks = ", ".join(f"{row['acks_ratio']:.3f}" for row in rows)
    evidence = (f"CPU ratio, median of {rounds} per-round ratios: {cpu} (at most {limit:.3f}); "
                f"acks/s ratio of the medians, not judged: {acks}")
    return what, all(row["cpu_ratio"] <= limit for row in rows), evidence


def _rate_check(row, what, acks_per_cpu_second, rounds):
    ns = row["tcpfork_cpu_per_ack_ns"]
    evidence = (f"tcpfork CPU/ack, median of {rounds} rounds: {fmt_cpu(ns)} = {fmt_rate(1e9 / ns)} acks per "
                f"CPU-second (at most {fmt_cpu(1e9 / acks_per_cpu_second)}); measured, not judged: "
                f"{fmt_rate(row['tcpfork_acks_per_sec'])} acks/s")
    return what, ns <= 1e9 / acks_per_cpu_second, evidence


def judge(results, stats_results, module_results, rounds):
    """[(target, met, the figures it was judged on)]."""
    by_name = {row["scenario"]: row for row in results}
    rr = by_name["request/response"]
    return [
        _ratio_check(results, f"tcpfork CPU/ack <= the baseline's / {BASELINE_RATIO} in every scenario "
                     f"({BASELINE_RATIO} of its throughput, both CPU-bound)", BASELINE_RATIO, rounds),
        _rate_check(by_name["pipelined"], f"pipelined >= {fmt_rate(PIPELINED_ACKS_PER_CPU_SECOND)} acks per "
                    "CPU-second (one core, the worker alone on it)", PIPELINED_ACKS_PER_CPU_SECOND, rounds),
        _rate_check(rr, f"request/response >= {fmt_rate(REQUEST_RESPONSE_ACKS_PER_CPU_SECOND)} acks per CPU-second "
                    "(one core, the worker alone on it)", REQUEST_RESPONSE_ACKS_PER_CPU_SECOND, rounds),
        (f"request/response p99 <= {fmt_ns(REQUEST_RESPONSE_P99_NS)}", rr["tcpfork_p99_ns"] <= REQUEST_RESPONSE_P99_NS,
         f"p99 of the median round: {fmt_ns(rr['tcpfork_p99_ns'])}; latency has no CPU-time stand-in, so this "
         "line also reads the machine's other load"),
        _ratio_check(stats_results, f"stats on: CPU/ack <= stats off's / {STATS_RATIO} in every scenario",
                     STATS_RATIO, rounds),
        _ratio_check(module_results, f"ack.c module: CPU/ack <= the built-in's / {MODULE_RATIO} in every scenario",
                     MODULE_RATIO, rounds),
    ]


def allocator_check(rows, rounds):
    """tcmalloc sampling at 512 KiB over glibc's malloc, every scenario and module row."""
    return _ratio_check(rows, f"tcmalloc sampling heap profiles: CPU/ack <= glibc malloc's / {ALLOCATOR_RATIO} in every "
                        f"scenario, with and without a module", ALLOCATOR_RATIO, rounds)
