#!/usr/bin/env python3
"""TCP connection rate through the lab gateway (bench/packet_bench.sh runs both ends).

Usage:
  connrate.py serve PORT                 accept and close connections until killed
  connrate.py client HOST PORT SECONDS [SOURCE]
                                         connect/close as fast as possible for SECONDS, from
                                         SOURCE if given; prints: connections failures seconds

Each client connection is a full handshake through the gateway and closes with a reset
(SO_LINGER 0), so no TIME_WAIT piles up and the rate does not drift over the run. Only a
connection's first packet walks a firewall's rule list, so this is where a linear ruleset's
cost shows (throughput hardly sees it once conntrack knows the flow). Standard library only.
"""

import socket
import struct
import sys
import time


def serve(port: int) -> int:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(4096)
    while True:
        conn, _ = srv.accept()
        conn.close()


def client(host: str, port: int, seconds: float, source: str = "") -> int:
    linger = struct.pack("ii", 1, 0)
    ok = failed = 0
    end = time.monotonic() + seconds
    start = time.monotonic()
    while time.monotonic() < end:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.settimeout(1.0)
        if source:
            s.bind((source, 0))
        try:
            s.connect((host, port))
            ok += 1
        except OSError:
            failed += 1
        finally:
            s.close()
    print(ok, failed, f"{time.monotonic() - start:.3f}")
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        return serve(int(sys.argv[2]))
    if len(sys.argv) in (5, 6) and sys.argv[1] == "client":
        return client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]),
                      sys.argv[5] if len(sys.argv) == 6 else "")
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
