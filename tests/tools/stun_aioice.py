#!/usr/bin/python3
"""Interop peer for Stentor's STUN codec: aioice (python3-aioice), a STUN/ICE
implementation we did not write. Driven by tests/unit/test_stun_interop.cc.

  stun_aioice.py requests TOKEN PASSWORD TXID_HEX
      Builds Binding Requests with aioice.stun.Message and prints one line
      per request: "<name> <hex>". MESSAGE-INTEGRITY and FINGERPRINT come
      from Message.add_message_integrity(password), as aioice's own ICE
      connectivity checks make them.

  stun_aioice.py verify PASSWORD < lines of "<name> <hex>"
      Parses each message with aioice.stun.parse_message(data,
      integrity_key=PASSWORD), which checks FINGERPRINT and MESSAGE-INTEGRITY
      when present, and requires both to be present. Prints one line per
      message: "<name> ok <class> <txid hex> <field>=<value>..." or
      "<name> fail <reason>".

  stun_aioice.py relay IP:PORT TOKEN PASSWORD LOG SECONDS [REFUSE]
      A stand-in for the relay's join path, built on aioice, to test
      stentor-listener --join against: answers each Binding Request whose
      USERNAME is TOKEN and whose MESSAGE-INTEGRITY verifies with a success
      response (XOR-MAPPED-ADDRESS = the source), drops anything else
      unanswered, and logs one line per datagram to LOG, "<monotonic s> <what>"
      after a first line "ready": "join <ip:port>",
      "leave <ip:port>", "refused <code>", "dropped <reason>",
      "challenged <ip:port>". Like the relay (docs/join.md "The cookie"),
      every answer carries a STENTOR-COOKIE made for the address it goes
      to, and a request other than a leave without that cookie is answered
      438 (logged "challenged", not counted as an answer below). REFUSE
      "429:700" answers the first request with 429 and STENTOR-RETRY-AFTER
      700 ms; "403" answers every request with 403. Exits after SECONDS.

Stentor's own attributes are registered in aioice's attribute tables, the
way a client in any language adds them (docs/join.md).
"""
import sys

from aioice import stun

# STENTOR-LEAVE (4 zero bytes), STENTOR-RETRY-AFTER (u32 ms) and
# STENTOR-COOKIE (16 opaque bytes), all comprehension-optional.
for entry in ((0xC001, "STENTOR-LEAVE", stun.pack_unsigned, stun.unpack_unsigned),
              (0xC002, "STENTOR-RETRY-AFTER", stun.pack_unsigned, stun.unpack_unsigned),
              (0xC003, "STENTOR-COOKIE", stun.pack_bytes, stun.unpack_bytes)):
    stun.ATTRIBUTES_BY_TYPE[entry[0]] = entry
    stun.ATTRIBUTES_BY_NAME[entry[1]] = entry


def request(txid, attrs, password):
    m = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST,
                     transaction_id=txid)
    for k, v in attrs:
        m.attributes[k] = v
    m.add_message_integrity(password.encode())
    return bytes(m)


def requests(token, password, txid_hex):
    txid = bytes.fromhex(txid_hex)
    rows = [
        ("join", [("USERNAME", token)]),
        ("leave", [("USERNAME", token), ("STENTOR-LEAVE", 0)]),
        # What aioice's Connection.check_start sends (RFC 8445 7.2.2), with
        # our token as the whole username.
        ("ice_check", [("PRIORITY", 1853824767), ("ICE-CONTROLLING", 0x0123456789ABCDEF),
                       ("USE-CANDIDATE", None), ("USERNAME", token)]),
        ("ice_controlled", [("PRIORITY", 1853824767), ("ICE-CONTROLLED", 42), ("USERNAME", token)]),
        ("software_odd_length", [("SOFTWARE", "aioice"), ("USERNAME", token)]),
        ("ice_username", [("USERNAME", token + ":abcd")]),
        ("wrong_password", [("USERNAME", token)]),
        ("no_username", [("PRIORITY", 1)]),
        ("realm", [("USERNAME", token), ("REALM", "example.org")]),
    ]
    for name, attrs in rows:
        key = password + "x" if name == "wrong_password" else password
        print(name, request(txid, attrs, key).hex())


