#!/usr/bin/env python3
"""Reads two callgrind --cache-sim=yes outputs of scripts/bench.sh's cache-misses step.

Usage: cachesim.py CASE SESSIONS R1 R2 FILE_R1 FILE_R2   prints one JSON line
       cachesim.py --summary JSONL                      the last line's figures per request

The JSON line holds each run's event totals ("x1", "x2", keyed by callgrind's event names: Ir,
Dr, Dw, I1mr, D1mr, D1mw, ILmr, DLmr, DLmw) and the simulated caches; a figure per request is
(x2 - x1) / (r2 - r1). Standard library only.
"""
import json
import sys


def totals(path):
    events, summary, caches = None, None, []
    with open(path) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")) and summary is None:
                summary = [int(x) for x in line.split()[1:]]
            elif line.startswith("desc: ") and " cache: " in line:
                caches.append(line[len("desc: "):].strip())
    if events is None or summary is None:
        sys.exit(f"{path}: no events or totals line")
    return dict(zip(events, summary)), caches


def per_request(d, *events):
    return sum(d["x2"].get(e, 0) - d["x1"].get(e, 0) for e in events) / (d["r2"] - d["r1"])


def main(args):
    if args[0] == "--summary":
        with open(args[1]) as f:
            d = json.loads(f.read().splitlines()[-1])
        print(
            f"{per_request(d, 'Ir'):.0f} instructions, {per_request(d, 'D1mr', 'D1mw'):.1f} D1, "
            f"{per_request(d, 'DLmr', 'DLmw'):.1f} LL data, {per_request(d, 'I1mr'):.1f} I1 misses per request"
        )
        return
    case, sessions, r1, r2, f1, f2 = args
    x1, _ = totals(f1)
    x2, caches = totals(f2)
    if not x2.get("Ir") or "D1mr" not in x2:
        sys.exit(f"{f2}: no instructions or no cache events collected (did --toggle-collect match a function?)")
    print(
        json.dumps(
            {
                "name": case,
                "sessions": int(sessions),
                "r1": int(r1),
                "r2": int(r2),
                "x1": x1,
                "x2": x2,
                "caches": caches,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
