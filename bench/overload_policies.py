#!/usr/bin/env python3
"""Shedding policies compared on a model of one worker (docs/overload.md).

Not the server: a discrete-event model of one FIFO queue served by one
worker whose handler takes a fixed time per request (100 us), with Poisson
arrivals at a multiple of its capacity for a number of seconds. A shed
request costs `--shed-us` of the worker's time and is answered at once.
Each policy decides, as a request reaches the head of the queue, whether to
serve or shed it:

  none        serve everything (what tcpfork did before overload.shed)
  slough      tcpfork's: overloaded once an interval passed without a request
              within the target; then shed what waited over 2 x target; out
              after an interval within the target with nothing shed (folly's
              CoDel executor, with the onset sliding)
  codel       CoDel's own control law (RFC 8289): once the sojourn stayed over
              the target for an interval, drop the head, then again after
              interval / sqrt(count) while it stays over
  lifo        adaptive LIFO (serve the newest first while the queue is over
              the target; shed what waited over 2 x target)

Prints goodput (served while the arrivals last, as a share of the capacity),
served p50/p99 and busy p99 per policy and load. Python
standard library only; deterministic (seeded)."""

import argparse
import collections
import math
import random


def percentile(values, q):
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Slough:
    def __init__(self, target, interval):
        self.target, self.interval = target, interval
        self.overloaded = False
        self.within_since = 0.0
        self.end = 0.0
        self.min = math.inf
        self.shed_in = False

    def shed(self, sojourn, now):
        if not self.overloaded:
            if sojourn <= self.target:
                self.within_since = now
                return False
            if now - self.within_since < self.interval:
                return False
            self.overloaded, self.end, self.min, self.shed_in = True, now + self.interval, math.inf, False
        elif now >= self.end:
            if self.min <= self.target and not self.shed_in:
                self.overloaded, self.within_since = False, now
                return self.shed(sojourn, now)
            self.end, self.min, self.shed_in = now + self.interval, math.inf, False
        self.min = min(self.min, sojourn)
        drop = sojourn > 2 * self.target
        self.shed_in = self.shed_in or drop
        return drop


class CoDel:
    """RFC 8289's dequeue logic, dropping (here: shedding) at the head."""

    def __init__(self, target, interval):
        self.target, self.interval = target, interval
        self.first_above = 0.0
        self.dropping = False
        self.count = 0
        self.drop_next = 0.0

    def shed(self, sojourn, now):
        ok_to_drop = False
        if sojourn < self.target:
            self.first_above = 0.0
        elif self.first_above == 0.0:
            self.first_above = now + self.interval
        elif now >= self.first_above:
            ok_to_drop = True
        if self.dropping:
            if not ok_to_drop:
                self.dropping = False
                return False
            if now >= self.drop_next:
                self.count += 1
                self.drop_next += self.interval / math.sqrt(self.count)
                return True
            return False
        if ok_to_drop:
            self.dropping = True
            self.count = max(1, self.count - 2) if now - self.drop_next < 16 * self.interval else 1
            self.drop_next = now + self.interval / math.sqrt(self.count)
            return True
        return False


def simulate(policy, load, seconds, service, shed_cost, target, interval, seed):
    rng = random.Random(seed)
    rate = load / service
    arrivals = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            break
        arrivals.append(t)
    decider = {"slough": Slough(target, interval), "codel": CoDel(target, interval), "lifo": Slough(target, interval)}
    decider = decider.get(policy)
    queue = collections.deque()
    served, busy = [], []
    done_in_run = 0  # served while the arrivals last: goodput
    now, i = 0.0, 0
    while i < len(arrivals) or queue:
        while i < len(arrivals) and arrivals[i] <= now:
            queue.append(arrivals[i])
            i += 1
        if not queue:
            now = arrivals[i]
            continue
        if policy == "lifo" and now - queue[0] > target:
            # Over the target: the oldest are answered busy, the newest served first.
            while queue and now - queue[0] > 2 * target:
                busy.append(now - queue.popleft())
                now += shed_cost
            if not queue:
                continue
            arrived = queue.pop()
        else:
            arrived = queue.popleft()
            if decider and decider.shed(now - arrived, now):
                busy.append(now - arrived)
                now += shed_cost
                continue
        now += service
        served.append(now - arrived)
        done_in_run += now <= seconds
    return {
        "goodput": done_in_run / seconds,
        "p50": percentile(served, 0.5),
        "p99": percentile(served, 0.99),
        "busy_p99": percentile(busy, 0.99),
        "busy_share": len(busy) / max(1, len(served) + len(busy)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--service-us", type=float, default=100)
    ap.add_argument("--shed-us", type=float, default=1)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--target-ms", type=float, default=5)
    ap.add_argument("--interval-ms", type=float, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    service, shed = args.service_us / 1e6, args.shed_us / 1e6
    target, interval = args.target_ms / 1e3, args.interval_ms / 1e3
    capacity = 1 / service
    print(f"model: one worker, {args.service_us:g} us a request (capacity {capacity / 1e3:g} k/s), Poisson arrivals "
          f"for {args.seconds:g} s, a shed costs {args.shed_us:g} us; target {args.target_ms:g} ms, interval "
          f"{args.interval_ms:g} ms")
    print(f"{'policy':<8} {'load':>5} {'goodput':>9} {'served p50':>11} {'served p99':>11} {'busy':>7} {'busy p99':>9}")
    for load in (0.5, 1.0, 2.0, 4.0):
        for policy in ("none", "slough", "codel", "lifo"):
            r = simulate(policy, load, args.seconds, service, shed, target, interval, args.seed)
            print(f"{policy:<8} {load:>4g}x {r['goodput'] / capacity:>8.1%} {r['p50'] * 1e3:>9.1f}ms "
                  f"{r['p99'] * 1e3:>9.1f}ms {r['busy_share']:>7.1%} {r['busy_p99'] * 1e3:>7.1f}ms")


if __name__ == "__main__":
    main()
