"""Prometheus text parsing and the soak's counter check: across every scrape
of a run, no counter (`*_total`) and no histogram series (`_count`, `_sum`,
`_bucket`) may go down, and no series may appear twice in one scrape.

Per-worker-process series (labelled `worker`, `generation` and `pid`) belong
to one process, so they never go down either; should a pid ever be reused by a
later worker of the same index and generation, the new process would restart
them from zero under the same labels (a counter reset to Prometheus). That
decrease is accepted only when the series' `<ns>_worker_start_time_seconds`
shows a different process, and counted; any other decrease is a violation.
"""

import re

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_MONOTONIC_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


def parse(text):
    """Returns [(name, labels as a sorted tuple of (key, value)), value)] in exposition order."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"unparsable metrics line: {line!r}")
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def value_of(samples, name, labels=()):
    for n, l, v in samples:
        if n == name and l == tuple(sorted(labels)):
            return v
    return None


def values_by_suffix(samples, suffix):
    """{labels: value} of the one family whose name ends with `suffix` (namespace-independent)."""
    return {l: v for n, l, v in samples if n.endswith(suffix)}


class MonotonicCheck:
    """Fed every scrape in order; remembers the last value of each series."""

    def __init__(self):
        self.last = {}             # (name, labels) -> value
        self.start_times = {}      # worker labels -> worker_start_time_seconds last seen
        self.scrapes = 0
        self.series = set()
        self.process_resets = 0    # per-worker series restarted by a new process
        self.violations = []       # human-readable, first one first

    def feed(self, elapsed, samples):
        self.scrapes += 1
        seen, twice = set(), set()
        for name, labels, _ in samples:
            key = (name, labels)
            if key in seen and key not in twice:
                twice.add(key)
                self._violate(f"{elapsed:.1f}s: series {_show(name, labels)} appears twice in one scrape")
            seen.add(key)
        start_times = {l: v for n, l, v in samples if n.endswith("_worker_start_time_seconds")}
        for name, labels, value in samples:
            key = (name, labels)
            if key in twice or not name.endswith(_MONOTONIC_SUFFIXES):
                continue  # a duplicated series has no one value to compare
            self.series.add(key)
            before = self.last.get(key)
            self.last[key] = value
            if before is None or value >= before:
                continue
            worker_labels = _worker_labels(labels)
            if worker_labels is not None:
                was, now = self.start_times.get(worker_labels), start_times.get(worker_labels)
                if was is not None and now is not None and was != now:
                    self.process_resets += 1
                    continue
            self._violate(f"{elapsed:.1f}s: {_show(name, labels)} went down from {before:g} to {value:g}")
        # Remember the process behind each per-worker label set, also after it is gone.
        self.start_times.update(start_times)

    def _violate(self, what):
        if len(self.violations) < 20:
            self.violations.append(what)


def _worker_labels(labels):
    """The labels naming one worker process's series (the same on its start-time gauge), or None."""
    return labels if "worker" in dict(labels) else None


def _show(name, labels):
    return name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else "")
