#!/usr/bin/env python3
"""Checks a distnet --timeline file strictly: valid JSON (no NaN, no duplicate keys), the Chrome
trace event format, one named process row per rank, spans that nest on each thread row, the
events each step must have, gradient buckets in order on each rank, and steps that overlap across
ranks (they end in a collective, so with aligned clocks they must). With --device (a GPU run) it
also checks the device-side rows: per-layer forward/backward on "GPU compute", gradient buckets in
order on "GPU communication", each device step starting no earlier than the host queued it.
With --exchange (a --model-parallel run) it checks the "activation exchange" row: every training
step holds the grid's three all-gathers and two reduce-scatters, in the order a step makes them
(and with --device, the same on "GPU activation exchange").

  check_timeline.py FILE RANKS [--device] [--exchange]
Prints one line per check; exits 1 if any fails.
"""
import collections
import json
import re
import sys

EPS = 0.01  # microseconds: timestamps are written with 3 decimals


def strict_load(path):
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        dup = [k for k, n in collections.Counter(keys).items() if n > 1]
        if dup:
            raise ValueError("duplicate keys %s" % dup)
        return dict(pairs)

    def no_constants(name):
        raise ValueError("non-standard JSON constant %s" % name)

    with open(path) as f:
        return json.load(f, object_pairs_hook=no_duplicates, parse_constant=no_constants)


