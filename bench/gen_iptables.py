#!/usr/bin/env python3
"""Write the naive iptables ruleset people write by hand for bench/gen_policy.py's policy.

Usage: gen_iptables.py N [-o FILE] [--extra-source ADDR] [--count]

One ACCEPT rule per (source prefix, host, port) in the filter table's FORWARD chain, for what
gen_policy.py's policy has open now: links 1-18 (always open) with all 5 hosts, link 19 with the
2 hosts of its open grant, link 20 (closed) with none. Each link's sources are its provider's
prefixes. The chain starts with the usual `--ctstate ESTABLISHED,RELATED -j ACCEPT`, so only a
connection's first packet walks the list, and ends by dropping everything else to the hosts'
10.20.0.0/16. That is about 115 × N rules (N = 10,000: 1.15 million).

--extra-source ADDR adds one more approved source of provider msp-a (gen_policy.py
--extra-source gives the policy the same), with its rules appended at the very end of the chain,
as on a hand-kept list that grows: the worst case for a linear chain, which is what the packet
benchmark measures. --count prints only the number of ACCEPT rules (without the ESTABLISHED one). Standard library only.
"""

import argparse
import sys

import gen_policy as gp


def port_match(port: str) -> str:
    proto, ports = port.split("/")
    return f"-p {proto} -m {proto} --dport {ports.replace('-', ':')}"


def open_hosts(link: int) -> list:
    if link == 18:  # link-19: its grant opens two hosts
        return [gp.host(18, 0), gp.host(18, 1)]
    if link == 19:  # link-20: grant in 2098, closed now
        return []
    return [gp.host(link, j) for j in range(gp.HOSTS_PER_LINK)]


def rules(n: int, extra_source: str | None):
    providers = min(4, n)
    for link in range(gp.LINKS):
        k = link % providers
        sources = [gp.prefix(i) for i in range(k * n // providers, (k + 1) * n // providers)]
        for h in open_hosts(link):
            for port in gp.PORTS:
                m = port_match(port)
                for s in sources:
                    yield f"-A FORWARD -s {s} -d {h} {m} -j ACCEPT"
    if extra_source:
        for h in open_hosts(0):
            for port in gp.PORTS:
                yield f"-A FORWARD -s {extra_source} -d {h} {port_match(port)} -j ACCEPT"


def count(n: int, extra_source: str | None) -> int:
    """The number of ACCEPT rules rules() yields, without generating them."""
    providers = min(4, n)
    total = 0
    for link in range(gp.LINKS):
        k = link % providers
        sources = (k + 1) * n // providers - k * n // providers
        total += sources * len(open_hosts(link)) * len(gp.PORTS)
    if extra_source:
        total += len(open_hosts(0)) * len(gp.PORTS)
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, metavar="N")
    ap.add_argument("-o", "--output")
    ap.add_argument("--extra-source")
    ap.add_argument("--count", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.n <= gp.MAX_N:
        ap.error(f"N must be between 1 and {gp.MAX_N}")
    if args.count:
        print(count(args.n, args.extra_source))
        return 0
    out = open(args.output, "w", encoding="ascii") if args.output else sys.stdout
    try:
        out.write("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
        out.write("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n")
        for r in rules(args.n, args.extra_source):
            out.write(r + "\n")
        out.write("-A FORWARD -d 10.20.0.0/16 -j DROP\nCOMMIT\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
