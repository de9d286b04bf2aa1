#!/usr/bin/env python3
"""Turn one bench/run.sh run into the performance report: a table, Markdown and PNG charts.

Usage: report.py --out OUT --workloads "W..." [--quick] [--docs FILE] [--save DIR]

Reads the raw records bench/run.sh left in OUT (machine.txt, commands.txt, apply/, window/,
packet/, footprint/, fanout.json, logging/, micro.json), prints the summary table, and writes
OUT/report.md with OUT/charts/*.png (gnuplot). With --docs FILE it also writes the report into
FILE between the markers below (the hand-written text after them is kept) and the charts into
performance/ beside FILE. With --save DIR it copies the raw records (not the generated policies)
to DIR instead. Exits 1 if a workload that was asked for produced no numbers: that is all the
quick mode in CI asserts. Standard library only (plus gnuplot for the charts).
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

from summarize import fmt_ms  # bench/ is on sys.path: the script's own directory

BEGIN = "<!-- BEGIN bench/run.sh report: generated, do not edit by hand -->"
END = "<!-- END bench/run.sh report -->"


# ---------------------------------------------------------------- small helpers
def read_kv(path):
    out = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if ": " in line:
                    k, v = line.rstrip("\n").split(": ", 1)
                    out[k] = v
    return out


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def read_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    return json.loads(text) if text else None


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    if not v:
        return None
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def med(values):
    return statistics.median(values) if values else None


ms = fmt_ms


def spread(values):
    if not values:
        return "–"
    if len(values) == 1:
        return ms(values[0])
    return f"{ms(med(values))} ({ms(min(values))}–{ms(max(values))})"


QUICK = False


def verdict(ok):
    if QUICK:  # small sizes and single runs: the targets' conditions are not met, nor judged
        return "(quick: not judged)"
    return "**met**" if ok else "**missed**"


class Report:
    def __init__(self):
        self.md = []
        self.summary = []  # (workload, measure, drawbridge, baseline, target, verdict)
        self.numbers = defaultdict(int)  # workload -> numbers produced
        self.charts = []  # (name, gnuplot script, data files {name: text})

    def w(self, text=""):
        self.md.append(text)


# ---------------------------------------------------------------- workloads
def commands_of(out):
    cmds = defaultdict(list)
    path = os.path.join(out, "commands.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                name, cmd = line.rstrip("\n").split("\t", 1)
                cmds[name.split("-")[0]].append(cmd)
    return cmds


def section_commands(r, cmds, name, intro="Command"):
    lines = cmds.get(name, [])
    if not lines:
        return
    r.w(f"{intro} (`OUT` is the run's work directory, `BUILD` the build tree):")
    r.w("")
    r.w("```sh")
    for c in lines:
        r.w(c)
    r.w("```")
    r.w("")


def apply_section(r, out, cmds, window):
    rows = read_tsv(os.path.join(out, "apply", "results.tsv"))
    if not rows:
        return None
    wall = defaultdict(list)
    user = defaultdict(list)
    sys_ = defaultdict(list)
    status = defaultdict(list)
    sizes = []
    for row in rows:
        n = int(row["n"])
        if n not in sizes:
            sizes.append(n)
        key = (n, row["method"])
        status[key].append(row["status"])
        if row["status"] == "ok":
            wall[key].append(float(row["wall_ms"]))
            user[key].append(float(row["user_ms"]))
            sys_[key].append(float(row["sys_ms"]))
            r.numbers["apply"] += 1

    def cell(n, m):
        if wall.get((n, m)):
            bad = [x for x in status[(n, m)] if x != "ok"]
            note = f"; {len(bad)} of {len(status[(n, m)])} runs: {', '.join(sorted(set(bad)))}" \
                if bad else ""
            return spread(wall[(n, m)]) + note
        st = status.get((n, m))
        if not st:
            return "not run"
        if any(s.startswith("timeout") for s in st):
            return "did not load within the limit (" + st[0].split("(", 1)[-1].rstrip(")") + ")"
        if any(s.startswith("not-run(more-than-") for s in st):
            limit = st[0][len("not-run(more-than-"):].split("-")[0]
            return f"not tried: more than {int(limit):,} rules"
        if any(s.startswith("not-run") for s in st):
            return "not run (did not load at a smaller N)"
        return "; ".join(sorted(set(st)))

    def ratio(n, a, b):
        x, y = med(wall.get((n, a))), med(wall.get((n, b)))
        return x / y if x is not None and y else None

    commit = {n: window[n]["commit_ms"] for n in window if window[n].get("commit_ms")}
    r.w("### 1. Full policy apply")
    r.w("")
    r.w("N provider prefixes × 100 hosts × 5 ports over 20 links (`bench/gen_policy.py N`). Each "
        "method runs in a fresh network namespace, drawbridge and nft alternating in ABBA order, "
        "iptables-restore before or after them; wall time of the whole process, median "
        "(min–max). **Kernel commit** is the kernel's own time for the same transaction: "
        "`drawbridge-window-bench` sends the batch `apply` sends into an empty table and times "
        "sendmsg → last ack (its own namespace, same run). The iptables ruleset is the one people "
        "write by hand: one ACCEPT rule per (source, host, port), about 115 × N rules "
        "(`bench/gen_iptables.py`), loaded with iptables-restore (nf_tables backend); after it "
        "fails to load within the limit at one size it is not tried at larger ones.")
    r.w("")
    r.w("| N prefixes | drawbridge apply | nft -f (same ruleset) | ratio (target ≤ 0.25× at N ≥ "
        "10,000) | kernel commit (send → ack) | kernel ÷ nft -f | apply user / sys CPU | "
        "iptables-restore, naive | iptables rules |")
    r.w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        rt = ratio(n, "apply", "nft")
        nftm = med(wall.get((n, "nft")))
        km = med(commit.get(n, []))
        kr = f"{km / nftm:.2f}×" if km is not None and nftm else "–"
        cpu = (f"{ms(med(user.get((n, 'apply'))))} / {ms(med(sys_.get((n, 'apply'))))}"
               if wall.get((n, "apply")) else "–")
        ipt_rules = ""
        for row in rows:
            if int(row["n"]) == n and row["method"] == "iptables" and row["status"] == "ok":
                ipt_rules = f"{int(row['elements']):,}"
        bold = "**" if n >= 10000 else ""
        r.w(f"| {n:,} | {bold}{cell(n, 'apply')}{bold} | {bold}{cell(n, 'nft')}{bold} | "
            f"{bold}{rt:.2f}×{bold} | {spread(commit.get(n, []))} | {kr} | {cpu} | "
            f"{cell(n, 'iptables')} | {ipt_rules or '–'} |" if rt is not None else
            f"| {n:,} | {cell(n, 'apply')} | {cell(n, 'nft')} | – | {spread(commit.get(n, []))} | "
            f"{kr} | {cpu} | {cell(n, 'iptables')} | {ipt_rules or '–'} |")
    r.w("")
    more = [m for m in ("reapply", "nft-replace", "dry-run", "nft-check", "check", "render")
            if any(k[1] == m for k in status)]
    if more:
        r.w("Other methods of the same run (`bench/apply_bench.sh --help` describes them):")
        r.w("")
        r.w("| N prefixes | " + " | ".join(f"`{m}`" for m in more) + " |")
        r.w("|---:|" + "---:|" * len(more))
        for n in sizes:
            r.w(f"| {n:,} | " + " | ".join(cell(n, m) for m in more) + " |")
        r.w("")
    big = [n for n in sizes if n >= 10000 and ratio(n, "apply", "nft") is not None]
    if big:
        worst = max(ratio(n, "apply", "nft") for n in big)
        ok = worst <= 0.25
        text = ", ".join(f"{ratio(n, 'apply', 'nft'):.2f}× at N = {n:,}" for n in big)
        r.w(f"**Target ≤ 0.25× of `nft -f` at N ≥ 10,000: {verdict(ok)}** ({text}).")
        r.summary.append(("apply", "apply ÷ nft -f, N ≥ 10,000", f"{worst:.2f}×", "nft -f = 1",
                          "≤ 0.25×", verdict(ok)))
        kbig = [(n, med(commit[n]) / med(wall[(n, 'nft')]),
                 0.25 * med(wall[(n, 'nft')]) - med(commit[n])) for n in big if commit.get(n)]
        if kbig:
            left = "; ".join((f"{ms(rest)}" if rest > 0 else "nothing (the kernel alone is "
                              "over it)") + f" at N = {n:,}" for n, _, rest in kbig)
            r.w(f"The kernel's commit alone is {', '.join(f'{k:.2f}× at {n:,}' for n, k, _ in kbig)}"
                " of `nft -f`'s time. An apply that installs the whole ruleset would have to "
                f"start the process, verify, parse, compile and send within what 0.25× leaves "
                f"beside the kernel's share: {left} (see [The ≤ 0.25× target](#the--025-target) "
                "and [Where a target is missed](#where-a-target-is-missed)).")
    else:
        r.w("(No size ≥ 10,000 in this run: the 0.25× target is not evaluated.)")
        n = sizes[-1]
        if ratio(n, "apply", "nft") is not None:
            r.summary.append(("apply", f"apply ÷ nft -f, N = {n:,}",
                              f"{ratio(n, 'apply', 'nft'):.2f}×", "nft -f = 1", "≤ 0.25× at N ≥ "
                              "10,000", verdict(False) if QUICK else "not evaluated"))
    ipt_ok = [n for n in sizes if wall.get((n, "iptables"))]
    ipt_bad = [n for n in sizes if not wall.get((n, "iptables")) and status.get((n, "iptables"))]
    if ipt_ok or ipt_bad:
        r.w("")
        r.w("iptables-restore of the naive ruleset " +
            (f"loaded up to N = {max(ipt_ok):,} (about {115 * max(ipt_ok):,} rules)"
             if ipt_ok else "loaded at no size") +
            (f"; at N = {', '.join(f'{n:,}' for n in ipt_bad)}: " +
             "; ".join(cell(n, "iptables") for n in ipt_bad) + "." if ipt_bad else "."))
    r.w("")
    # chart: time vs N, log-log
    data = []
    for n in sizes:
        vals = []
        for m in ("apply", "nft", "iptables"):
            v = wall.get((n, m))
            vals += [med(v), min(v), max(v)] if v else ["NaN"] * 3
        c = commit.get(n)
        vals += [med(c), min(c), max(c)] if c else ["NaN"] * 3
        nftm = med(wall.get((n, "nft")))
        vals.append(0.25 * nftm if nftm else "NaN")
        data.append(" ".join(str(x) for x in [n] + vals))
    script = """
