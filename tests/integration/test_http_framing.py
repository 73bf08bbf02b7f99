#!/usr/bin/env python3
# tests/integration/test_http_framing.py — request framing a hostile client or a confused proxy
# could use to smuggle a request, sent over raw sockets: conflicting Content-Length headers and
# Content-Length with Transfer-Encoding are answered 400 and the connection is closed (nothing is
# written); a chunk announcing more than the body cap is answered 413 at once (without the guard
# h2o waits for the bytes and closes silently at its read timeout). Well-formed chunked and
# duplicate-but-equal Content-Length requests still work, on keep-alive connections.
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_http_framing.py

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def exchange(d, raw, want_responses=1, timeout=15):
    """Send raw bytes on a fresh socket; read until want_responses heads arrived and their bodies,
    or EOF. Returns (data, closed) where closed says the server closed the connection."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
    s.sendall(raw)
    data = b""
    closed = False
    try:
        while True:
            if data.count(b"HTTP/1.1 ") >= want_responses and complete(data, want_responses):
                break
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
        if not closed:
            # the server closes after a refusal: a read now returns EOF (or times out if alive)
            s.settimeout(2)
            try:
                closed = s.recv(1) == b""
            except socket.timeout:
                closed = False
    finally:
        s.close()
    return data, closed


def complete(data, n):
    """True when data holds n whole responses (each with Content-Length)."""
    pos = 0
    for _ in range(n):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return False
        head = data[pos:end].decode("latin-1").lower()
        length = 0
        for line in head.split("\r\n"):
            if line.startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        pos = end + 4 + length
        if len(data) < pos:
            return False
    return True


def send_pieces(d, pieces, n):
    """Send each piece with its own send on one socket; read until n whole answers (or EOF)."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=15)
    got = b""
    try:
        for p in pieces:
            s.sendall(p)
        while not complete(got, n):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    finally:
        s.close()
    return got


def status_of(data):
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def key_exists(d, tok, key):
    return h.http_request(d.hostport, "GET", "/v2/keys/discovery/%s/%s" % (tok, key)).status == 200


def put_head(tok, key, extra):
    return ("PUT /v2/keys/discovery/%s/%s HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n%s\r\n" % (tok, key, extra)).encode()


def scenario_conflicting_lengths(c, d, tok):
    raw = put_head(tok, "k1", "Content-Length: 7\r\nContent-Length: 40\r\n") + b"value=x"
    data, closed = exchange(d, raw)
    c.eq("two different Content-Length values: 400", status_of(data), 400)
    c.check("... with a one-line reason", b"conflicting Content-Length" in data, data[-80:])
    c.check("... and the connection is closed", closed)
    c.check("... and nothing was written", not key_exists(d, tok, "k1"))
    # smuggling shape: the second length would hide a request in the body
    inner = b"DELETE /v2/keys/discovery/%s?recursive=true HTTP/1.1\r\nHost: x\r\n\r\n" % tok.encode()
    raw = put_head(tok, "k2", "Content-Length: 7\r\nContent-Length: %d\r\n" % (7 + len(inner))) + b"value=x" + inner
    data, closed = exchange(d, raw, want_responses=2)
    c.eq("a hidden request behind conflicting lengths gets no answer of its own", data.count(b"HTTP/1.1 "), 1)
    c.check("... and the token is still there", h.http_request(d.hostport, "GET", "/status/%s" % tok).status == 200)


def scenario_equal_lengths(c, d, tok):
    raw = put_head(tok, "k3", "Content-Length: 7\r\nContent-Length: 7\r\n") + b"value=x"
    raw += b"GET /v2/keys/discovery/%s/k3 HTTP/1.1\r\nHost: x\r\n\r\n" % tok.encode()
    data, closed = exchange(d, raw, want_responses=2)
    c.eq("the same Content-Length twice is accepted (201), then a second request on the socket",
         (status_of(data), data.count(b"HTTP/1.1 ")), (201, 2))


