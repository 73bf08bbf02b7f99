#!/usr/bin/env python3
# tests/integration/test_host_header.py — without --public-url, /new and the web pages build the
# service's URL from the Host header: only a valid host[:port] (a DNS name, IPv4, or a bracketed
# IPv6 address, with an optional port) is accepted; anything else is 400 with one line, and no
# token is created. The table is sent over raw sockets so any byte can be the Host.
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_host_header.py

import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

GOOD = ["127.0.0.1", "127.0.0.1:8087", "example.com", "EXAMPLE.com:80", "disc-1.example_x~y", "[::1]",
        "[::1]:8087", "[2001:db8::1]:443", "localhost:0", "a:65535"]
BAD = ['a"b<script>', "evil.example\"", "a b", "a,b", "user@host", "host/path", "host?x", "%41", "host:port",
       "host:99999", "host:", "host:123456", ":80", "[::1", "[zz::1]:80", "[::1]x", "[::1]:", "[]", "[v1.x]",
       "é.example", "a" * 256, "host:80:80", "a'b", "a;b", "<>"]


def raw(d, head):
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    try:
        s.sendall(head)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                m = re.search(rb"(?i)content-length: *(\d+)", data[:end])
                if m and len(data) >= end + 4 + int(m.group(1)):
                    break
    finally:
        s.close()
    end = data.find(b"\r\n\r\n")
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else None
    return status, data[:end], data[end + 4:]


def new_with_host(d, host, path="/new?size=3", accept=None):
    head = "GET %s HTTP/1.1\r\n" % path
    if host is not None:
        head += "Host: %s\r\n" % host
    if accept:
        head += "Accept: %s\r\n" % accept
    head += "Connection: close\r\n\r\n"
    return raw(d, head.encode("utf-8"))


def created(d):
    m = re.search(r"^discoveryd_tokens_created_total (\d+)$", d.metrics(), re.M)
    return int(m.group(1)) if m else None


def scenario_table(c, d):
    for host in GOOD:
        st, hd, body = new_with_host(d, host)
        ok = st == 200 and re.fullmatch(r"http://%s/[0-9a-f]{32}" % re.escape(host), body.decode("latin-1"))
        c.check("Host %r: 200 and the URL is http://%s/<token>" % (host, host), ok, (st, body[:100]))
    before = created(d)
    for host in BAD:
        st, hd, body = new_with_host(d, host)
        one_line = body.endswith(b"\n") and body.count(b"\n") == 1 and b"Host" in body
        c.check("Host %r: 400 with one line" % host, st == 400 and one_line, (st, body[:120]))
    st, hd, body = new_with_host(d, "a\x1b[31mred")
    c.eq("Host with an ESC: 400 (h2o refuses control bytes in any header)", st, 400)
    st, hd, body = new_with_host(d, None)
    c.check("no Host at all: 400 with one line", st == 400 and b"Host header is required" in body, (st, body))
    st, hd, body = raw(d, b"GET /new HTTP/1.0\r\n\r\n")
    c.eq("HTTP/1.0 without Host: 400", st, 400)
    c.eq("no token was created by a refused /new", created(d), before)


def scenario_pages(c, d):
    st, hd, body = new_with_host(d, "disc.example:8087", "/", accept="text/html")
    c.check("home page with a valid Host shows http://disc.example:8087", st == 200 and
            b"http://disc.example:8087" in body, st)
    st, hd, body = new_with_host(d, 'a"b<script>', "/", accept="text/html")
    c.eq("home page with a bad Host: 400", st, 400)
    tok, _ = d.new_token(3)
    st, hd, body = new_with_host(d, "[::1]:9", "/" + tok, accept="text/html")
    c.check("token page with a valid Host shows the URL", st == 200 and
            ("http://[::1]:9/%s" % tok).encode() in body, st)
    st, hd, body = new_with_host(d, "x y", "/" + tok, accept="text/html")
    c.eq("token page with a bad Host: 400", st, 400)
    st, hd, body = new_with_host(d, "x y", "/" + tok)
    c.eq("the v2 keys protocol does not look at the Host", st, 200)


def main():
    c = h.Checks("the Host header builds URLs only when it is a valid host[:port]")
    d = h.DiscoverydBackend(c, public_url=False)
    c.run("the /new table", scenario_table, d)
    c.run("the web pages", scenario_pages, d)
    c.finish()


if __name__ == "__main__":
    main()
