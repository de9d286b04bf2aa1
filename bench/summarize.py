#!/usr/bin/env python3
"""Summarise apply_bench.sh results (results.tsv) as Markdown tables.

Usage: summarize.py RESULTS_TSV

Per size N and method: median and min-max of the wall time over the runs that passed their
sanity check, the median user and system CPU times, and the ratios drawbridge / nft.
Standard library only.
"""

import csv
import statistics
import sys
from collections import defaultdict

# method -> what it is, in table order
METHODS = {
    "apply": "drawbridge-enforcer apply (empty namespace)",
    "nft": "nft -f rendered.nft (empty namespace)",
    "reapply": "drawbridge-enforcer apply onto the populated table (serial 2)",
    "nft-replace": "nft -f: delete table + load, one transaction, onto the populated table",
    "dry-run": "drawbridge-enforcer apply --dry-run (kernel validates, aborts)",
    "nft-check": "nft -c -f rendered.nft (kernel validates, aborts)",
    "check": "drawbridge-enforcer check (parse + validate only, no netlink)",
    "render": "drawbridge-enforcer render (parse + compile + print, no netlink)",
    "iptables": "iptables-restore of the naive one-rule-per-(source, host, port) ruleset",
}


def fmt_ms(v):
    """Milliseconds for a reader: seconds from 1 s up, microseconds below 1 ms."""
    if v is None:
        return "–"
    if v >= 10000:
        return f"{v / 1000:.1f} s"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    if v >= 1:
        return f"{v:.2f} ms"
    return f"{v * 1000:.0f} µs"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    wall = defaultdict(list)
    user = defaultdict(list)
    sys_ = defaultdict(list)
    notes = defaultdict(list)
    msgs = {}
    sizes = []
    for r in rows:
        n = int(r["n"])
        if n not in sizes:
            sizes.append(n)
        key = (n, r["method"])
        if r["status"] != "ok":
            notes[key].append(f"run {r['run']}: {r['status']}")
            continue
        wall[key].append(float(r["wall_ms"]))
        user[key].append(float(r["user_ms"]))
        sys_[key].append(float(r["sys_ms"]))
        if r["method"] in ("apply", "reapply") and r["messages"]:
            msgs[key] = (int(r["messages"]), int(r["bytes"]))

    def med(d, key):
        return statistics.median(d[key]) if d.get(key) else None

    def cell(n, m):
        key = (n, m)
        if not wall.get(key):
            return "not run" if not notes.get(key) else "; ".join(sorted(set(
                s.split(": ", 1)[1] for s in notes[key])))
        v = wall[key]
        s = f"{fmt_ms(statistics.median(v))} ({fmt_ms(min(v))}–{fmt_ms(max(v))})"
        failed = len(notes.get(key, []))
        return s + (f", {failed} run(s) failed" if failed else "")

    def ratio(n, a, b):
        x, y = med(wall, (n, a)), med(wall, (n, b))
        return f"{x / y:.2f}×" if x is not None and y else "–"

    print("### Apply: drawbridge vs nft -f (wall time, median (min–max))\n")
    print("| N prefixes | drawbridge apply | nft -f | ratio | re-apply (replace) | nft replace |"
          " ratio | apply netlink messages / bytes |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        mb = msgs.get((n, "apply"))
        mbr = msgs.get((n, "reapply"))
        mtext = f"{mb[0]} / {mb[1]:,}" if mb else "–"
        if mbr:
            mtext += f" (re-apply {mbr[0]} / {mbr[1]:,})"
        print(f"| {n:,} | {cell(n, 'apply')} | {cell(n, 'nft')} | {ratio(n, 'apply', 'nft')} | "
              f"{cell(n, 'reapply')} | {cell(n, 'nft-replace')} | "
              f"{ratio(n, 'reapply', 'nft-replace')} | {mtext} |")

    print("\n### Where the time goes (medians)\n")
    print("| N prefixes | check (parse) | render (parse+compile+print) | apply user / sys CPU |"
          " nft -f user / sys CPU | apply --dry-run | nft -c -f | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        au = f"{fmt_ms(med(user, (n, 'apply')))} / {fmt_ms(med(sys_, (n, 'apply')))}"
        nu = f"{fmt_ms(med(user, (n, 'nft')))} / {fmt_ms(med(sys_, (n, 'nft')))}"
        print(f"| {n:,} | {cell(n, 'check')} | {cell(n, 'render')} | {au} | {nu} | "
              f"{cell(n, 'dry-run')} | {cell(n, 'nft-check')} | {ratio(n, 'dry-run', 'nft-check')} |")

    if any(k[1] == "iptables" for k in list(wall) + list(notes)):
        print("\n### The hand-written alternative: iptables-restore, one rule per (source, host, port)"
              "\n")
        print("| N prefixes | iptables-restore | ratio to nft -f | ratio drawbridge / iptables |")
        print("|---:|---:|---:|---:|")
        for n in sizes:
            print(f"| {n:,} | {cell(n, 'iptables')} | {ratio(n, 'iptables', 'nft')} | "
                  f"{ratio(n, 'apply', 'iptables')} |")

    print("\nMethods:\n")
    for m, text in METHODS.items():
        print(f"- `{m}`: {text}")
    bad = [(k, v) for k, v in notes.items() if v]
    if bad:
        print("\nRuns that did not pass (excluded from the statistics):\n")
        for (n, m), v in sorted(bad):
            print(f"- N={n:,} `{m}`: " + "; ".join(v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
