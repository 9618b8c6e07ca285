#!/usr/bin/env python3
"""make soak: a real tcpfork master under load and chaos for --seconds.

Starts a master (own temp dir, name, pidfile, loopback ports; 3 workers,
worker_timeout 2s) and two `tcpfork-client bench` loads, pipelined (20 x 64)
and request/response (10 x 1), for the whole run. Meanwhile every 0.5-1.5 s a
seeded RNG picks one action: kill -9 a worker, HUP (reload), TTIN or TTOU,
SIGSTOP a worker (hang detection must kill it within worker_timeout, hang_dump_grace and a
margin and the index must serve again), or TRAP (profiling on/off). /metrics is
scraped every second: no counter or histogram series may go down. At the end
the load stops, the master gets QUIT, and nothing of it may be left.

Progress goes to stderr once a second; the report to stdout (and --json FILE).
Exit status 1 on any hard failure, listed at the end of the report.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import soak_metrics  # noqa: E402
from soak_load import Load, LingeringClients  # noqa: E402
from soak_report import print_report  # noqa: E402
from soak_server import SoakMaster, fd_count, fd_targets, proc_start_time, rss_bytes  # noqa: E402

WORKERS = 3
MAX_WORKERS = 4
WORKER_TIMEOUT_S = 2
DRAIN_TIMEOUT_S = 5
PROFILE_DURATION_S = 3
# After worker_timeout the master asks a silent worker for its stacks and
# kills it this much later (hang_dump_grace, the default).
HANG_DUMP_GRACE_S = 1
# Beyond worker_timeout and the grace: the master's 100 ms tick, the worker's
# 100 ms beat and a loaded 2-core machine's scheduling delays.
HANG_MARGIN_S = 1.5
# A replaced index must serve again this soon after its worker died, plus any
# crash-loop backoff the master announced for it.
REPLACE_MARGIN_S = 3.0

# name, weight
ACTIONS = [("kill9", 3), ("hup", 2), ("scale", 2), ("stop", 1.5), ("trap", 1)]

LOADS = [
    # name, connections, window
    ("pipelined", 20, 64),
    ("request/response", 10, 1),
]
# Connections that send a request every LINGER_PERIOD_S and notice a close only then.
LINGERING = 8
LINGER_PERIOD_S = 2.0


class StopCheck:
    """A SIGSTOPped worker: hang detection must kill it, and its index must serve again."""

    def __init__(self, pid, start, index, at):
        self.pid, self.start, self.index, self.stopped_at = pid, start, index, at
        self.killed_at = None
        self.replaced_at = None
        self.replace_deadline = None
        self.failed = None


class Soak:
    def __init__(self, args, master, rng):
        self.args = args
        self.master = master
        self.rng = rng
        self.t0 = time.monotonic()
        self.actions = {"kill9": 0, "hup": 0, "ttin": 0, "ttou": 0, "stop": 0, "trap": 0}
        self.skipped = {}           # action -> times it had no target or was pointless
        self.pending_scale = None   # (configured count when sent, deadline)
        self.stops = []
        self.seen_pids = {}         # every worker pid observed -> its start time
        self.monotonic = soak_metrics.MonotonicCheck()
        self.scrape_failures = []
        self.master_died_at = None
        self.last_samples = []
        self.acks_history = []      # (elapsed, rsp_send_total)
        self.fd_max = 0
        self.configured = WORKERS

    def elapsed(self):
        return time.monotonic() - self.t0

    # --- observation ---------------------------------------------------------------------------

    def scrape(self):
        code, body = self.master.get("/metrics")
        if code != 200:
            self.scrape_failures.append(f"{self.elapsed():.1f}s: /metrics: {code} {body[:200]}")
            return None
        samples = soak_metrics.parse(body)
        self.monotonic.feed(self.elapsed(), samples)
        self.last_samples = samples
        acks = soak_metrics.values_by_suffix(samples, "_rsp_send_total").get((), 0.0)
        self.acks_history.append((self.elapsed(), acks))
        configured = soak_metrics.values_by_suffix(samples, "_workers_configured").get(())
        if configured is not None:
            self.configured = int(configured)
        self.fd_max = max(self.fd_max, fd_count(self.master.pid) or 0)
        return samples

    def workers(self):
        """The /status workers list (also remembering every pid seen), or [] when it did not answer."""
        status = self.master.status()
        if status is None:
            if self.master.alive():
                self.scrape_failures.append(f"{self.elapsed():.1f}s: /status did not answer 200")
            return [], None
        for w in status["workers"]:
            if w["pid"] and w["pid"] not in self.seen_pids:
                start = proc_start_time(w["pid"])
                if start is not None and self.master.is_worker(w["pid"]):
                    self.seen_pids[w["pid"]] = start
        return status["workers"], status["generation"]

    def stopped_pids(self):
        return {s.pid for s in self.stops if s.killed_at is None}

    # --- chaos ---------------------------------------------------------------------------------

    def act(self):
        kinds, weights = zip(*ACTIONS)
        kind = self.rng.choices(kinds, weights)[0]
        workers, generation = self.workers()
        # Sorted so that a seed replays the same choice from the same state.
        live = sorted((w for w in workers if w["pid"] and w["pid"] not in self.stopped_pids()
                       and self.master.is_worker(w["pid"])), key=lambda w: (w["index"], w["generation"], w["pid"]))
        if kind == "kill9":
            if not live:
                return self._skip(kind)
            victim = self.rng.choice(live)
            os.kill(victim["pid"], signal.SIGKILL)
        elif kind == "hup":
            self.master.signal(signal.SIGHUP)
        elif kind == "scale":
            if self.pending_scale:  # same-kind signals coalesce: wait for the last one's effect
                return self._skip(kind)
            up = self.configured <= 1 or (self.configured < MAX_WORKERS and self.rng.random() < 0.5)
            kind = "ttin" if up else "ttou"
            self.master.signal(signal.SIGTTIN if up else signal.SIGTTOU)
            self.pending_scale = (self.configured, time.monotonic() + 2.0)
        elif kind == "stop":
            serving = [w for w in live if w["state"] == "serving" and w["generation"] == generation]
            if self.stopped_pids() or not serving:  # one hung worker at a time keeps the check exact
                return self._skip(kind)
            victim = self.rng.choice(serving)
            start = proc_start_time(victim["pid"])
            if start is None:
                return self._skip(kind)
            os.kill(victim["pid"], signal.SIGSTOP)
            self.stops.append(StopCheck(victim["pid"], start, victim["index"], time.monotonic()))
        elif kind == "trap":
            self.master.signal(signal.SIGTRAP)
        self.actions[kind] += 1

    def _skip(self, kind):
        self.skipped[kind] = self.skipped.get(kind, 0) + 1

    def check_pending(self, workers=None):
        now = time.monotonic()
        if self.pending_scale:
            before, deadline = self.pending_scale
            # Changed, or refused (the master does not scale during a reload; its log says so).
            if self.configured != before or now >= deadline:
                self.pending_scale = None
        for s in self.stops:
            if s.killed_at is None:
                if proc_start_time(s.pid) != s.start:
                    s.killed_at = now  # also after a failure: it is no longer a stopped worker
                    s.replace_deadline = now + REPLACE_MARGIN_S + self._announced_backoff(s.pid)
                elif not s.failed and now - s.stopped_at > WORKER_TIMEOUT_S + HANG_DUMP_GRACE_S + HANG_MARGIN_S:
                    s.failed = (f"stopped worker {s.pid} (index {s.index}) still alive "
                                f"{now - s.stopped_at:.1f}s after SIGSTOP (worker_timeout {WORKER_TIMEOUT_S}s, "
                                f"hang_dump_grace {HANG_DUMP_GRACE_S}s)")
                continue
            if s.failed or s.replaced_at:
                continue
            if workers is None:
                workers, _ = self.workers()
            if s.index >= self.configured or any(
                    w["index"] == s.index and w["state"] == "serving" and w["pid"] != s.pid for w in workers):
                s.replaced_at = now
            elif now >= s.replace_deadline:
                # The master may have logged a crash-loop delay for it only after we saw it die.
                s.replace_deadline = s.killed_at + REPLACE_MARGIN_S + self._announced_backoff(s.pid)
                if now >= s.replace_deadline:
                    s.failed = f"index {s.index} not serving again {now - s.killed_at:.1f}s after its hung worker died"

    def _announced_backoff(self, pid):
        """The crash-loop delay the master logged for this pid's index ("restarting in 0.4s"), or 0."""
        m = re.search(rf"\(pid {pid}\) died again .*? restarting in ([0-9.]+)s", self.master.read_log())
        return float(m.group(1)) if m else 0.0

    # --- progress ------------------------------------------------------------------------------

    def progress(self):
        rate = 0.0
        if len(self.acks_history) >= 2:
            (t1, a1), (t2, a2) = self.acks_history[-2], self.acks_history[-1]
            rate = (a2 - a1) / (t2 - t1) if t2 > t1 else 0.0
        done = sum(self.actions.values())
        kinds = " ".join(f"{k} {v}" for k, v in self.actions.items() if v)
        s = self.last_samples
        restarts = soak_metrics.values_by_suffix(s, "_worker_restarts_total").get((), 0)
        reloads = soak_metrics.values_by_suffix(s, "_reloads_total").get((), 0)
        print(f"[{self.elapsed():7.1f}s] actions {done:4d} ({kinds})  acks/s {rate:>12,.0f}  "
              f"workers {self.configured}  restarts {restarts:.0f}  reloads {reloads:.0f}",
              file=sys.stderr, flush=True)


