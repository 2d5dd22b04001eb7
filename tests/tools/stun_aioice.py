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

Stentor's own attributes are registered in aioice's attribute tables, the
way a client in any language adds them (docs/join.md).
"""
import sys

from aioice import stun

# STENTOR-LEAVE (4 zero bytes) and STENTOR-RETRY-AFTER (u32 ms), both
# comprehension-optional.
for entry in ((0xC001, "STENTOR-LEAVE", stun.pack_unsigned, stun.unpack_unsigned),
              (0xC002, "STENTOR-RETRY-AFTER", stun.pack_unsigned, stun.unpack_unsigned)):
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


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "requests":
        requests(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 3 and sys.argv[1] == "verify":
        verify(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
