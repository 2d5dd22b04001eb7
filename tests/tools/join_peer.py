#!/usr/bin/python3
"""A join client built on aioice (python3-aioice), a STUN implementation we
did not write, for tests/e2e/e2e_join.sh against the real relay.

  join_peer.py ask BIND_IP RELAY_IP PORT TOKEN PASSWORD [WAIT_S [leave]]
      (either family: IPv6 when the addresses are, e.g. 2001:db8::5)
      Sends one Binding Request (USERNAME = TOKEN, MESSAGE-INTEGRITY and
      FINGERPRINT from aioice's Message.add_message_integrity) from a socket
      bound to BIND_IP (port chosen by the kernel) to RELAY_IP:PORT and waits
      up to WAIT_S (default 1.5) for the answer. The relay answers a first
      request 438 with a STENTOR-COOKIE (docs/join.md "The cookie"): the
      request is sent once more with it, and that answer counts. The answer is parsed with
      aioice.stun.parse_message(data, integrity_key=PASSWORD), which checks
      FINGERPRINT and MESSAGE-INTEGRITY; both must be present. Prints one line:
        "ok <class> <mapped ip:port> <own ip:port>"   (verified; mapped = own)
        "silent <own ip:port>"                         (nothing came back)
        "fail <reason>"
      Exits 0 after "ok" whose XOR-MAPPED-ADDRESS is the socket's own address,
      or after "silent"; 1 otherwise. With a seventh argument "leave", a
      verified join is followed by a second request from the same socket
      with STENTOR-LEAVE, whose answer is checked the same way; the line
      then ends with " left".

  join_peer.py count BIND_IP PORT SECONDS OUT
      Receives on BIND_IP:PORT for SECONDS and writes one line per datagram
      to OUT: "<unix time> <length>". The first line, "ready", is written
      once the socket is bound.
"""
import errno
import ipaddress
import socket
import sys
import time

from aioice import stun


# STENTOR-LEAVE (4 zero bytes) and STENTOR-COOKIE (16 opaque bytes),
# registered the way docs/join.md shows.
stun.ATTRIBUTES_BY_NAME["STENTOR-LEAVE"] = stun.ATTRIBUTES_BY_TYPE[0xC001] = \
    (0xC001, "STENTOR-LEAVE", stun.pack_unsigned, stun.unpack_unsigned)
stun.ATTRIBUTES_BY_NAME["STENTOR-COOKIE"] = stun.ATTRIBUTES_BY_TYPE[0xC003] = \
    (0xC003, "STENTOR-COOKIE", stun.pack_bytes, stun.unpack_bytes)


def family(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def ask(bind_ip, relay_ip, port, token, password, wait_s, then_leave=False):
    s = socket.socket(family(bind_ip), socket.SOCK_DGRAM)
    s.bind((bind_ip, 0))
    line, cookie = exchange(s, relay_ip, port, token, password, wait_s, False, None)
    if line.startswith("challenged"):
        line, cookie = exchange(s, relay_ip, port, token, password, wait_s, False, cookie)
    if line.startswith("ok ") and then_leave:
        second, _ = exchange(s, relay_ip, port, token, password, wait_s, True, cookie)
        line = line + " left" if second.startswith("ok ") else "fail leave: " + second
    print(line)
    own = s.getsockname()
    return 0 if line.startswith("silent") or (line.startswith("ok ") and line.split()[2] == f"{own[0]}:{own[1]}") else 1


def exchange(s, relay_ip, port, token, password, wait_s, leave, cookie):
    """One request and its answer: (line, the answer's STENTOR-COOKIE or None);
    line "challenged" for a verified 438 that brought a cookie."""
    line, resp = exchange_once(s, relay_ip, port, token, password, wait_s, leave, cookie)
    got = resp.attributes.get("STENTOR-COOKIE") if resp is not None else None
    return line, got


def exchange_once(s, relay_ip, port, token, password, wait_s, leave, cookie):
    own = s.getsockname()
    req = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    req.attributes["USERNAME"] = token
    if cookie is not None:
        req.attributes["STENTOR-COOKIE"] = cookie
    if leave:
        req.attributes["STENTOR-LEAVE"] = 0
    req.add_message_integrity(password.encode())
    s.sendto(bytes(req), (relay_ip, port))
    # Once joined the relay's audio comes from the same port: the answer is
    # the first STUN datagram (first byte 0..3, RFC 7983); RTP is skipped.
    end = time.monotonic() + wait_s
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return f"silent {own[0]}:{own[1]}", None
        s.settimeout(left)
        try:
            data, frm = s.recvfrom(2048)
        except socket.timeout:
            return f"silent {own[0]}:{own[1]}", None
        if data and data[0] < 4:
            break
    if ipaddress.ip_address(frm[0]) != ipaddress.ip_address(relay_ip) or frm[1] != port:
        return f"fail answer from {frm[0]}:{frm[1]}, not the session port", None
    try:
        resp = stun.parse_message(data, integrity_key=password.encode())
    except ValueError as e:
        return f"fail aioice refused the answer: {e}", None
    if resp.transaction_id != req.transaction_id:
        return "fail transaction id not echoed", None
    for a in ("MESSAGE-INTEGRITY", "FINGERPRINT", "STENTOR-COOKIE"):
        if a not in resp.attributes:
            return f"fail answer without {a}", None
    if resp.message_class != stun.Class.RESPONSE:
        code = resp.attributes.get("ERROR-CODE")
        if code is not None and code[0] == 438 and cookie is None:
            return "challenged", resp
        return f"fail class {resp.message_class.name}: {code}", None
    if "XOR-MAPPED-ADDRESS" not in resp.attributes:
        return "fail answer without XOR-MAPPED-ADDRESS", None
    mapped = resp.attributes["XOR-MAPPED-ADDRESS"]
    return f"ok {resp.message_class.name} {mapped[0]}:{mapped[1]} {own[0]}:{own[1]}", resp


def count(bind_ip, port, seconds, out):
    s = socket.socket(family(bind_ip), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The port may still be held for a moment by a process just killed
    # (stentor-listener's io_uring lets go of its sockets asynchronously).
    give_up = time.monotonic() + 2.0
    while True:
        try:
            s.bind((bind_ip, port))
            break
        except OSError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() > give_up:
                raise
            time.sleep(0.02)
    end = time.monotonic() + seconds
    with open(out, "w", buffering=1) as f:
        f.write("ready\n")
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                data = s.recv(4096)
            except socket.timeout:
                break
            f.write(f"{time.time():.3f} {len(data)}\n")
    return 0


def main(argv):
    if len(argv) in (7, 8, 9) and argv[1] == "ask":
        wait_s = float(argv[7]) if len(argv) > 7 else 1.5
        if len(argv) == 9 and argv[8] != "leave":
            print(__doc__, file=sys.stderr)
            return 2
        return ask(argv[2], argv[3], int(argv[4]), argv[5], argv[6], wait_s, len(argv) == 9)
    if len(argv) == 6 and argv[1] == "count":
        return count(argv[2], int(argv[3]), float(argv[4]), argv[5])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