def main():
    path, ranks = sys.argv[1], int(sys.argv[2])
    device = "--device" in sys.argv[3:]
    exchange = "--exchange" in sys.argv[3:]
    failures = []

    def check(ok, what):
        print(("ok: " if ok else "FAIL: ") + what)
        if not ok:
            failures.append(what)

    try:
        doc = strict_load(path)
    except ValueError as e:
        print("FAIL: %s is not strict JSON: %s" % (path, e))
        return 1
    events = doc.get("traceEvents")
    check(isinstance(events, list) and events, "a non-empty traceEvents list")
    for e in events:
        if e.get("ph") not in ("X", "C", "M") or not isinstance(e.get("pid"), int) or "name" not in e:
            check(False, "every event has ph X/C/M, an integer pid and a name: %s" % e)
            break
        if e["ph"] in ("X", "C") and not isinstance(e.get("ts"), (int, float)):
            check(False, "timed events have a numeric ts: %s" % e)
            break
        if e["ph"] == "X" and not (isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0):
            check(False, "spans have a duration >= 0: %s" % e)
            break
    names = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    check(sorted(names) == list(range(ranks)) and all(re.match(r"rank \d+ \(.+\)$", n) for n in names.values()),
          "one process row per rank, named 'rank r (host)': %s" % sorted(names.values()))

    spans = [e for e in events if e["ph"] == "X"]
    # Nesting: on each (rank, thread) row, spans either contain each other or are disjoint.
    bad = None
    rows = collections.defaultdict(list)
    for e in spans:
        rows[(e["pid"], e["tid"])].append(e)
    for key, row in rows.items():
        row.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        for e in row:
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"] + EPS:
                stack.pop()
            if stack and e["ts"] + e["dur"] > stack[-1]["ts"] + stack[-1]["dur"] + EPS:
                bad = (key, stack[-1]["name"], e["name"])
                break
            stack.append(e)
        if bad:
            break
    check(bad is None, "spans nest on every thread row%s" % ("" if bad is None else ": %s overlaps %s on %s" % (bad[2], bad[1], bad[0])))

    # What every rank recorded.
    for r in range(ranks):
        mine = [e for e in spans if e["pid"] == r]
        got = {e["name"] for e in mine}
        need = ["data wait", "stage input", "optimizer", "stop vote", "evaluate"]
        layered = any(n.startswith("forward ") for n in got) and any(n.startswith("backward ") for n in got)
        steps = [e for e in mine if e["name"].startswith("step ") and e["tid"] == 1]
        buckets = [e for e in mine if e.get("cat") == "bucket" and e["tid"] == 2]
        loader = [e for e in mine if e["tid"] == 3]
        check(all(n in got for n in need) and layered and steps and buckets and loader,
              "rank %d: steps (%d), data waits, staging, per-layer forward/backward, buckets (%d), "
              "the optimizer, the vote, evaluation and loader batches (%d)" % (r, len(steps), len(buckets), len(loader)))
        # Buckets: one communication stream, so in order and disjoint; their indices restart at 0
        # each step; each waited a non-negative time after it was ready; each inside a step.
        buckets.sort(key=lambda e: e["ts"])
        ordered = all(a["ts"] + a["dur"] <= b["ts"] + EPS for a, b in zip(buckets, buckets[1:]))
        idx = [e["args"]["bucket"] for e in buckets]
        restarts = all(b == a + 1 or b == 0 for a, b in zip(idx, idx[1:])) and (not idx or idx[0] == 0)
        waited = all(e["args"]["waited_after_ready_us"] >= 0 for e in buckets)
        inside = all(any(s["ts"] - EPS <= e["ts"] and e["ts"] + e["dur"] <= s["ts"] + s["dur"] + EPS for s in steps)
                     for e in buckets)
        check(ordered and restarts and waited and inside,
              "rank %d: buckets ordered and disjoint, indices %s..., ready <= start <= done, each inside a step" % (r, idx[:6]))
        if device:
            gpu = [e for e in mine if e["tid"] == 5]
            gnames = {e["name"] for e in gpu}
            glayered = any(n.startswith("forward ") for n in gnames) and any(n.startswith("backward ") for n in gnames)
            gsteps = [e for e in gpu if e["name"].startswith("step ")]
            check(glayered and gsteps and "optimizer" in gnames,
                  "rank %d: GPU compute row: steps (%d), per-layer forward/backward, the optimizer" % (r, len(gsteps)))
            # The device runs work after the host queued it: a device step starts no earlier than
            # the host step of the same name (to the microseconds the two clocks may differ by).
            host_step = {e["name"]: e for e in steps}
            early = [e["name"] for e in gsteps if e["name"] in host_step and e["ts"] < host_step[e["name"]]["ts"] - 50]
            check(not early, "rank %d: device steps start after the host queued them%s" % (r, "" if not early else ": not %s" % early[:3]))
            gb = sorted((e for e in mine if e["tid"] == 6), key=lambda e: e["ts"])
            gidx = [e["args"]["bucket"] for e in gb]
            gordered = all(a["ts"] + a["dur"] <= b["ts"] + EPS for a, b in zip(gb, gb[1:]))
            grestarts = bool(gidx) and gidx[0] == 0 and all(b == a + 1 or b == 0 for a, b in zip(gidx, gidx[1:]))
            check(gordered and grestarts, "rank %d: GPU communication row: %d buckets, ordered and disjoint, indices %s..." % (r, len(gb), gidx[:6]))
    if exchange:
        # Forward: gather conv features, gather sample ids, scatter dense2's partial sums;
        # backward: gather dense2's output gradient, scatter dense1's input gradient.
        order = ["all-gather", "all-gather", "reduce-scatter", "all-gather", "reduce-scatter"]
        # Host spans lie in the host's steps; device spans in the device's steps (the compute
        # stream waits for each collective, so its step contains them).
        for tid, step_tid, row in ((7, 1, "activation exchange"), (8, 5, "GPU activation exchange")):
            if tid == 8 and not device:
                continue
            for r in range(ranks):
                mine = [e for e in spans if e["pid"] == r]
                steps = [e for e in mine if e["name"].startswith("step ") and e["tid"] == step_tid]
                ex = sorted((e for e in mine if e["tid"] == tid), key=lambda e: e["ts"])
                per_step = [[e["name"] for e in ex if s["ts"] - EPS <= e["ts"] and
                             e["ts"] + e["dur"] <= s["ts"] + s["dur"] + EPS] for s in steps]
                good = bool(steps) and all(p == order for p in per_step) and \
                    all(e.get("cat") == "exchange" and e["args"]["bytes"] > 0 for e in ex)
                check(good, "rank %d: %s row: each of %d steps holds %s%s" % (
                    r, row, len(steps), "/".join(order), "" if good else ": %s" % per_step[:3]))
    if device:
        lost = doc.get("otherData", {}).get("device_spans_lost")
        check(lost == 0, "no device span lost (otherData.device_spans_lost = %s)" % lost)
    if any(e["pid"] == 0 and e["tid"] == 4 for e in spans):
        check(True, "rank 0 recorded the background checkpoint writes")
    counters = {e["name"] for e in events if e["ph"] == "C"}
    check({"images/s", "loader queue"} <= counters, "counters images/s and loader queue: %s" % sorted(counters))

    # Steps end in collectives: step N of every rank overlaps step N of every other rank.
    by_step = collections.defaultdict(dict)
    for e in spans:
        if e["name"].startswith("step ") and e["tid"] == 1:
            by_step[e["name"]][e["pid"]] = e
    complete = [s for s in by_step.values() if len(s) == ranks]
    apart = [n for n, s in by_step.items() if len(s) == ranks and
             max(e["ts"] for e in s.values()) > min(e["ts"] + e["dur"] for e in s.values()) + EPS]
    check(complete and not apart, "each step overlaps across all %d ranks (%d steps; clocks aligned)%s"
          % (ranks, len(complete), "" if not apart else ": not %s" % apart[:3]))
    print("%d checks failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
