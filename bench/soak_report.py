"""The soak's final report on stdout: the figures of one run (the dict that
bench/soak.py also writes as JSON), one line per subject, then PASS or FAIL
with every hard failure."""


def fmt_count(v):
    return f"{int(v):,}" if v is not None else "-"


def mib(v):
    return f"{v / 2**20:.1f} MiB" if v else "-"


def print_report(r):
    print(f"soak: {r['seconds']:g} s of chaos under load, seed {r['seed']}, {r['workers']} workers "
          f"(max {r['max_workers']}), worker_timeout {r['worker_timeout_s']}s, drain_timeout {r['drain_timeout_s']}s")
    header = (f"  {'load':<36}{'requests sent':>15}{'acks received':>15}{'ack errors':>11}{'connects failed':>16}"
              f"{'closed by server':>17}{'acks lost on them':>18}{'unacked at end':>15}")
    print(header)
    totals = {}
    for name, load in r["loads"].items():
        rep = load["report"] or {}
        row = {k: rep.get(k, 0) for k in ("sent", "acked", "errors_total", "connects_failed", "closed_by_server",
                                          "unacked_on_closed", "unacked_at_end")}
        for k, v in row.items():
            totals[k] = totals.get(k, 0) + v
        print(f"  {name:<36}" + "".join(
            f"{fmt_count(row[k]):>{width}}" for k, width in zip(row, (15, 15, 11, 16, 17, 18, 15))))
    print(f"  {'total':<36}" + "".join(
        f"{fmt_count(totals.get(k, 0)):>{width}}" for k, width in
        zip(("sent", "acked", "errors_total", "connects_failed", "closed_by_server", "unacked_on_closed",
             "unacked_at_end"), (15, 15, 11, 16, 17, 18, 15))))
    cr = r["connects_reset"]
    print(f"  connects failed     {totals.get('connects_failed', 0) - cr['count']} refused or timed out; "
          f"{cr['count']} reset by the server during the handshake (the Scaling down window: "
          f"{cr['listener_closes']} listener closes, {cr['worker_kills']} worker kills; bound "
          f"{cr['bound']:,})")
    if r["lingering_connect_failures"]:
        print(f"  lingering connects  failed at (s, error): {r['lingering_connect_failures'][:10]}")
    a = r["actions"]
    skipped = ", ".join(f"{k} {v}" for k, v in r["actions_skipped"].items())
    print(f"  chaos actions       {sum(a.values())} in {r['chaos_seconds']:.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in a.items())
          + (f" (not possible at the time, skipped: {skipped})" if skipped else ""))
    print(f"  scaling             {r['scale_refused_during_reload']} TTIN/TTOU refused by the master during a reload "
          f"(it scales only between reloads)")
    hung = r["hung_workers"]
    killed = [h["killed_after_s"] for h in hung if h["killed_after_s"] is not None]
    again = [h["serving_again_after_s"] for h in hung if h["serving_again_after_s"] is not None]
    print(f"  hung workers        {len(hung)} stopped, {len(killed)} killed by the master"
          + (f" ({max(killed):.2f} s after SIGSTOP at most)" if killed else "")
          + f", {len(again)} replaced and serving"
          + (f" ({max(again):.2f} s after the kill at most)" if again else ""))
    s = r["server"]
    print(f"  master              alive throughout: {'yes' if r['master_alive_throughout'] else 'NO'}; "
          f"{s['worker_restarts']:.0f} worker restarts, {s['reloads']:.0f} reloads, "
          f"{r['profiles_written']} CPU profiles written, {r['worker_pids_seen']} worker pids seen")
    received = sum((load["report"] or {}).get("acked", 0) for load in r["loads"].values())
    unreceived = (f"{fmt_count(s['acks'] - received)} of them not received by a client"
                  if r["master_alive_throughout"] else "at the last scrape before the master died")
    print(f"  server counters     {fmt_count(s['requests'])} requests, {fmt_count(s['acks'])} acks ({unreceived}), "
          f"{fmt_count(s['accepted'])} accepted; rejected {s['rejected']:.0f}, idle timeouts "
          f"{s['idle_timeouts']:.0f}, accept errors {s['accept_errors']:.0f}, protocol errors "
          f"{s['protocol_errors']:.0f}")
    v = r["counter_violations"]
    print(f"  counters monotonic  {'yes' if not v else 'NO: ' + v[0]} ({r['scrapes']} scrapes, "
          f"{r['series_checked']} series; {r['per_worker_process_resets']} per-worker series restarted by a "
          f"new process)")
    f, m = r["master_fds"], r["master_rss_bytes"]
    print(f"  master fds          {f['start']} at start, {f['end']} at end (max {f['max']}); "
          f"RSS {mib(m['start'])} -> {mib(m['end'])}")
    qs = r["quit_exit_status"]
    if not r["master_alive_throughout"]:
        print("  QUIT                not sent: the master had died")
    else:
        print(f"  QUIT                {'exit ' + str(qs) if qs is not None else 'did not exit: killed'} "
              f"after {r['quit_seconds']:.1f} s")
    print(f"  leftovers           {', '.join(r['leftovers']) if r['leftovers'] else 'none'}")
    if r["scrape_failures"]:
        print(f"  admin HTTP failures {len(r['scrape_failures'])}: {r['scrape_failures'][0]}")
    print(f"  result              {'PASS' if r['pass'] else 'FAIL'}")
    for failure in r["failures"]:
        print(f"    - {failure}")