def listener_closes(log, workers):
    """How many times the master closed a worker index's listening sockets for good (TTOU, a reload
    to fewer workers, an abandoned reload dropping the indices it had added), from its log. Each
    opens the reset window of docs/scaling.md, "Scaling down"."""
    closes, count, pending = 0, workers, None
    for line in log.splitlines():
        if m := re.search(r"TT(IN|OU): now (\d+) workers", line):
            closes += 1 if m.group(1) == "OU" else 0
            count = int(m.group(2))
        elif m := re.search(r"reload: generation \d+ starting \((\d+) workers\)", line):
            pending = int(m.group(1))
        elif pending is not None and re.search(r"reload: generation \d+ serving", line):
            closes += max(0, count - pending)
            count, pending = pending, None
        elif pending is not None and "reload failed" in line:
            closes += max(0, pending - count)
            pending = None
    return closes


def settle(soak, master, timeout):
    """After the chaos: back to WORKERS workers, all serving, none draining. Returns True when reached."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        soak.scrape()
        soak.check_pending()
        if not soak.pending_scale and soak.configured != WORKERS:
            up = soak.configured < WORKERS
            master.signal(signal.SIGTTIN if up else signal.SIGTTOU)
            soak.pending_scale = (soak.configured, time.monotonic() + 2.0)
        workers, _ = soak.workers()
        pending_stops = [s for s in soak.stops if not s.failed and not s.replaced_at]
        if (soak.configured == WORKERS and not pending_stops and master.get("/healthz")[0] == 200
                and workers and all(w["state"] == "serving" for w in workers)):
            return True
        time.sleep(0.2)
    return False


def master_figures(pid):
    """(fd count, RSS bytes, fd targets), taking the smallest fd count of a few reads: a scrape's
    HTTP connection may be open for a moment."""
    best = None
    for _ in range(5):
        n = fd_count(pid)
        if n is not None and (best is None or n < best[0]):
            best = (n, rss_bytes(pid), fd_targets(pid))
        time.sleep(0.1)
    return best or (None, None, {})


def run(args, work_dir, seed):
    rng = random.Random(seed)
    print(f"soak: {args.seconds:g} s, seed {seed} (--seed {seed} replays the choices), work dir {work_dir}",
          file=sys.stderr, flush=True)
    master = SoakMaster(args.bin_dir, work_dir, WORKERS, MAX_WORKERS, WORKER_TIMEOUT_S, DRAIN_TIMEOUT_S,
                        PROFILE_DURATION_S)
    loads = []
    lingering = None
    result = {"seed": seed, "seconds": args.seconds, "workers": WORKERS, "max_workers": MAX_WORKERS,
              "worker_timeout_s": WORKER_TIMEOUT_S, "drain_timeout_s": DRAIN_TIMEOUT_S, "work_dir": work_dir}
    failures = []
    try:
        if not master.wait_healthy(20):
            raise RuntimeError("the master never answered /healthz 200; its log:\n" + master.read_log()[-4000:])
        soak = Soak(args, master, rng)
        soak.workers()
        soak.scrape()
        fds_start, rss_start, fd_map_start = master_figures(master.pid)
        loads = [Load(args.bin_dir, work_dir, master.port, name, c, w, args.seconds) for name, c, w in LOADS]
        lingering = LingeringClients(master.port, LINGERING, LINGER_PERIOD_S)

        soak.t0 = time.monotonic()
        next_scrape = soak.t0 + 1.0
        next_action = soak.t0 + rng.uniform(0.5, 1.5)
        while soak.elapsed() < args.seconds:
            now = time.monotonic()
            if not master.alive():
                soak.master_died_at = soak.elapsed()
                break
            if now >= next_scrape:
                soak.scrape()
                soak.progress()
                next_scrape += 1.0
            if now >= next_action:
                soak.act()
                next_action += rng.uniform(0.5, 1.5)
            soak.check_pending()
            lingering.tick()
            time.sleep(0.05)
        chaos_seconds = soak.elapsed()

        lingering.stop(timeout=WORKER_TIMEOUT_S + HANG_DUMP_GRACE_S + HANG_MARGIN_S + 2)
        for load in loads:
            load.stop(timeout=30)
        settled = master.alive() and settle(soak, master, DRAIN_TIMEOUT_S + 2 + 20)
        if master.alive():
            soak.scrape()
        if not master.alive() and soak.master_died_at is None:
            soak.master_died_at = soak.elapsed()
        final = soak.last_samples
        fds_end, rss_end, fd_map_end = master_figures(master.pid)

        quit_at = time.monotonic()
        exit_status = master.quit(timeout=DRAIN_TIMEOUT_S + 2 + 3 + 10) if soak.master_died_at is None else None
        quit_seconds = time.monotonic() - quit_at
        leftovers = master.leftovers(soak.seen_pids)
        for s in soak.stops:  # the run ended before a check finished: that is a failure too
            if not s.failed and not s.replaced_at:
                s.failed = f"stopped worker {s.pid} (index {s.index}): check unfinished at the end"

        # --- the figures ---------------------------------------------------------------------
        def server(suffix, labels=()):
            return soak_metrics.values_by_suffix(final, suffix).get(tuple(labels), 0.0)

        protocol_errors = sum(soak_metrics.values_by_suffix(final, "_protocol_errors_total").values())
        result.update({
            "chaos_seconds": chaos_seconds,
            "loads": {**{f"{l.name} ({c} x {w})": {"exit_code": l.exit_code, "report": l.report}
                         for l, (_, c, w) in zip(loads, LOADS)},
                      f"lingering ({LINGERING} x 1, every {LINGER_PERIOD_S:g} s)":
                          {"exit_code": 0, "report": lingering.report}},
            "actions": soak.actions, "actions_skipped": soak.skipped,
            "scale_refused_during_reload": master.read_log().count("not scaling while a reload is in progress"),
            "hung_workers": [{"pid": s.pid, "index": s.index,
                              "killed_after_s": s.killed_at - s.stopped_at if s.killed_at else None,
                              "serving_again_after_s": s.replaced_at - s.killed_at if s.replaced_at else None,
                              "failure": s.failed} for s in soak.stops],
            "master_alive_throughout": soak.master_died_at is None,
            "master_died_at_s": soak.master_died_at,
            "settled": settled,
            "server": {"requests": server("_req_recv_total"), "acks": server("_rsp_send_total"),
                       "accepted": server("_connections_accepted_total"),
                       "rejected": server("_connections_rejected_total"),
                       "idle_timeouts": server("_idle_timeouts_total"),
                       "accept_errors": server("_accept_errors_total"), "protocol_errors": protocol_errors,
                       "worker_restarts": server("_worker_restarts_total"), "reloads": server("_reloads_total")},
            "profiles_written": master.profiles_written(),
            "counters_monotonic": not soak.monotonic.violations,
            "counter_violations": soak.monotonic.violations,
            "scrapes": soak.monotonic.scrapes, "series_checked": len(soak.monotonic.series),
            "per_worker_process_resets": soak.monotonic.process_resets,
            "scrape_failures": soak.scrape_failures,
            "lingering_connect_failures": [[round(t - soak.t0, 1), e] for t, e in lingering.connect_failures],
            "master_fds": {"start": fds_start, "end": fds_end, "max": soak.fd_max},
            "master_rss_bytes": {"start": rss_start, "end": rss_end},
            "quit_exit_status": exit_status, "quit_seconds": quit_seconds,
            "leftovers": leftovers, "worker_pids_seen": len(soak.seen_pids),
        })

        # --- hard failures -------------------------------------------------------------------
        for name, load in result["loads"].items():
            r, code = load["report"], load["exit_code"]
            if r is None:
                failures.append(f"{name} load: no report (exit {code}); see the client logs in {work_dir}")
                continue
            if r["errors_total"]:
                failures.append(f"{name} load: {r['errors_total']} ack errors {r['errors']}")
            refused = r["connects_failed"] - r.get("connects_reset", 0)
            if refused:
                failures.append(f"{name} load: {refused} connects failed (refused or timed out)")
            if r["unacked_at_end"]:
                failures.append(f"{name} load: {r['unacked_at_end']} requests unacked on open connections at the end")
            if code != 0 and not (r["errors_total"] or r["connects_failed"]):  # resets also exit 1
                failures.append(f"{name} load: exit status {code}")
        if soak.master_died_at is not None:
            failures.append(f"master died at {soak.master_died_at:.1f}s (exit {master.proc.returncode})")
        elif exit_status != 0:
            failures.append(f"master after QUIT: {'still running, killed' if exit_status is None else f'exit {exit_status}'}")
        # Connects: a refused or timed-out one is a failure. One reset after the handshake (ECONNRESET)
        # comes from a server-side reset racing connect()'s return: a listening socket closed with the
        # connection queued (the Scaling down window) or a killed worker with it just accepted. Each
        # such event can reset at most one connect per client connection.
        connections = sum(c for _, c, _ in LOADS) + LINGERING
        events = listener_closes(master.read_log(), WORKERS) + soak.actions["kill9"] + soak.actions["stop"]
        reset = sum((l["report"] or {}).get("connects_reset", 0) for l in result["loads"].values())
        result["connects_reset"] = {"count": reset, "listener_closes": events - soak.actions["kill9"]
                                    - soak.actions["stop"], "worker_kills": soak.actions["kill9"] + soak.actions["stop"],
                                    "bound": events * connections}
        if reset > events * connections:
            failures.append(f"{reset} connects reset after the handshake: more than {events} resetting events x "
                            f"{connections} connections")
        failures += [f"counter check: {v}" for v in soak.monotonic.violations[:1]]
        failures += [f"admin HTTP: {f}" for f in soak.scrape_failures[:1]]
        failures += [f"hung worker: {s.failed}" for s in soak.stops if s.failed]
        failures += [f"leftover: {l}" for l in leftovers]
        srv = result["server"]
        for key in ("rejected", "idle_timeouts", "accept_errors", "protocol_errors"):
            if srv[key]:  # the server closed connections for a reason other than the chaos
                failures.append(f"server counted {srv[key]:.0f} {key.replace('_', ' ')}")
        if not settled and soak.master_died_at is None:
            failures.append(f"did not settle back to {WORKERS} serving workers after the chaos")
        elif fds_start is not None and fds_end is not None and fds_end > fds_start:
            added = sorted(set(fd_map_end.items()) - set(fd_map_start.items()))
            failures.append(f"master fds grew {fds_start} -> {fds_end} with the same workers: {added[:10]}")
        result["failures"] = failures
        result["pass"] = not failures
        return result
    finally:
        for load in loads:
            load.kill()
        if lingering:
            lingering.kill()
        master.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None, help="RNG seed (default: random, printed)")
    ap.add_argument("--json", default=None, help="also write the report as JSON to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, config, profiles) on success")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    work_dir = tempfile.mkdtemp(prefix="tcpfork-soak-")
    try:
        result = run(args, work_dir, seed)
    except RuntimeError as e:
        print(f"soak: {e}\nsoak: work dir kept: {work_dir}", file=sys.stderr)
        return 1
    print_report(result)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    if result["pass"] and not args.keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    else:
        print(f"soak: work dir kept: {work_dir} (master.log, client-*.log, profiles/)", file=sys.stderr)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