set title "Full policy apply: time vs policy size (median, min-max bars)"
set logscale xy
set xlabel "provider prefixes N"
set ylabel "wall time (ms)"
set key top left
set grid
plot 'apply.dat' using 1:2:3:4 with yerrorlines lw 2 title "drawbridge-enforcer apply", \\
     '' using 1:5:6:7 with yerrorlines lw 2 title "nft -f (same ruleset)", \\
     '' using 1:8:9:10 with yerrorlines lw 2 title "iptables-restore, one rule per (source, host, port)", \\
     '' using 1:11:12:13 with yerrorlines lw 2 dt 2 title "kernel commit (send to ack)", \\
     '' using 1:14 with lines dt 3 lc rgb "black" title "target: 0.25 x nft -f"
"""
    r.charts.append(("apply", script, {"apply.dat": "\n".join(data) + "\n"}))
    r.w("![apply time vs N](CHARTS/apply.png)")
    r.w("")
    section_commands(r, cmds, "apply", "Commands")
    return wall


def window_section(r, out, cmds, window, apply_wall):
    if not window:
        return
    sizes = sorted(window)
    r.w("### 2. Window open/close")
    r.w("")
    r.w("One link (`link-20`: 5 hosts × 5 ports) opening and closing while the table holds the "
        "whole policy of N prefixes, on a real table in `drawbridge-window-bench`'s private "
        "network namespace. **Edge** is what the daemon does at a window edge: `advance()` of "
        "the plan in force to the edge's instant (it recomputes only the open-window sets; "
        "O(links), not O(prefixes)), then `NftablesWriter::update_windows`, which sends "
        "only the link's elements to its own plain set (an incremental add or delete, no "
        "reload, nothing that makes the kernel re-validate the table). **Netlink** is "
        "`update_windows` alone. The baseline is what a cron job does to open or close a link: "
        "reload the whole ruleset with `nft -f` (the `nft-replace` method of workload 1, same "
        "run).")
    r.w("")
    r.w("| N prefixes | toggles | open: edge p50 / p99 | close: edge p50 / p99 | open: netlink "
        "p50 / p99 | close: netlink p50 / p99 | elements added / deleted | baseline: nft -f "
        "reload (median) |")
    r.w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for n in sizes:
        d = window[n]
        ot, ct = d["open_total_ms"], d["close_total_ms"]
        ou, cu = d["open_update_ms"], d["close_update_ms"]
        worst = max(worst, pct(ot, 99), pct(ct, 99))
        base = med(apply_wall.get((n, "nft-replace"))) if apply_wall else None
        r.numbers["window"] += len(ot) + len(ct)
        r.w(f"| {n:,} | {len(ot)} | {ms(pct(ot, 50))} / **{ms(pct(ot, 99))}** | "
            f"{ms(pct(ct, 50))} / **{ms(pct(ct, 99))}** | {ms(pct(ou, 50))} / {ms(pct(ou, 99))} | "
            f"{ms(pct(cu, 50))} / {ms(pct(cu, 99))} | {d['elements_added']} / "
            f"{d['elements_deleted']} | {ms(base)} |")
    r.w("")
    p99_small = max(pct(window[sizes[0]]["open_total_ms"], 99),
                    pct(window[sizes[0]]["close_total_ms"], 99))
    p99_big = max(pct(window[sizes[-1]]["open_total_ms"], 99),
                  pct(window[sizes[-1]]["close_total_ms"], 99))
    growth = p99_big / p99_small if p99_small else None
    ok = worst < 2.0
    net_big = max(pct(window[sizes[-1]]["open_update_ms"], 99),
                  pct(window[sizes[-1]]["close_update_ms"], 99))
    net_small = max(pct(window[sizes[0]]["open_update_ms"], 99),
                    pct(window[sizes[0]]["close_update_ms"], 99))
    met = ok and (growth or 0) < 2
    r.w(f"**Target p99 < 2 ms, flat in N: {verdict(met)}.** Worst edge p99 "
        f"{ms(worst)}; from N = {sizes[0]:,} to {sizes[-1]:,} the edge p99 changes "
        f"{growth:.1f}× and the netlink part's {net_big / net_small:.1f}× (1.0× = flat). The "
        "netlink transaction is incremental (the element counts above)"
        + ("." if met else "; see [Where a target is missed](#where-a-target-is-missed)."))
    r.summary.append(("window", f"edge p99, N = {sizes[0]:,} … {sizes[-1]:,}",
                      f"{ms(p99_small)} … {ms(p99_big)}",
                      ms(med(apply_wall.get((sizes[-1], "nft-replace")))) + " (nft -f reload)"
                      if apply_wall and apply_wall.get((sizes[-1], "nft-replace")) else "–",
                      "p99 < 2 ms, flat", verdict(ok and (growth or 0) < 2)))
    r.w("")
    data = []
    for n in sizes:
        d = window[n]
        base = med(apply_wall.get((n, "nft-replace"))) if apply_wall else None
        data.append(" ".join(str(x) for x in [
            n, pct(d["open_total_ms"], 50), pct(d["open_total_ms"], 99),
            pct(d["close_total_ms"], 50), pct(d["close_total_ms"], 99),
            pct(d["open_update_ms"], 99), pct(d["close_update_ms"], 99),
            base if base is not None else "NaN"]))
    script = """