def scenario_length_and_chunked(c, d, tok):
    raw = put_head(tok, "k4", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n") + b"7\r\nvalue=x\r\n0\r\n\r\n"
    data, closed = exchange(d, raw)
    c.eq("Content-Length with Transfer-Encoding: chunked: 400", status_of(data), 400)
    c.check("... and the connection is closed", closed)
    c.check("... and nothing was written", not key_exists(d, tok, "k4"))
    raw = put_head(tok, "k5", "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n") + b"7\r\nvalue=x\r\n0\r\n\r\n"
    data, closed = exchange(d, raw)
    c.eq("... in the other order too", (status_of(data), closed), (400, True))


def scenario_chunked_ok(c, d, tok):
    raw = put_head(tok, "k6", "Transfer-Encoding: chunked\r\n") + b"3\r\nval\r\n4\r\nue=x\r\n0\r\n\r\n"
    raw += b"GET /v2/keys/discovery/%s/k6 HTTP/1.1\r\nHost: x\r\n\r\n" % tok.encode()
    data, closed = exchange(d, raw, want_responses=2)
    c.eq("a well-formed chunked PUT is 201 and keep-alive goes on", (status_of(data), data.count(b"HTTP/1.1 ")),
         (201, 2))
    c.check("... and the value arrived whole", b'"value":"x"' in data, data[-120:])


def scenario_huge_chunk(c, d, tok):
    raw = put_head(tok, "k7", "Transfer-Encoding: chunked\r\n") + b"100000000\r\nvalue=x"
    data, closed = exchange(d, raw)
    c.eq("a chunk of 0x100000000 bytes is refused 413 at once (no read-timeout silence)", status_of(data), 413)
    c.check("... and the connection is closed", closed)
    # a later chunk, after a small first one
    raw = put_head(tok, "k8", "Transfer-Encoding: chunked\r\n") + b"3\r\nval\r\nffffffff\r\nue"
    data, closed = exchange(d, raw)
    c.eq("a huge second chunk is refused 413 too", (status_of(data), closed), (413, True))
    c.check("nothing was written", not key_exists(d, tok, "k7") and not key_exists(d, tok, "k8"))
    # and the server is fine
    r = h.http_request(d.hostport, "GET", "/health")
    c.eq("/health afterwards", r.status, 200)


def scenario_bigger_than_a_read(c, d, tok):
    # a read asks for 1 KiB (service/guard.h): heads and bodies over that grow the input buffer
    value = "v" * 4000
    pad = "".join("X-Pad-%d: %s\r\n" % (i, "p" * 90) for i in range(30))  # a 3 KiB head
    body = ("value=" + value).encode()
    raw = put_head(tok, "k9", pad + "Content-Length: %d\r\n" % len(body)) + body
    raw += b"GET /v2/keys/discovery/%s/k9 HTTP/1.1\r\nHost: x\r\n\r\n" % tok.encode()
    data, closed = exchange(d, raw * 3, want_responses=6)
    c.eq("a 3 KiB head with a 4 KiB body, then a GET, three times on one socket: six answers",
         (status_of(data), data.count(b"HTTP/1.1 201"), data.count(b"HTTP/1.1 200"), closed), (201, 1, 5, False))
    c.check("... and the value arrived whole", ('"value":"%s"' % value).encode() in data, data[-120:])
    # the same bytes in pieces that straddle reads
    got = send_pieces(d, [raw[i:i + 700] for i in range(0, len(raw), 700)], 2)
    c.eq("... and sent in 700-byte pieces", (got.count(b"HTTP/1.1 200"), ('"value":"%s"' % value).encode() in got),
         (2, True))


def scenario_pipelined(c, d, tok):
    # h2o stops reading while it answers; the guard only pauses (guard.c): bytes that arrive
    # meanwhile, or fill a read, must still be read once h2o reads again, and only then
    get = b"GET /v2/keys/discovery/%s HTTP/1.1\r\nHost: x\r\n\r\n" % tok.encode()
    raw = b""
    for i in range(20):  # writes go to the store thread: later bytes wait while each is answered
        raw += get * 3
        body = b"value=p%d" % i
        raw += put_head(tok, "pipe", "Content-Length: %d\r\n" % len(body)) + body
    data, closed = exchange(d, raw, want_responses=80)
    statuses = [int(x.split(b" ", 1)[0]) for x in data.split(b"HTTP/1.1 ")[1:]]
    c.eq("80 pipelined requests (3 GETs and a PUT, 20 times; %d bytes) are answered in order" % len(raw),
         (len(statuses), statuses[:4], statuses[-4:], closed), (80, [200, 200, 200, 201], [200, 200, 200, 200], False))
    c.check("... and the last PUT's value is the one kept", b'"value":"p19"' in data[-400:], data[-200:])
    # one GET, then the next sent while the first is being answered, byte by byte
    got = send_pieces(d, [get] + [bytes([b]) for b in get], 2)
    c.eq("a request trickling in byte by byte behind another is answered", got.count(b"HTTP/1.1 200"), 2)
    # a client that half-closes after its request (EOF while the answer is pending) gets the
    # answer and then the close: libuv stops reading by itself at EOF, a pause must notice
    body = b"value=h"
    for what, req in (("a GET", get), ("a PUT", put_head(tok, "half", "Content-Length: %d\r\n" % len(body)) + body),
                      ("a watch", b"GET /v2/keys/discovery/%s?wait=true&recursive=true HTTP/1.1\r\nHost: x\r\n\r\n"
                       % tok.encode()),
                      ("a watch answered from history",
                       b"GET /v2/keys/discovery/%s?wait=true&recursive=true&waitIndex=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       % tok.encode())):
        # 5 s: well under h2o's 10 s idle timeout, which would close a hung connection for us
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        try:
            s.sendall(req)
            s.shutdown(socket.SHUT_WR)
            if what == "a watch":  # answer it with a write
                h.http_request(d.hostport, "PUT", "/v2/keys/discovery/%s/half2" % tok, body="value=w")
            got, closed = b"", False
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed = True
                    break
                got += chunk
        except socket.timeout:
            pass
        finally:
            s.close()
        c.eq("%s, then the client's FIN: answered, then closed" % what, (status_of(got) in (200, 201), closed),
             (True, True))


def main():
    c = h.Checks("HTTP request framing")
    d = h.DiscoverydBackend(c)
    tok, _ = d.new_token(3)
    c.run("conflicting Content-Length", scenario_conflicting_lengths, d, tok)
    c.run("equal Content-Length twice", scenario_equal_lengths, d, tok)
    c.run("Content-Length and Transfer-Encoding", scenario_length_and_chunked, d, tok)
    c.run("chunked bodies", scenario_chunked_ok, d, tok)
    c.run("a chunk larger than the cap", scenario_huge_chunk, d, tok)
    c.run("requests bigger than one read", scenario_bigger_than_a_read, d, tok)
    c.run("pipelined requests", scenario_pipelined, d, tok)
    c.finish()


if __name__ == "__main__":
    main()
