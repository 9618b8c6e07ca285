"""A server's CPU time per ack under a `tcpfork-client bench` run.

The client prints a progress line every second (acks counted in that second);
the serving processes' CPU time is read as each line arrives, so the two are
taken at the same instants to within a pipe wake-up. The span measured runs
from the tick after the warm-up to the last whole-second tick at least
`END_MARGIN_S` before the client stops sending: connects, the first batches
and the drain at the end are left out.

CPU time is utime + stime. /proc/PID/stat gives it in clock ticks (10 ms at
CLK_TCK 100), too coarse when a starved server spends 40 ms of CPU in a
span; the kernel derives those two from each thread's run time, which
/proc/PID/task/TID/schedstat gives in nanoseconds (first field), so that is
what is summed, and the clock-tick figure is kept beside it as a check.

On a shared machine throughput swings with whatever else runs, but the time
the server spends on the CPU per ack it sends moves far less: being
preempted costs it wall time, not CPU time."""

import math
import os
import re
import subprocess
import tempfile

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")

# The last tick used comes at least this long before sending stops: the
# client's ticks and its sending deadline count from instants microseconds
# apart, and its progress thread may wake late on a loaded machine.
END_MARGIN_S = 0.1

# "[   2.0s] acks/s      123,456  p99 ..." (client/report.cc printProgressLine)
_PROGRESS = re.compile(rb"^\[\s*([0-9.]+)s\] acks/s\s+([0-9,]+)\s")


def cpu_seconds(pids):
    """utime + stime of `pids` (every thread of each), summed, in seconds, at
    nanosecond resolution. A thread that exits takes its time with it; the
    servers measured here keep theirs for the whole run."""
    total = 0
    for pid in pids:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
    return total / 1e9


def stat_cpu_seconds(pids):
    """utime + stime of `pids` from /proc/PID/stat (each its whole thread
    group), summed, in seconds; one clock tick of resolution."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # After the command name in parentheses: field 3 (state) first;
            # utime and stime are fields 14 and 15.
            fields = f.read().rsplit(b")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS_PER_SECOND


def measured_span(duration_s, warmup_s):
    """(first tick, last tick) in whole seconds of a run of `duration_s`."""
    if warmup_s < 1:
        raise RuntimeError("the warm-up must be at least 1 s: the client's first progress line comes at 1 s")
    last = math.floor(duration_s - END_MARGIN_S + 1e-9)  # 3.1 - 0.1 may come out a hair under 3
    if last <= warmup_s:
        raise RuntimeError(f"a {duration_s:g} s run leaves nothing to measure after a {warmup_s} s warm-up "
                           f"(needs at least {warmup_s + 1 + END_MARGIN_S:g} s)")
    return warmup_s, last


def run(client_cmd, serving_pids, duration_s, warmup_s):
    """Runs `client_cmd` (a `tcpfork-client bench` command line with its
    progress lines on and its sending time `duration_s`), reading the CPU time
    of `serving_pids()` at each progress line. Returns, over the measured span,
    {"cpu_s", "stat_cpu_s" (the same from /proc/PID/stat), "acks", "span_s",
    "cpu_per_ack_ns"}."""
    first, last = measured_span(duration_s, warmup_s)
    # whole second -> (server CPU seconds, the same from /proc/PID/stat, acks
    # the client counted in the second before it)
    ticks = {}
    other = []
    with tempfile.TemporaryFile() as report:
        proc = subprocess.Popen(client_cmd, stdout=report, stderr=subprocess.PIPE)
        try:
            for line in proc.stderr:
                found = _PROGRESS.match(line)
                if not found:
                    other.append(line.decode(errors="replace"))
                    continue
                second = round(float(found.group(1)))
                if first <= second <= last:
                    pids = serving_pids()
                    try:
                        ticks[second] = (cpu_seconds(pids), stat_cpu_seconds(pids),
                                         int(found.group(2).replace(b",", b"")))
                    except OSError as e:
                        raise RuntimeError(f"reading the CPU time of pids {pids} at {second} s: {e}") from e
        finally:
            proc.stderr.close()
            code = proc.wait()
        report.seek(0)
        text = report.read().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"client failed ({code}):\n{text}{''.join(other)}")
    missing = [s for s in range(first, last + 1) if s not in ticks]
    if missing:
        raise RuntimeError(f"the client printed no progress line at {missing} s:\n{text}{''.join(other)}")
    cpu = ticks[last][0] - ticks[first][0]
    acks = sum(ticks[s][2] for s in range(first + 1, last + 1))
    if acks == 0:
        raise RuntimeError(f"no acks between {first} s and {last} s:\n{text}")
    return {"cpu_s": cpu, "stat_cpu_s": ticks[last][1] - ticks[first][1], "acks": acks,
                  "span_s": last - first, "cpu_per_ack_ns": cpu / acks * 1e9}