set title "One link's window open/close while the policy holds N prefixes"
set logscale xy
set xlabel "provider prefixes N"
set ylabel "latency (ms)"
set key top left
set grid
plot 'window.dat' using 1:3 with linespoints lw 2 title "open, edge p99 (advance + update)", \\
     '' using 1:5 with linespoints lw 2 title "close, edge p99", \\
     '' using 1:2 with linespoints dt 2 title "open, edge p50", \\
     '' using 1:6 with linespoints dt 3 title "open, netlink only p99", \\
     '' using 1:7 with linespoints dt 3 title "close, netlink only p99", \\
     '' using 1:8 with linespoints lw 2 title "baseline: nft -f reload of the ruleset", \\
     2 with lines lc rgb "black" dt 4 title "target: p99 2 ms"
"""
    r.charts.append(("window", script, {"window.dat": "\n".join(data) + "\n"}))
    r.w("![window open/close latency vs N](CHARTS/window.png)")
    r.w("")
    section_commands(r, cmds, "window", "Commands (one per size)")
    profiles = sorted((int(f[6:-4]), f) for f in os.listdir(os.path.join(out, "window"))
                      if f.startswith("perf-n") and f.endswith(".txt"))
    for n, f in profiles:
        with open(os.path.join(out, "window", f), encoding="utf-8") as fh:
            top = [line.rstrip() for line in fh if line.strip()][:15]
        if top:
            r.w(f"Profile of the toggles at N = {n:,} (`perf record -a -g` of "
                f"`drawbridge-window-bench --commits 0`, all CPUs; top symbols by self time; "
                f"`[k]` is the kernel):")
            r.w("")
            r.w("```")
            r.w("\n".join(top))
            r.w("```")
            r.w("")


def packet_section(r, out, cmds):
    rows = read_tsv(os.path.join(out, "packet", "results.tsv"))
    if not rows:
        return
    params = read_kv(os.path.join(out, "packet", "params.txt"))
    tput = defaultdict(list)
    cps = defaultdict(list)
    for row in rows:
        tput[row["config"]].append(float(row["throughput_gbps"]))
        cps[row["config"]].append(float(row["connections_per_s"]))
        r.numbers["packet"] += 2
    n = int(params.get("n", "0"))
    ipt_rules = int(params.get("iptables_rules", "0"))

    def sp(v, unit, fmt):
        if not v:
            return "–"
        s = f"{fmt.format(med(v))} {unit}"
        return s + (f" ({fmt.format(min(v))}–{fmt.format(max(v))})" if len(v) > 1 else "")

    ref_t, ref_c = med(tput["none"]), med(cps["none"])
    r.w("### 3. Packet path")
    r.w("")
    r.w(f"TCP through the lab gateway (`vm/netns-lab.sh`: msp → gw → lan, veth pairs), from an approved "
        f"provider address (203.0.113.2) to a server (10.20.0.10): iperf3 throughput on tcp/5900 "
        f"({params.get('seconds', '?')} s per run) and the connection rate of a connect/reset "
        f"loop on tcp/8040, with gw holding nothing, the drawbridge policy of N = {n:,} prefixes "
        f"(client added to provider msp-a), or the naive linear iptables ruleset "
        f"({ipt_rules:,} ACCEPT rules, N = {params.get('iptables_n', '?')}; the client's rules "
        f"last, as on a list that grows; an `ESTABLISHED,RELATED` accept first, as people write "
        f"it). The three alternate in order, repeat after repeat ({params.get('repeats', '?')}); "
        "median (min–max). The client, the server and the forwarding share the 2 vCPUs.")
    r.w("")
    r.w("| gateway holds | throughput | % of no table | connections/s | % of no table |")
    r.w("|---|---:|---:|---:|---:|")
    names = {"none": "no table", "drawbridge": f"drawbridge, N = {n:,}",
             "iptables": f"iptables, {ipt_rules:,} rules (linear)"}
    for c in ("none", "drawbridge", "iptables"):
        if not tput.get(c):
            continue
        tp = f"{100 * med(tput[c]) / ref_t:.0f} %" if ref_t else "–"
        cp = f"{100 * med(cps[c]) / ref_c:.0f} %" if ref_c else "–"
        r.w(f"| {names[c]} | {sp(tput[c], 'Gbit/s', '{:.2f}')} | {tp} | "
            f"{sp(cps[c], '/s', '{:,.0f}')} | {cp} |")
    r.w("")
    if ref_t and tput.get("drawbridge"):
        share = med(tput["drawbridge"]) / ref_t
        ok = share >= 0.95
        r.w(f"**Target ≥ 95 % of the no-table throughput: {verdict(ok)}** ({100 * share:.0f} %).")
        r.summary.append(("packet", f"TCP throughput, N = {n:,}",
                          f"{med(tput['drawbridge']):.2f} Gbit/s ({100 * share:.0f} %)",
                          f"{ref_t:.2f} Gbit/s (no table)", "≥ 95 %", verdict(ok)))
    r.w("")
    data = []
    for i, c in enumerate(("none", "drawbridge", "iptables")):
        if tput.get(c):
            data.append(f'{i} "{names[c]}" {med(tput[c])} {min(tput[c])} {max(tput[c])} '
                        f"{med(cps[c])} {min(cps[c])} {max(cps[c])}")
    script = """
