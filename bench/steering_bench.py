#!/usr/bin/env python3
"""Connection steering, on against off in the same run (make bench).

1. One of two workers stopped (SIGSTOP): new connections arrive open loop
   (a fixed rate, whatever the server does, so a stalled connection does not
   slow the arrivals behind it), each sends one Submit; reported: connect to
   first ack p50/p99/max and how many waited longer than 100 ms. The worker
   stays stopped for the whole arrival period and is resumed after it; with
   steering off, what was hashed to it waits until then.
2. A connect storm (tcpfork-client connects) through TTIN/TTOU pairs and
   reloads (HUP) that change the worker count: failed connects.

Loading the steering program needs root (CAP_BPF, CAP_NET_ADMIN); without it
the scenario says so and is skipped."""

import argparse
import errno
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

from soak_load import ack_frame, submit_frame
from soak_server import SoakMaster

SUBMIT = submit_frame(1)
ACK = ack_frame(1)


def percentile(values, q):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def open_loop(port, rate, seconds, on_arrivals_done, timeout=15.0):
    """New connections at `rate` per second for `seconds`; each sends one
    Submit and waits for its ack. Returns (latencies in ms of the acked,
    failed count). `on_arrivals_done` runs when the last one has been opened."""
    sel = selectors.DefaultSelector()
    latencies, failed = [], 0
    pending = {}  # socket -> [start, bytes received, request sent]
    start = time.monotonic()
    total = int(rate * seconds)
    opened = 0
    arrivals_done = False
    while True:
        now = time.monotonic()
        while opened < total and start + opened / rate <= now:
            s = socket.socket()
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = s.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                failed += 1
                s.close()
            else:
                pending[s] = [now, b"", False]
                sel.register(s, selectors.EVENT_WRITE)
            opened += 1
        if opened == total and not arrivals_done:
            arrivals_done = True
            on_arrivals_done()
        if arrivals_done and not pending:
            break
        if arrivals_done and now > start + seconds + timeout:
            failed += len(pending)
            break
        wait = max(0.0, min(start + opened / rate - now, 0.01)) if opened < total else 0.05
        for key, events in sel.select(timeout=wait):
            s = key.fileobj
            state = pending[s]
            try:
                if not state[2]:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                        raise OSError("connect failed")
                    s.sendall(SUBMIT)
                    state[2] = True
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                data = s.recv(64)
                if not data:
                    raise OSError("closed before the ack")
                state[1] += data
                if len(state[1]) < len(ACK):
                    continue
                if state[1][:len(ACK)] != ACK:
                    raise OSError("wrong ack")
                latencies.append((time.monotonic() - state[0]) * 1000)
            except OSError:
                failed += 1
            sel.unregister(s)
            s.close()
            del pending[s]
    sel.close()
    return latencies, failed


def start_master(bin_dir, work_dir, steering, workers=2):
    master = SoakMaster(bin_dir, work_dir, workers=workers, max_workers=8, worker_timeout_s=30,
                        drain_timeout_s=10, profile_duration_s=1,
                        extra_yaml="" if steering else "steering: off\n")
    if not master.wait_healthy(15):
        raise RuntimeError("the master did not become healthy:\n" + master.read_log())
    return master


def metric(master, series):
    code, body = master.get("/metrics")
    for line in body.splitlines() if code == 200 else []:
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def stopped_worker(bin_dir, steering, rate, seconds):
    with tempfile.TemporaryDirectory(prefix="tcpfork-steer-") as work_dir:
        master = start_master(bin_dir, work_dir, steering)
        try:
            active = metric(master, "tcp_server_steering_active")
            if steering and active != 1:
                raise RuntimeError("steering did not come on:\n" + master.read_log())
            victim = master.status()["workers"][0]["pid"]
            os.kill(victim, signal.SIGSTOP)
            # Past stale_after (250 ms) and a master tick, in both runs alike.
            time.sleep(0.5)
            latencies, failed = open_loop(master.port, rate, seconds, lambda: os.kill(victim, signal.SIGCONT))
            os.kill(victim, signal.SIGCONT)
            master.quit(15)
        finally:
            master.kill()
    return {"connections": len(latencies) + failed, "failed": failed,
            "p50_ms": percentile(latencies, 0.50), "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies) if latencies else 0.0,
            "over_100ms": sum(1 for ms in latencies if ms > 100) + failed}


def serving(master):
    status = master.status() or {}
    return sum(1 for w in status.get("workers", []) if w.get("state") == "serving")


