#!/usr/bin/env python3
# tests/integration/test_watch_hangup.py — a client that parks a watch and then hangs up gives its
# slot back at once, not when --watch-timeout fires: the per-client cap filled by watchers that are
# then closed or SIGKILLed frees within a second, discoveryd_parked_watches drops at once, and the
# same address parks a new watch. Keep-alive and pipelining behind a watch still work.
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_watch_hangup.py

import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

CAP = 5


def parked(d):
    m = re.search(r"^discoveryd_parked_watches (\d+)$", d.metrics(), re.M)
    return int(m.group(1)) if m else -1


def raw_watch(d, tok):
    """A raw HTTP/1.1 watch on a socket of its own; returns the socket (the request is parked)."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(("GET /%s?wait=true&recursive=true HTTP/1.1\r\nHost: %s\r\n\r\n" % (tok, d.hostport)).encode())
    return s


def wait_parked(d, want, seconds):
    try:
        h.wait_until(lambda: parked(d) == want, seconds, 0.02, "parked watches == %d" % want)
        return True
    except TimeoutError:
        return False


def scenario_closed_sockets(c, d, tok):
    socks = [raw_watch(d, tok) for _ in range(CAP)]
    c.check("the per-client cap fills (%d parked)" % CAP, wait_parked(d, CAP, 10), parked(d))
    r = h.http_request(d.hostport, "GET", "/%s?wait=true&recursive=true" % tok, timeout=5)
    c.eq("one more watch from the same address is refused", r.status, 429)
    t0 = time.monotonic()
    for s in socks:
        s.close()
    freed = wait_parked(d, 0, 1.0)
    c.check("closing the watchers frees every slot within 1 s (watch timeout is 60 s)", freed,
            "parked=%d after %.2fs" % (parked(d), time.monotonic() - t0))


def scenario_killed_clients(c, d, tok):
    procs = [subprocess.Popen(["curl", "-s", "-m", "50", "%s/%s?wait=true&recursive=true" % (d.base, tok)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(CAP)]
    try:
        c.check("curl watchers fill the cap", wait_parked(d, CAP, 10), parked(d))
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)
        c.check("SIGKILLed watchers free their slots within 1 s", wait_parked(d, 0, 1.0), parked(d))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    # the same address parks again, and that watch is answered by a write
    s = raw_watch(d, tok)
    c.check("a new watch from the same address parks", wait_parked(d, 1, 5), parked(d))
    r = h.http_request(d.hostport, "PUT", "/%s/m1" % tok, body="value=m1%3Dhttp%3A%2F%2Fa%3A2380")
    c.eq("a registration", r.status, 201)
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    c.check("the parked watch is answered by the registration", data.startswith(b"HTTP/1.1 200"), data[:80])
    s.close()


def scenario_keepalive_and_pipelining(c, d, tok):
    # a watch answered from history, then a second request on the same connection
    ka = h.KeepAlive(d.hostport)
    r1, _ = ka.request("GET", "/%s?wait=true&recursive=true&waitIndex=1" % tok)
    r2, _ = ka.request("GET", "/%s" % tok)
    c.check("a watch answered then a GET on one keep-alive connection",
            r1.status == 200 and r2.status == 200 and ka.same_socket(), (r1.status, r2.status))
    ka.close()
    # a parked watch with a pipelined GET behind it: the GET is answered after the watch, in order
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    req = "GET /%s?wait=true&recursive=true HTTP/1.1\r\nHost: x\r\n\r\nGET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % (tok, tok)
    s.sendall(req.encode())
    time.sleep(0.3)
    h.http_request(d.hostport, "PUT", "/%s/m2" % tok, body="value=m2%3Dhttp%3A%2F%2Fb%3A2380")
    data = b""
    deadline = time.monotonic() + 10
    while data.count(b"HTTP/1.1 200") < 2 and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    c.eq("the pipelined GET behind a parked watch is answered too", data.count(b"HTTP/1.1 200"), 2)


def main():
    c = h.Checks("a hung-up watcher gives its slot back at once")
    d = h.DiscoverydBackend(c, extra_args=["--max-watches-per-client", str(CAP)], watch_timeout="60s")
    tok, _ = d.new_token(3)
    c.run("closed sockets", scenario_closed_sockets, d, tok)
    c.run("killed curl clients", scenario_killed_clients, d, tok)
    c.run("keep-alive and pipelining", scenario_keepalive_and_pipelining, d, tok)
    c.finish()


if __name__ == "__main__":
    main()
