#!/usr/bin/env python3
"""Enforcer footprint: start → protected, RSS and idle CPU of `drawbridge-enforcer run`.

Usage (as root; bench/run.sh calls it):
  footprint.py --enforcer BIN --controller BIN --policy POLICY.toml --out DIR
               [--repeats K] [--idle-seconds S] [--settle S]

Setup, in DIR: an Ed25519 signing key (`drawbridge-controller keygen`), the policy signed into a
bundle (`sign`), a trust file naming the key and site "bench", the nft text `render` gives, and
an enforcer config whose `policy` is the signed bundle (the daemon verifies it at start, as it
does with the bundle it accepted last).

The daemons share one state directory, primed by a first run, as on a gateway that rebooted:
it holds what the last applied policy closes first on a cold start (<table>.closed.json).

Each repeat, in alternating order (A/B/C, then C/B/A):
  cold     `run` in a fresh network namespace (the kernel holds no table, as after a reboot):
           from the enforcer's exec to its STATUS=closed notification (the last policy's linked
           services and guarded ports are closed to everyone: "protected") and to its READY=1
           (sd_notify, sent once the policy's table is committed: "policy in force"); then RSS
           (VmRSS, peak VmHWM) and, in the first repeat only, CPU time and context switches over
           --idle-seconds of idling (a daemon without polling loops sleeps on its fds and timer).
  warm     the daemon restarted in the same namespace with the table still in place (the
           reconcile path of a restart).
  nft      the baseline a boot script would use: `nft -f` of the rendered ruleset into a fresh
           namespace.
Namespaces are created with `ip netns add` under a prefix of this process and always deleted.
Writes DIR/footprint.json (raw samples) and prints one line per measurement.
"""

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL("libc.so.6", use_errno=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class Namespaces:
    """`ip netns add` under our own prefix; every one is deleted by close()."""

    def __init__(self):
        self.prefix = f"dbfoot-{os.getpid()}-"
        self.count = 0
        self.made = []

    def new(self):
        self.count += 1
        name = f"{self.prefix}{self.count}"
        run(["ip", "netns", "add", name])
        self.made.append(name)
        return name

    def delete(self, name):
        # The table first, synchronously: the kernel frees 100k elements before the next run.
        subprocess.run(["ip", "netns", "exec", name, "nft", "delete", "table", "inet", "drawbridge"],
                       capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.made.remove(name)

    def close(self):
        for name in list(self.made):
            self.delete(name)


def in_namespace(name):
    """Moves this process into the named network namespace (for what it spawns next)."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def task_cpu_and_switches(pid):
    """(utime+stime seconds, voluntary+involuntary context switches) over all threads."""
    ticks = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
        except FileNotFoundError:
            pass
    return cpu, switches


def memory_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[key] = int(line.split()[1])
    return out


def start_daemon(ns, enforcer, config, workdir, timeout=60.0):
    """Starts `run` inside ns; returns (process, exec→READY seconds, exec→STATUS=closed seconds
    or None when it sent none)."""
    path = os.path.join(workdir, f"notify-{os.getpid()}-{time.monotonic_ns()}.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(timeout)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    log = open(os.path.join(workdir, "daemon.log"), "ab")
    pid = os.fork()
    if pid == 0:  # the child enters the namespace and becomes the daemon: no wrapper in between
        try:
            in_namespace(ns)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            os.execve(enforcer, [enforcer, "run", "--config", config], env)
        finally:
            os._exit(127)
    t0 = time.perf_counter()
    elapsed = None
    closed = None
    try:
        while True:
            data = sock.recv(4096).decode(errors="replace")
            lines = data.split("\n")
            if closed is None and any(x.startswith("STATUS=closed") for x in lines):
                closed = time.perf_counter() - t0
            if "READY=1" in lines:
                elapsed = time.perf_counter() - t0
                break
    except socket.timeout:
        pass
    finally:
        sock.close()
        os.unlink(path)
        log.close()
    if elapsed is None:
        stop_daemon(pid)
        raise RuntimeError(f"the enforcer sent no READY=1 within {timeout:.0f} s; see "
                           f"{workdir}/daemon.log")
    return pid, elapsed, closed


def stop_daemon(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def table_exists(ns):
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "drawbridge"],
                          capture_output=True).returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--enforcer", required=True)
    ap.add_argument("--controller", required=True)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=0.5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("footprint: needs root (network namespaces)", file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    key = os.path.join(out, "bench-signing")
    if not os.path.exists(key):
        run([args.controller, "keygen", "--out", key])
    with open(key + ".pub") as f:
        pub = f.read().strip()
    bundle = os.path.join(out, "policy.bundle")
    run([args.controller, "sign", args.policy, "--key", key, "--out", bundle])
    trust = os.path.join(out, "trust.toml")
    with open(trust, "w") as f:
        f.write(f'site = "bench"\nprovider_keys = ["{pub}"]\n')
    rendered = os.path.join(out, "rendered.nft")
    with open(rendered, "w") as f:
        subprocess.run([args.enforcer, "render", args.policy], stdout=f, check=True)

    result = {"policy": args.policy, "bundle_bytes": os.path.getsize(bundle), "cold_ms": [],
              "closed_ms": [], "warm_ms": [], "nft_ms": [], "memory_kib": [], "idle": None}
    nss = Namespaces()

    def config_for(tag):
        state = os.path.join(out, f"state-{tag}")
        os.makedirs(state, exist_ok=True)
        path = os.path.join(out, f"enforcer-{tag}.toml")
        with open(path, "w") as f:
            f.write(f'policy = "{bundle}"\ntrust = "{trust}"\nstate_dir = "{state}"\n')
        return path

    config = config_for("gateway")

    def prime():
        ns = nss.new()
        pid, _, _ = start_daemon(ns, args.enforcer, config, out)
        stop_daemon(pid)
        nss.delete(ns)

    def cold_and_warm(rep):
        ns = nss.new()
        pid, cold, closed = start_daemon(ns, args.enforcer, config, out)
        if closed is None:
            raise RuntimeError("a cold start sent no STATUS=closed; see daemon.log")
        if not table_exists(ns):
            raise RuntimeError("READY=1 came but the table is not in the kernel")
        time.sleep(0.5)  # let start-up allocations settle before reading the RSS
        mem = memory_kib(pid)
        if rep == 0 and args.idle_seconds > 0:
            cpu0, sw0 = task_cpu_and_switches(pid)
            t0 = time.monotonic()
            time.sleep(args.idle_seconds)
            cpu1, sw1 = task_cpu_and_switches(pid)
            span = time.monotonic() - t0
            result["idle"] = {"seconds": span, "cpu_seconds": cpu1 - cpu0,
                              "cpu_percent": 100 * (cpu1 - cpu0) / span,
                              "context_switches": sw1 - sw0,
                              "wakeups_per_second": (sw1 - sw0) / span}
            print(f"  idle {span:.1f} s: CPU {cpu1 - cpu0:.3f} s, {sw1 - sw0} context switches")
        stop_daemon(pid)
        pid, warm, _ = start_daemon(ns, args.enforcer, config, out)
        stop_daemon(pid)
        nss.delete(ns)
        result["cold_ms"].append(cold * 1e3)
        result["closed_ms"].append(closed * 1e3)
        result["warm_ms"].append(warm * 1e3)
        result["memory_kib"].append(mem)
        print(f"  repeat {rep + 1}: cold start → closed {closed * 1e3:.1f} ms, → READY "
              f"{cold * 1e3:.1f} ms, restart onto the table "
              f"{warm * 1e3:.1f} ms, VmRSS {mem['VmRSS'] / 1024:.1f} MiB "
              f"(peak {mem['VmHWM'] / 1024:.1f} MiB)")
        time.sleep(args.settle)

    def nft_load(rep):
        ns = nss.new()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the same way in as the daemon: setns, then exec, no wrapper
            try:
                in_namespace(ns)
                os.execvp("nft", ["nft", "-f", rendered])
            finally:
                os._exit(127)
        _, status = os.waitpid(pid, 0)
        elapsed = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0 or not table_exists(ns):
            raise RuntimeError(f"nft -f {rendered} failed")
        result["nft_ms"].append(elapsed * 1e3)
        print(f"  repeat {rep + 1}: nft -f {elapsed * 1e3:.1f} ms")
        nss.delete(ns)
        time.sleep(args.settle)

    try:
        prime()
        for rep in range(args.repeats):
            if rep % 2 == 0:
                cold_and_warm(rep)
                nft_load(rep)
            else:
                nft_load(rep)
                cold_and_warm(rep)
    finally:
        nss.close()
    with open(os.path.join(out, "footprint.json"), "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