def verify(password):
    for line in sys.stdin:
        if not line.strip():
            continue
        name, hexdata = line.split()
        try:
            m = stun.parse_message(bytes.fromhex(hexdata), integrity_key=password.encode())
            for required in ("MESSAGE-INTEGRITY", "FINGERPRINT"):
                if required not in m.attributes:
                    raise ValueError("no " + required)
            fields = [m.message_class.name, m.transaction_id.hex()]
            a = m.attributes
            if "XOR-MAPPED-ADDRESS" in a:
                fields.append("mapped=%s:%d" % a["XOR-MAPPED-ADDRESS"])
            if "ERROR-CODE" in a:
                code, reason = a["ERROR-CODE"]
                fields.append("error=%d" % code)
                fields.append("reason_len=%d" % len(reason.encode()))
            if "STENTOR-RETRY-AFTER" in a:
                fields.append("retry=%d" % a["STENTOR-RETRY-AFTER"])
            print(name, "ok", " ".join(fields))
        except Exception as e:  # noqa: BLE001 - every refusal is a result
            print(name, "fail", str(e).replace(" ", "_"))


def relay(bind, token, password, log_path, seconds, refuse):
    import hashlib
    import hmac
    import os
    import socket
    import time
    cookie_key = os.urandom(32)

    def cookie_of(addr):
        return hmac.new(cookie_key, ("%s:%d" % addr).encode(), hashlib.sha256).digest()[:16]

    ip, port = bind.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, int(port)))
    key = password.encode()
    code, retry = (refuse.split(":") + [None])[:2] if refuse else (None, None)
    answered = 0
    end = time.monotonic() + seconds
    with open(log_path, "w", buffering=1) as log:
        print("ready", file=log)
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, addr = sock.recvfrom(2048)
            except socket.timeout:
                break
            try:
                m = stun.parse_message(data, integrity_key=key)
                if m.message_class != stun.Class.REQUEST or m.message_method != stun.Method.BINDING:
                    raise ValueError("not_a_binding_request")
                for required in ("MESSAGE-INTEGRITY", "FINGERPRINT"):
                    if required not in m.attributes:
                        raise ValueError("no_" + required)
                if m.attributes.get("USERNAME") != token:
                    raise ValueError("unknown_username")
            except ValueError as e:
                print("%.3f" % time.monotonic(), "dropped", str(e).replace(" ", "_"), file=log)
                continue
            if "STENTOR-LEAVE" not in m.attributes and m.attributes.get("STENTOR-COOKIE") != cookie_of(addr):
                r = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.ERROR,
                                 transaction_id=m.transaction_id)
                r.attributes["ERROR-CODE"] = (438, "echo STENTOR-COOKIE")
                r.attributes["STENTOR-COOKIE"] = cookie_of(addr)
                r.add_message_integrity(key)
                sock.sendto(bytes(r), addr)
                print("%.3f" % time.monotonic(), "challenged %s:%d" % addr, file=log)
                continue
            if code and (code != "429" or answered == 0):
                r = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.ERROR,
                                 transaction_id=m.transaction_id)
                r.attributes["ERROR-CODE"] = (int(code), "rate limited" if code == "429" else "token refused")
                if retry:
                    r.attributes["STENTOR-RETRY-AFTER"] = int(retry)
                what = "refused " + code
            else:
                r = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE,
                                 transaction_id=m.transaction_id)
                r.attributes["XOR-MAPPED-ADDRESS"] = addr
                what = ("leave " if "STENTOR-LEAVE" in m.attributes else "join ") + "%s:%d" % addr
            r.attributes["STENTOR-COOKIE"] = cookie_of(addr)
            r.add_message_integrity(key)
            sock.sendto(bytes(r), addr)
            answered += 1
            print("%.3f" % time.monotonic(), what, file=log)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "requests":
        requests(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 3 and sys.argv[1] == "verify":
        verify(sys.argv[2])
    elif len(sys.argv) in (7, 8) and sys.argv[1] == "relay":
        relay(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]),
              sys.argv[7] if len(sys.argv) == 8 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