def wait_for(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def storm(bin_dir, steering, cycles, reloads):
    with tempfile.TemporaryDirectory(prefix="tcpfork-storm-") as work_dir:
        master = start_master(bin_dir, work_dir, steering)
        report_path = os.path.join(work_dir, "connects.json")
        client = subprocess.Popen([os.path.join(bin_dir, "tcpfork-client"), "connects", "--addr",
                                   f"127.0.0.1:{master.port}", "-c", "8", "-d", "600", "-q", "--timeout", "20",
                                   "--json", report_path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            for _ in range(cycles):
                master.signal(signal.SIGTTIN)
                if not wait_for(lambda: serving(master) == 3, 15):
                    raise RuntimeError("TTIN: no third worker serving:\n" + master.read_log())
                time.sleep(0.15)
                master.signal(signal.SIGTTOU)
                if not wait_for(lambda: serving(master) == 2, 15):
                    raise RuntimeError("TTOU: not back to 2 workers:\n" + master.read_log())
                time.sleep(0.15)
            with open(master.config_path) as f:
                base = f.read()
            for i in range(reloads):
                workers = (3, 1, 2)[i % 3]
                with open(master.config_path, "w") as f:
                    f.write(base.replace("workers: 2\n", f"workers: {workers}\n"))
                generation = master.status()["generation"]
                master.signal(signal.SIGHUP)
                if not wait_for(lambda: (master.status() or {}).get("generation", 0) > generation
                                and serving(master) == workers, 15):
                    raise RuntimeError("HUP: the new generation did not serve:\n" + master.read_log())
                time.sleep(0.3)
            client.send_signal(signal.SIGINT)
            client.wait(timeout=60)
            with open(report_path) as f:
                report = json.load(f)
            master.quit(15)
        finally:
            if client.poll() is None:
                client.kill()
            master.kill()
    return {"connections": report["acked"] + report["failed"], "failed": report["failed"],
            "reset": report["reset"], "connect_failed": report["connect_failed"],
            "unanswered": report["unanswered"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument("--rate", type=float, default=500, help="new connections per second (scenario 1)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of arrivals (scenario 1)")
    parser.add_argument("--cycles", type=int, default=15, help="TTIN/TTOU pairs (scenario 2)")
    parser.add_argument("--reloads", type=int, default=6, help="reloads (scenario 2)")
    args = parser.parse_args()

    print("\nconnection steering: on against off")
    if os.geteuid() != 0:
        print("  skipped: loading the steering program needs root (CAP_BPF, CAP_NET_ADMIN)")
        return 0
    results = {"stopped_worker": {}, "storm": {}}
    for steering in (True, False):
        label = "on" if steering else "off"
        print(f"  [{label}] one of two workers stopped, {args.rate:.0f} new connections/s for {args.seconds} s",
              flush=True)
        results["stopped_worker"][label] = stopped_worker(args.bin_dir, steering, args.rate, args.seconds)
        print(f"  [{label}] connect storm through {args.cycles} TTIN/TTOU pairs and {args.reloads} reloads",
              flush=True)
        results["storm"][label] = storm(args.bin_dir, steering, args.cycles, args.reloads)

    print(f"\none of two workers SIGSTOPped; {args.rate:.0f} new connections/s, open loop, for {args.seconds} s; "
          "connect to first ack")
    print(f"{'steering':<10}{'connections':>12}{'p50':>10}{'p99':>11}{'max':>11}{'over 100 ms':>13}")
    print("-" * 67)
    for label in ("on", "off"):
        r = results["stopped_worker"][label]
        print(f"{label:<10}{r['connections']:>12}{r['p50_ms']:>8.2f}ms{r['p99_ms']:>9.2f}ms{r['max_ms']:>9.2f}ms"
              f"{r['over_100ms']:>13}")
    print(f"\nconnect storm (tcpfork-client connects -c 8) through {args.cycles} TTIN/TTOU pairs and "
          f"{args.reloads} reloads (3, 1, 2 workers)")
    print(f"{'steering':<10}{'connections':>12}{'failed':>8}  (connect, reset, unanswered)")
    print("-" * 60)
    for label in ("on", "off"):
        r = results["storm"][label]
        print(f"{label:<10}{r['connections']:>12}{r['failed']:>8}  ({r['connect_failed']}, {r['reset']}, "
              f"{r['unanswered']})")
    on = results["stopped_worker"]["on"]
    print(f"\n  {'met  ' if on['over_100ms'] == 0 else 'SHORT'}  steering on: no new connection waits over "
          "100 ms for the stopped worker")
    print(f"  {'met  ' if results['storm']['on']['failed'] == 0 else 'SHORT'}  steering on: no connect fails "
          "through scaling and reloads")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