set multiplot layout 1,2 title "Packet path through the gateway (median, min-max bars)"
set style fill solid 0.5
set boxwidth 0.6
set grid ytics
set yrange [0:*]
set xtics rotate by -20
set ylabel "Gbit/s"
set title "TCP throughput (iperf3)"
plot 'packet.dat' using 1:3:xtic(2) with boxes notitle, '' using 1:3:4:5 with yerrorbars lc rgb "black" notitle
set ylabel "connections/s"
set title "connection rate"
plot 'packet.dat' using 1:6:xtic(2) with boxes notitle, '' using 1:6:7:8 with yerrorbars lc rgb "black" notitle
unset multiplot
"""
    r.charts.append(("packet", script, {"packet.dat": "\n".join(data) + "\n"}))
    r.w("![packet path](CHARTS/packet.png)")
    r.w("")
    section_commands(r, cmds, "packet")
    for c in ("drawbridge", "iptables"):
        path = os.path.join(out, "packet", f"perf-{c}.txt")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                top = [line.rstrip() for line in fh if line.strip()][:15]
            if top:
                r.w(f"Profile of one more iperf3 run with the {names[c]} (`perf record -a -g`, "
                    "all CPUs, only iperf3 and ksoftirqd: client, server and the forwarding in "
                    "softirq; top symbols by self time, as shares of all samples):")
                r.w("")
                r.w("```")
                r.w("\n".join(top))
                r.w("```")
                r.w("")


def footprint_section(r, out, cmds, fanout):
    d = read_json(os.path.join(out, "footprint", "footprint.json"))
    if not d and not fanout:
        return
    r.w("### 6. Footprint")
    r.w("")
    if d:
        pol = os.path.basename(d["policy"])
        mem = d["memory_kib"]
        rss = [m["VmRSS"] / 1024 for m in mem]
        hwm = [m["VmHWM"] / 1024 for m in mem]
        r.numbers["footprint"] += len(d["cold_ms"]) + len(rss)
        r.w(f"`drawbridge-enforcer run` with the policy `{pol}` signed into a bundle "
            f"({d['bundle_bytes']:,} bytes) that its config names (it verifies the signature at "
            "start, as with the bundle it accepted last), with the state directory of an earlier "
            "run, as on a gateway that rebooted. Timed from the fork that execs it inside a fresh "
            "namespace (no table in the kernel): **protected** = its `STATUS=closed` "
            "notification, sent once it has committed what the last applied policy closes "
            "first (its inbound linked services and guarded ports, closed to everyone, before "
            "the bundle is even verified); **policy in force** = READY=1, sent once the "
            "policy's table is committed (checked: the table is in the kernel when it "
            "arrives). The baseline is a boot script's `nft -f` of the rendered ruleset, started "
            "the same way. Cold and nft alternate; median (min–max).")
        r.w("")
        r.w("| measure | drawbridge | baseline | target | |")
        r.w("|---|---:|---:|---:|---|")
        cold_ok = med(d["cold_ms"]) < 100
        closed = d.get("closed_ms") or []
        closed_ok = bool(closed) and med(closed) < 100
        if closed:
            r.w(f"| start → protected (closed), empty namespace | {spread(closed)} | – | "
                f"< 100 ms | {verdict(closed_ok)} |")
        r.w(f"| start → policy in force (READY=1), empty namespace | {spread(d['cold_ms'])} | "
            f"{spread(d['nft_ms'])} (nft -f) | < 100 ms | {verdict(cold_ok)} |")
        r.w(f"| restart → ready, table already in place | {spread(d['warm_ms'])} | – | – | |")
        rss_ok = max(rss) < 32
        r.w(f"| RSS after start (VmRSS) | {med(rss):.1f} MiB | – | < 32 MiB | {verdict(rss_ok)} |")
        r.w(f"| peak RSS during start (VmHWM) | {med(hwm):.1f} MiB | – | – | |")
        if closed:
            r.summary.append(("footprint", "start → protected (closed)", spread(closed), "–",
                              "< 100 ms", verdict(closed_ok)))
        r.summary.append(("footprint", "start → policy in force", spread(d["cold_ms"]),
                          f"{ms(med(d['nft_ms']))} (nft -f)", "< 100 ms", verdict(cold_ok)))
        r.summary.append(("footprint", "enforcer RSS", f"{med(rss):.1f} MiB "
                          f"(peak {med(hwm):.1f})", "–", "< 32 MiB", verdict(rss_ok)))
        idle = d.get("idle")
        if idle:
            idle_ok = idle["cpu_percent"] < 0.1
            r.w(f"| idle CPU over {idle['seconds']:.0f} s | {idle['cpu_percent']:.3f} % "
                f"({idle['cpu_seconds'] * 1000:.0f} ms of CPU, {idle['context_switches']} "
                f"context switches = {idle['wakeups_per_second']:.2f} wake-ups/s) | – | ~0 | "
                f"{verdict(idle_ok)} |")
            r.summary.append(("footprint", "idle CPU", f"{idle['cpu_percent']:.3f} %", "–", "~0",
                              verdict(idle_ok)))
    if fanout:
        big = max(fanout["results"], key=lambda x: x["n"])
        r.w(f"| controller RSS per connected enforcer (from fan-out, N = {big['n']:,}) | "
            f"{big['rss_per_enforcer_kib']:.1f} KiB | – | – | |")
        r.numbers["footprint"] += 1
    r.w("")
    if d:
        section_commands(r, cmds, "footprint")


def fanout_section(r, out, cmds):
    d = read_json(os.path.join(out, "fanout.json"))
    if not d:
        return None
    res = sorted(d["results"], key=lambda x: x["n"])
    r.w("### 5. Fan-out: publish → applied acknowledgement")
    r.w("")
    r.w("The real `drawbridge-controller` with N simulated enforcers connected over CURVE on "
        "loopback (`drawbridge-fanout-bench`; they acknowledge at once, without kernel work). "
        "Percentiles over all enforcers × publications. Method: "
        "[Fan-out](#fan-out-publish--applied-acknowledgement) below.")
    r.w("")
    r.w("| N connected | connect all | publish → ack p50 / p99 / max | controller RSS idle → "
        "connected | per enforcer |")
    r.w("|---:|---:|---:|---:|---:|")
    for x in res:
        a = x["ack_recorded_ms"]
        r.numbers["fanout"] += a["samples"]
        r.w(f"| {x['n']:,} | {ms(x['connect_ms'])} | {ms(a['p50'])} / **{ms(a['p99'])}** / "
            f"{ms(a['max'])} | {x['rss_idle_kib'] / 1024:.1f} → "
            f"{x['rss_connected_kib'] / 1024:.1f} MiB | {x['rss_per_enforcer_kib']:.1f} KiB |")
    r.w("")
    big = res[-1]
    ok = big["ack_recorded_ms"]["p99"] < 1000
    if big["n"] >= 1000:
        r.w(f"**Target p99 < 1 s at 1,000 enforcers: {verdict(ok)}** "
            f"({ms(big['ack_recorded_ms']['p99'])}).")
        r.summary.append(("fanout", "publish → ack p99, 1,000 enforcers",
                          ms(big["ack_recorded_ms"]["p99"]), "–", "< 1 s", verdict(ok)))
    else:
        r.w(f"(Largest N in this run: {big['n']}; the target is for 1,000.)")
    r.w("")
    data = [f"{x['n']} {x['ack_recorded_ms']['p50']} {x['ack_recorded_ms']['p99']} "
            f"{x['ack_recorded_ms']['max']}" for x in res]
    script = """
