#!/usr/bin/env python3
# tests/integration/test_tls.py — discoveryd serves HTTPS itself when given a certificate and key
# (a deliberate difference from upstream: docs/protocol.md#deliberate-differences-from-upstream):
# /new prints the https public URL, the v2 keys protocol works over TLS, plaintext is not served on
# the TLS port, and half a certificate pair or a missing file stops the start with a message
# naming the flag or file. discoveryd only (a plain etcd v2 store has no such flags).
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_tls.py

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def make_cert(d):
    """A self-signed certificate for 127.0.0.1 (EC P-256, valid one day)."""
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


def https(ctx, port, method, path, body=None, headers=None):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def start_fails(checks, name, extra, want_in_message):
    """discoveryd with these flags must exit non-zero at once, its message naming want_in_message."""
    bin_path = os.environ["DISCOVERYD_BIN"]
    argv = [bin_path, "--listen", "127.0.0.1:%d" % h.free_port(), "--data-dir", h.tmpdir("fail.data")] + extra
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=h.T(20),
                       env={k: v for k, v in os.environ.items() if not k.startswith("DISCOVERYD_")})
    out = p.stdout.decode(errors="replace")
    checks.check("%s: start refused (exit status %d)" % (name, p.returncode), p.returncode != 0, out)
    checks.check("%s: message names %s" % (name, want_in_message), want_in_message in out, out)


def scenario(checks):
    d = h.tmpdir("tls")
    cert, key = make_cert(d)
    port = h.free_port()
    base = "https://127.0.0.1:%d" % port
    log = os.path.join(d, "discoveryd.log")
    checks.add_log("discoveryd", log, 60)
    argv = [os.environ["DISCOVERYD_BIN"], "--listen", "127.0.0.1:%d" % port, "--data-dir", os.path.join(d, "data"),
            "--public-url", base, "--tls-cert", cert, "--tls-key", key]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOVERYD_")}
    proc = h.spawn(argv, log, env=env)

    ctx = ssl.create_default_context(cafile=cert)

    def healthy():
        if proc.poll() is not None:
            raise h.Fatal("discoveryd exited with %s:\n%s" % (proc.returncode, h.tail(log)))
        try:
            return https(ctx, port, "GET", "/health")[0] == 200
        except OSError:
            return False
    h.wait_until(healthy, h.T(30), 0.1, "discoveryd /health over TLS")
    checks.check("GET /health over TLS answers 200", True)

    st, hd, body = https(ctx, port, "GET", "/new?size=3")
    checks.eq("/new over TLS: status", st, 200)
    url = body.decode()
    checks.check("/new prints the https public URL", url.startswith(base + "/") and len(url) == len(base) + 33, url)
    token = url.rsplit("/", 1)[-1]

    st, hd, body = https(ctx, port, "PUT", "/v2/keys/discovery/%s/aaaa1?prevExist=false" % token,
                         body="value=m1%3Dhttps%3A%2F%2F127.0.0.1%3A2380",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    checks.eq("registration over TLS: status", st, 201)
    checks.check("registration over TLS: create event", b'"action":"create"' in body, body)

    st, hd, body = https(ctx, port, "GET", "/%s" % token)
    checks.eq("short form GET over TLS: status", st, 200)
    checks.check("short form GET over TLS lists the member", b"/aaaa1" in body, body)

    # Plaintext HTTP on the TLS port gets no HTTP answer.
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = s.recv(64)
        except (ConnectionResetError, socket.timeout):
            got = b""
    finally:
        s.close()
    checks.check("plaintext HTTP on the TLS port is not answered as HTTP", not got.startswith(b"HTTP/"), got)

    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=h.T(20))
        checks.eq("discoveryd exit status after SIGTERM", proc.returncode, 0)
    except subprocess.TimeoutExpired:
        proc.kill()
        checks.check("discoveryd exits within 20s of SIGTERM", False)
    logtext = h.read_text(log)
    marks = [m for m in h.DiscoverydBackend.SANITIZER_MARKS if m in logtext]
    checks.check("discoveryd log has no sanitizer report", not marks, marks)

    # Without --public-url the URL follows the listener: https:// + the Host header.
    argv2 = [a for a in argv if a not in ("--public-url", base)]
    argv2[argv2.index("--data-dir") + 1] = os.path.join(d, "data2")
    proc = h.spawn(argv2, log, env=env)
    h.wait_until(healthy, h.T(30), 0.1, "discoveryd /health over TLS (no --public-url)")
    st, hd, body = https(ctx, port, "GET", "/new?size=3")
    checks.check("without --public-url, /new over TLS prints https:// + Host",
                 st == 200 and body.decode().startswith("https://127.0.0.1:%d/" % port), (st, body))
    st, hd, body = https(ctx, port, "GET", "/new?size=3", headers={"Host": "a\"b<script>"})
    checks.eq("... and a bad Host over TLS is 400", st, 400)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=h.T(20))
    checks.eq("discoveryd exit status after SIGTERM (no --public-url)", proc.returncode, 0)

    start_fails(checks, "only --tls-cert", ["--tls-cert", cert], "--tls-key")
    start_fails(checks, "only --tls-key", ["--tls-key", key], "--tls-cert")
    missing = os.path.join(d, "no-such-cert.pem")
    start_fails(checks, "missing certificate file", ["--tls-cert", missing, "--tls-key", key], missing)


def main():
    if h.BACKEND != "discoveryd":
        print("SKIP TLS is discoveryd's own feature (backend %s)" % h.BACKEND)
        print("0 passed, 0 failed")
        return 0
    checks = h.Checks("discoveryd serves TLS")
    checks.run("TLS", scenario)
    checks.finish()


if __name__ == "__main__":
    sys.exit(main())
