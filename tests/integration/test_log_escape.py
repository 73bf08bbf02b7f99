#!/usr/bin/env python3
# tests/integration/test_log_escape.py — client text that reaches the log (member keys in the
# "token is full" and "surplus registration" lines) has its control bytes escaped: a key holding
# ESC [31m or a newline shows as \x1b[31m / \x0a, and the log file holds no raw control byte at all
# (so it cannot recolour an operator's terminal or forge a second line).
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_log_escape.py

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def scenario(c, d):
    tok, _ = d.new_token(1)
    r = h.http_request(d.hostport, "PUT", "/%s/%%1b%%5b31mred" % tok, body="value=m1%3Dhttp%3A%2F%2Fa%3A2380")
    c.eq("a member key with ESC [31m registers", r.status, 201)
    r = h.http_request(d.hostport, "PUT", "/%s/two%%0aforged%%0d%%07" % tok,
                       body="value=m2%3Dhttp%3A%2F%2Fb%3A2380")
    c.eq("a member key with a newline, CR and BEL registers (surplus)", r.status, 201)
    h.wait_until(lambda: "surplus registration" in d.log_text(), 10, 0.05, "the surplus log line")
    raw = open(d.log, "rb").read()
    c.check("the full line shows the key escaped", b"\\x1b[31mred" in raw, raw[-400:])
    c.check("the surplus line shows the key escaped", b"two\\x0aforged\\x0d\\x07" in raw, raw[-400:])
    bad = [b for b in raw if (b < 0x20 and b != 0x0a) or b == 0x7f]
    c.check("the log holds no raw control byte (but line ends)", not bad, bad[:10])
    c.check("no forged line starts with the key's text", b"\nforged" not in raw)


def main():
    c = h.Checks("control bytes from clients are escaped in the log")
    d = h.DiscoverydBackend(c)
    c.run("keys with control bytes", scenario, d)
    c.finish()


if __name__ == "__main__":
    main()