set title "Fan-out: publish to applied-ack latency"
set logscale xy
set xlabel "connected enforcers"
set ylabel "latency (ms)"
set key top left
set grid
plot 'fanout.dat' using 1:2 with linespoints lw 2 title "p50", \\
     '' using 1:3 with linespoints lw 2 title "p99", \\
     '' using 1:4 with linespoints dt 2 title "max", \\
     1000 with lines lc rgb "black" dt 4 title "target: p99 1 s at 1,000"
"""
    r.charts.append(("fanout", script, {"fanout.dat": "\n".join(data) + "\n"}))
    r.w("![fan-out latency](CHARTS/fanout.png)")
    r.w("")
    section_commands(r, cmds, "fanout")
    return d


def logging_section(r, out, cmds):
    rows = read_tsv(os.path.join(out, "logging", "results.tsv"))
    if not rows:
        return
    r.w("### 4. Violation logging")
    r.w("")
    daemon = [x for x in rows if x["method"] == "daemon"]
    unacc = sum(int(x["unaccounted"] or 0) for x in daemon)
    best = 0.0
    for x in daemon:
        try:
            done = (int(x["received"]) + int(x["lost"])) / float(x["flood_s"])
        except (ValueError, ZeroDivisionError):
            continue
        best = max(best, done)
        r.numbers["logging"] += 1
    ok = unacc == 0 and best >= 100000
    r.w(f"`bench/log_bench.sh` ({len(daemon)} daemon runs, each beside a baseline run with the "
        "table but no daemon). Its own tables follow unchanged; its method and the profile are "
        "in [Violation logging](#violation-logging) below.")
    r.w("")
    r.w(f"**Target ≥ 100,000 denied packets/s received or precisely counted as lost: "
        f"{verdict(ok)}** (best run: {best:,.0f} packets/s received or counted lost; "
        f"unaccounted packets over all runs: {unacc}).")
    r.summary.append(("logging", "denied pkt/s received or counted lost", f"{best:,.0f}/s, "
                      f"{unacc} unaccounted", "kernel counter", "≥ 100,000/s, 0 unaccounted",
                      verdict(ok)))
    r.w("")
    summary = os.path.join(out, "logging", "summary.md")
    if os.path.exists(summary):
        with open(summary, encoding="utf-8") as f:
            text = f.read().strip()
        # Its headings one level down, under this section.
        r.w("\n".join("#" + line if line.startswith("#") else line for line in text.split("\n")))
        r.w("")
    section_commands(r, cmds, "logging")


def micro_section(r, out, cmds):
    d = read_json(os.path.join(out, "micro.json"))
    if not d:
        return
    r.w("### Micro-benchmarks (Google Benchmark)")
    r.w("")
    r.w("`drawbridge_microbench`: the pure stages in process, no I/O. The policies have "
        "gen_policy.py's shape (generated in the binary). Time per call (CPU time, which "
        "the other sessions on the machine disturb less than wall time).")
    r.w("")
    r.w("| benchmark | N / format | time per call | per prefix or event |")
    r.w("|---|---:|---:|---:|")
    for b in d.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b.get("time_unit", "ns")]
        t = b["cpu_time"] * unit
        name, _, arg = b["name"].partition("/")
        label = b.get("label") or arg
        per = ""
        if b.get("items_per_second"):
            per = f"{1e9 / b['items_per_second']:.0f} ns"
        r.numbers["micro"] += 1
        r.w(f"| `{name}` | {label} | {ms(t)} | {per} |")
    r.w("")
    section_commands(r, cmds, "micro")


# ---------------------------------------------------------------- charts and output
def render_charts(r, chart_dir):
    os.makedirs(chart_dir, exist_ok=True)
    made = []
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found (apt-get install gnuplot-nox); no charts",
              file=sys.stderr)
        return made
    for name, script, data in r.charts:
        for fname, text in data.items():
            with open(os.path.join(chart_dir, fname), "w", encoding="utf-8") as f:
                f.write(text)
        full = (f"set terminal pngcairo size 1000,560 font 'sans,10'\n"
                f"set output '{name}.png'\n" + script)
        if subprocess.run(["gnuplot"], input=full, text=True, cwd=chart_dir,
                          capture_output=True).returncode == 0:
            made.append(name)
        else:
            # pngcairo needs gnuplot with cairo; the plain png terminal (libgd) is in gnuplot-nox.
            full = full.replace("pngcairo size 1000,560 font 'sans,10'", "png size 1000,560")
            p = subprocess.run(["gnuplot"], input=full, text=True, cwd=chart_dir,
                               capture_output=True)
            if p.returncode == 0:
                made.append(name)
            else:
                print(f"report: gnuplot failed for {name}: {p.stderr.strip()}", file=sys.stderr)
    return made


def build(out, workloads, quick):
    r = Report()
    m = read_kv(os.path.join(out, "machine.txt"))
    cmds = commands_of(out)
    window = {}
    wdir = os.path.join(out, "window")
    if os.path.isdir(wdir):
        for f in os.listdir(wdir):
            if f.startswith("n") and f.endswith(".json"):
                d = read_json(os.path.join(wdir, f))
                if d:
                    window[int(f[1:-5])] = d
    loads = []
    for path, col in (("apply/results.tsv", "load1"), ("packet/results.tsv", "load1"),
                      ("logging/results.tsv", "load1")):
        for row in read_tsv(os.path.join(out, path)):
            try:
                loads.append(float(row[col]))
            except (KeyError, ValueError):
                pass

    r.w("### Machine and run")
    r.w("")
    r.w("| | |")
    r.w("|---|---|")
    for k in ("date", "cpu", "cores", "memory", "kernel", "hypervisor", "nft", "iptables",
              "iperf3", "compiler", "build", "source", "mode", "duration"):
        if k in m:
            r.w(f"| {k} | {m[k]} |")
    r.w(f"| load average (1, 5, 15 min) | at start {m.get('load average at start', '?')}; at end "
        f"{m.get('load average at end', '?')}" +
        (f"; 1-min load during the measurements {min(loads):.1f}–{max(loads):.1f}" if loads
         else "") + " |")
    r.w("")
    busy = loads and max(loads) > 1.5
    if busy:
        r.w(f"**The machine was busy** (1-minute load up to {max(loads):.1f} on {m.get('cores', '?')}"
            " cores: other sessions were compiling and running VMs). Whole-process and packet "
            "timings are then slower and wider than on an idle machine; read the medians as "
            "accurate only to within the min–max shown. The ratios of alternated A/B runs are "
            "more robust than the absolute times, and tail percentiles (p99) the least.")
        r.w("")
    apply_wall = apply_section(r, out, cmds, window) if "apply" in workloads else None
    if "window" in workloads:
        window_section(r, out, cmds, window, apply_wall)
    if "packet" in workloads:
        packet_section(r, out, cmds)
    if "logging" in workloads:
        logging_section(r, out, cmds)
    fanout = fanout_section(r, out, cmds) if "fanout" in workloads else None
    if "footprint" in workloads or fanout:
        footprint_section(r, out, cmds, fanout if "footprint" in workloads else None)
    if "micro" in workloads:
        micro_section(r, out, cmds)
    head = []
    head.append(f"Generated by `bench/run.sh{' --quick' if quick else ''}` on {m.get('date', '?')}"
                f" ({m.get('source', '?')}, {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
                f"kernel {m.get('kernel', '?')}). Every comparison below was measured side by "
                "side in this run.")
    head.append("")
    head.append("| workload | measure | drawbridge | baseline (same run) | target | |")
    head.append("|---|---|---:|---:|---:|---|")
    for row in r.summary:
        head.append("| " + " | ".join(row) + " |")
    head.append("")
    return r, head


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--workloads", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--docs")
    ap.add_argument("--save")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    global QUICK
    QUICK = args.quick
    workloads = args.workloads.replace(",", " ").split()

    if args.save:
        os.makedirs(args.save, exist_ok=True)
        keep = ["machine.txt", "commands.txt", "micro.json", "fanout.json", "report.md",
                "apply/results.tsv", "apply/summary.md", "apply/machine.txt",
                "packet/results.tsv", "packet/params.txt", "packet/perf-drawbridge.txt",
                "packet/perf-iptables.txt", "footprint/footprint.json",
                "logging/results.tsv", "logging/summary.md", "logging/machine.txt"]
        keep += [os.path.join("window", f) for f in sorted(os.listdir(os.path.join(out, "window")))
                 if f.endswith(".json") or f.startswith("perf-")] if os.path.isdir(os.path.join(out, "window")) else []
        keep += [os.path.join("apply", f) for f in sorted(os.listdir(os.path.join(out, "apply")))
                 if f.startswith("perf-") and f.endswith(".txt")] \
            if os.path.isdir(os.path.join(out, "apply")) else []
        for k in keep:
            src = os.path.join(out, k)
            if os.path.exists(src):
                dst = os.path.join(args.save, k.replace("/", "-"))
                shutil.copyfile(src, dst)
        return 0

    r, head = build(out, workloads, args.quick)
    # The table on the terminal.
    print()
    print("\n".join(head))
    missing = [w for w in workloads if r.numbers[w] == 0]
    for w in workloads:
        print(f"  {w}: {r.numbers[w]} numbers")

    chart_dir = os.path.join(out, "charts")
    made = render_charts(r, chart_dir)
    body = "\n".join(head + r.md)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(body.replace("CHARTS/", "charts/") + "\n")
    print(f"report: {os.path.join(out, 'report.md')}; charts: {', '.join(made) or 'none'}")

    if args.docs:
        docs = os.path.abspath(args.docs)
        dest = os.path.join(os.path.dirname(docs), "performance")
        os.makedirs(dest, exist_ok=True)
        for name in made:
            shutil.copyfile(os.path.join(chart_dir, name + ".png"),
                            os.path.join(dest, name + ".png"))
        block = BEGIN + "\n" + body.replace("CHARTS/", "performance/") + "\n" + END
        old = ""
        if os.path.exists(docs):
            with open(docs, encoding="utf-8") as f:
                old = f.read()
        if BEGIN in old and END in old:
            new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
        else:
            new = "# Performance\n\n" + block + "\n\n" + old
        with open(docs, "w", encoding="utf-8") as f:
            f.write(new)
        print(f"report: wrote {docs} and {dest}/")
    if missing:
        print(f"report: no numbers from: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
