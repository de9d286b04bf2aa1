#!/usr/bin/env python3
"""Run one command and print "WALL_MS USER_MS SYS_MS RC" for it (helper of apply_bench.sh).

Usage: run_timed.py [--stdout FILE] [--stderr FILE] [--timeout SEC] -- COMMAND [ARG...]

The wall time is taken with a monotonic clock from just before posix_spawn(3) to just after the child
is reaped, so the interpreter's own start-up is not inside it. USER_MS and SYS_MS are the
child's CPU times from wait4(2). The kernel processes an nftables batch inside sendmsg(2), in
the sender's context, so SYS_MS is essentially the in-kernel validation and commit, and
USER_MS the userspace work (parse, compile, message building). RC is the child's exit status,
124 if it was killed after --timeout seconds, 128+N if signal N ended it. Standard library only.
"""

import argparse
import os
import signal
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stdout", default=os.devnull)
    ap.add_argument("--stderr", default=os.devnull)
    ap.add_argument("--timeout", type=float, default=0.0, help="seconds; 0 = none")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command")
    out = os.open(args.stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(args.stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    timed_out = False
    start = time.perf_counter_ns()
    # posix_spawn (vfork-style in glibc) keeps the launch overhead inside the measurement small.
    try:
        pid = os.posix_spawnp(cmd[0], cmd, os.environ, setsid=True,  # own group: timeouts kill all
                              file_actions=[(os.POSIX_SPAWN_DUP2, out, 1),
                                            (os.POSIX_SPAWN_DUP2, err, 2)])
    except OSError as e:
        os.write(err, f"run_timed: cannot run {cmd[0]}: {e}\n".encode())
        print("0 0 0 127")
        return 0

    def on_alarm(_sig, _frame):
        nonlocal timed_out
        timed_out = True
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    if args.timeout > 0:
        signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
    _, status, usage = os.wait4(pid, 0)  # retried on EINTR (PEP 475)
    end = time.perf_counter_ns()
    signal.setitimer(signal.ITIMER_REAL, 0)

    rc = os.waitstatus_to_exitcode(status)
    if rc < 0:
        rc = 128 - rc
    if timed_out:
        rc = 124
    print(f"{(end - start) / 1e6:.3f} {usage.ru_utime * 1e3:.1f} {usage.ru_stime * 1e3:.1f} {rc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
