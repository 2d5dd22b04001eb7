#!/usr/bin/env python3
"""The systemd end of sd_notify, for tests: binds the AF_UNIX datagram
socket that NOTIFY_SOCKET names and prints every datagram it receives as
one line: "<unix time> <fields joined by |>" (e.g. "1700000000.123
READY=1|STATUS=ready: ..."), flushing each. Stops after --seconds.

    notify_peer.py /tmp/x/notify.sock --seconds 30 > notify.log &
    NOTIFY_SOCKET=/tmp/x/notify.sock WATCHDOG_USEC=1000000 stentord ...

systemd itself cannot run in the test machines (no systemd as PID 1), so
tests check stentord's side of the protocol against this peer
(docs/operations.md, "Testing the unit").
"""
import argparse
import os
import socket
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--seconds", type=float, default=60)
    a = ap.parse_args()
    try:
        os.unlink(a.path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(a.path)
    print(f"{time.time():.3f} LISTENING", flush=True)
    end = time.monotonic() + a.seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        fields = data.decode("utf-8", "replace").strip().split("\n")
        print(f"{time.time():.3f} {'|'.join(fields)}", flush=True)
    s.close()
    os.unlink(a.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
