#!/usr/bin/env python3
# tests/integration/test_pg_ratelimit.py — rate limits shared through a real PostgreSQL 15
# (pg_harness.py starts it in a temp dir): two discoveryd nodes on one database grant one budget
# (not one each) for /new per address and per range and for writes per token; Retry-After is
# honoured; concurrent clients from several processes are admitted at most burst + rate x elapsed;
# PostgreSQL stopped (pg_ctl stop -m immediate) or frozen (SIGSTOP) under load costs no request,
# shows in /health and /metrics with one log line, and the nodes return to it by themselves; a wrong
# password or an unreachable server at start means fallback, not a refusal; the password never
# appears in the log or /metrics. Also the X-Forwarded-For table (--trusted-proxy), which needs no
# database. Clients are told apart by X-Forwarded-For (the nodes trust 127.0.0.0/8).
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_pg_ratelimit.py

import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import pg_harness  # noqa: E402

LIMITS = ["--new-rate", "0.5", "--new-burst", "5", "--new-range-rate", "0.5", "--new-range-burst", "8",
          "--token-write-rate", "0.5", "--token-write-burst", "4", "--trusted-proxy", "127.0.0.0/8"]


def node(checks, pg, label, url=None, extra=()):
    return h.DiscoverydBackend(checks, label=label, relaxed_limits=True,
                               extra_args=LIMITS + ["--postgres", url or pg.url()] + list(extra))


def new(n, addr, timeout=10.0):
    return h.http_request(n.hostport, "GET", "/new?size=3", headers={"X-Forwarded-For": addr}, timeout=timeout)


def metric(n, name):
    for line in n.metrics().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def health(n):
    return h.http_request(n.hostport, "GET", "/health").json()


def scenario_shared_budget(checks, pg, a, b):
    # /new from one address, alternately to both nodes: exactly the burst, then 429
    got = [new((a, b)[i % 2], "198.51.100.10").status for i in range(10)]
    checks.eq("alternating /new on two nodes: the burst (5) then 429", got, [200] * 5 + [429] * 5)
    r = new(a, "198.51.100.10")
    checks.eq("429 status", r.status, 429)
    checks.check("429 carries Retry-After >= 1", r.header("Retry-After", "").isdigit() and int(r.header("Retry-After")) >= 1,
                 r.header("Retry-After"))
    checks.check("429 names the limit", "too many tokens created from this address;" in r.text, r.text)
    # Retry-After honoured: after that many seconds a request succeeds
    time.sleep(int(r.header("Retry-After")))
    checks.eq("after Retry-After seconds /new succeeds", new(b, "198.51.100.10").status, 200)

    # per range (IPv4 /24): 8 distinct addresses pass, the 9th and 10th of the same /24 do not
    got = [new((a, b)[i % 2], "203.0.113.%d" % (i + 1)).status for i in range(10)]
    checks.eq("alternating /new from one /24: the range burst (8) then 429", got, [200] * 8 + [429] * 2)
    r = new(a, "203.0.113.77")
    checks.check("range 429 names the range limit", "address range" in r.text, r.text)

    # per token writes: the same token on both nodes (each has its own store), alternate writes
    tok = "pg-shared-token"
    for n in (a, b):
        r = h.http_request(n.hostport, "PUT", "/v2/keys/discovery/%s/_config/size" % tok, body="value=3",
                           headers={"X-Forwarded-For": "192.0.2.200"})
        checks.check("token created by hand on %s" % n.hostport, r.status in (200, 201), r)
    got = []
    last = None
    for i in range(8):
        n = (a, b)[i % 2]
        last = h.http_request(n.hostport, "PUT", "/v2/keys/discovery/%s/m%d" % (tok, i), body="value=x")
        got.append(last.status)
    checks.eq("alternating writes to one token: the write burst (4) then 429", got, [201] * 4 + [429] * 4)
    body = last.json()
    checks.check("token write 429 keeps the keys JSON error shape",
                 set(body) >= {"errorCode", "message", "cause", "index"} and "too many writes" in body["cause"], body)
    checks.check("token write 429 carries Retry-After", (last.header("Retry-After") or "").isdigit(), last)
    rows = int(pg.sql("SELECT count(*) FROM discoveryd_ratelimit"))
    checks.check("the buckets live in PostgreSQL (%d rows)" % rows, rows >= 3, rows)
    checks.eq("no decision was made locally on node a", metric(a, 'discoveryd_ratelimit_decisions_total{backend="local"}'), 0)


WORKER = r"""
import http.client, sys
host_a, host_b, n, addr = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ok = refused = other = 0
for i in range(n):
    c = http.client.HTTPConnection((host_a, host_b)[i % 2], timeout=20)
    try:
        c.request("GET", "/new", headers={"X-Forwarded-For": addr})
        s = c.getresponse().status
    except Exception:
        s = -1
    finally:
        c.close()
    if s == 200: ok += 1
    elif s == 429: refused += 1
    else: other += 1
print(ok, refused, other)
"""


def scenario_concurrency(checks, pg, a, b):
    procs = 4
    per = 60
    t0 = time.monotonic()
    ps = [subprocess.Popen([sys.executable, "-c", WORKER, a.hostport, b.hostport, str(per), "100.80.0.1"],
                           stdout=subprocess.PIPE, text=True, preexec_fn=h._pdeathsig) for _ in range(procs)]
    outs = [p.communicate(timeout=h.T(120))[0].split() for p in ps]
    elapsed = time.monotonic() - t0
    ok = sum(int(o[0]) for o in outs)
    refused = sum(int(o[1]) for o in outs)
    other = sum(int(o[2]) for o in outs)
    bound = 5 + 0.5 * elapsed
    print("# %d requests in %.2fs from %d processes: %d admitted, %d refused, %d other (bound %.2f)" %
          (procs * per, elapsed, procs, ok, refused, other, bound))
    checks.eq("every concurrent request answered 200 or 429", other, 0)
    checks.check("admitted <= burst + rate x elapsed (%d <= %.2f)" % (ok, bound), ok <= bound, ok)
    checks.check("admitted >= burst (%d)" % ok, ok >= 5, ok)
    checks.eq("no decision made locally under concurrency",
              metric(a, 'discoveryd_ratelimit_decisions_total{backend="local"}'), 0)


class Load:
    """Background /new load on both nodes from many addresses; records every status."""

    def __init__(self, a, b):
        self.nodes = (a, b)
        self.statuses = []
        self.errors = []
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        i = 0
        deadline = time.monotonic() + h.T(120)
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                r = new(self.nodes[i % 2], "100.64.%d.%d" % (i // 250 % 250, i % 250 + 1), timeout=5)
                self.statuses.append(r.status)
            except Exception as e:  # noqa: BLE001
                self.errors.append(repr(e))
            i += 1
            time.sleep(0.01)

    def finish(self):
        self.stop.set()
        self.t.join(h.T(30))


def count(log, text):
    return log.count(text)


def scenario_stop_and_return(checks, pg, a, b):
    load = Load(a, b)
    time.sleep(0.5)
    pg.stop_immediate()
    h.wait_until(lambda: health(a).get("degraded") == "true" and health(b).get("degraded") == "true", 20, 0.1,
                 "both nodes degraded")
    time.sleep(1.0)
    hl = health(a)
    checks.check("/health stays 200-true while degraded, with a reason",
                 hl.get("health") == "true" and "per process" in hl.get("reason", ""), hl)
    checks.eq("metrics: backend local", metric(a, 'discoveryd_ratelimit_backend{backend="local"}'), 1)
    checks.eq("metrics: backend postgres 0", metric(a, 'discoveryd_ratelimit_backend{backend="postgres"}'), 0)
    for n in (a, b):
        checks.eq("%s: one fallback log line" % n.hostport, count(n.log_text(), "rate limits fall back to per process"), 1)
    pg.start()
    h.wait_until(lambda: "degraded" not in health(a) and "degraded" not in health(b), 30, 0.2,
                 "both nodes back on PostgreSQL")
    time.sleep(0.5)
    load.finish()
    bad = [s for s in load.statuses if s not in (200, 429)]
    checks.check("load across the stop: %d requests, all 200/429" % len(load.statuses),
                 not bad and not load.errors and len(load.statuses) > 20, (bad[:5], load.errors[:3]))
    checks.eq("metrics: backend postgres again", metric(a, 'discoveryd_ratelimit_backend{backend="postgres"}'), 1)
    for n in (a, b):
        checks.eq("%s: one recovery log line" % n.hostport, count(n.log_text(), "recovered: rate limits are shared"), 1)
    # and PostgreSQL decides again: a fresh address gets exactly the burst across both nodes
    got = [new((a, b)[i % 2], "100.81.0.1").status for i in range(7)]
    checks.eq("after the return the budget is shared again", got, [200] * 5 + [429] * 2)


def scenario_frozen(checks, pg, a, b):
    pg.signal_all(signal.SIGSTOP)
    try:
        statuses = []
        for i in range(10):
            statuses.append(new((a, b)[i % 2], "100.100.0.%d" % (i + 1), timeout=5).status)
        checks.eq("PostgreSQL frozen: every request answered 200", statuses, [200] * 10)
        h.wait_until(lambda: health(a).get("degraded") == "true", 10, 0.1, "node a degraded")
        checks.check("frozen: /health names the timeout", "timeout" in health(a).get("reason", ""), health(a))
        checks.check("frozen: decisions were made locally",
                     metric(a, 'discoveryd_ratelimit_decisions_total{backend="local"}') > 0, a.metrics()[-400:])
    finally:
        pg.signal_all(signal.SIGCONT)
    h.wait_until(lambda: "degraded" not in health(a) and "degraded" not in health(b), 30, 0.2,
                 "back on PostgreSQL after SIGCONT")
    checks.check("thawed: both nodes back on PostgreSQL", True)


def scenario_bad_start(checks, pg):
    wrong = node(checks, pg, "wrongpw", url=pg.url(password="hunter2-wrong"))
    unreachable = node(checks, pg, "unreachable", url=pg.url(port=h.free_port()))
    for n, what in ((wrong, "password authentication failed"), (unreachable, "Connection refused")):
        # discoveryd's own lines (the harness's "=== argv" line shows the flag as the test gave it)
        log = "\n".join(l for l in n.log_text().splitlines() if not l.startswith("=== "))
        checks.check("%s: started, one fallback line naming the cause" % n.hostport,
                     count(log, "rate limits fall back to per process") == 1 and what in log, log[-600:])
        checks.eq("%s: /health degraded" % n.hostport, health(n).get("degraded"), "true")
        checks.eq("%s: /new served by the local limiter" % n.hostport, new(n, "192.0.2.1").status, 200)
        m = n.metrics()
        checks.check("%s: the password is masked in the log and /metrics" % n.hostport,
                     "hunter2" not in log and "hunter2" not in m and pg_harness.PASSWORD not in log and
                     pg_harness.PASSWORD not in m and "****" in m, m[-300:])


def scenario_xff(checks):
    v6 = h.free_ports(2)  # the same numbers are free on ::1 in practice; a clash fails the start loudly
    trusting = h.DiscoverydBackend(checks, label="trusting", extra_args=[
        "--new-burst", "1", "--new-rate", "0.001", "--trusted-proxy", "127.0.0.0/8", "--trusted-proxy", "::1/128",
        "--listen", "[::1]:%d" % v6[0]])
    plain = h.DiscoverydBackend(checks, label="plain", extra_args=[
        "--new-burst", "1", "--new-rate", "0.001", "--listen", "[::1]:%d" % v6[1]])  # beside the harness's

    def st(n, xff, host=None):
        hdrs = {} if xff is None else {"X-Forwarded-For": xff}
        return h.http_request(host or n.hostport, "GET", "/new", headers=hdrs).status

    table = [
        ("first request of 198.51.100.1", "198.51.100.1", 200),
        ("198.51.100.1 again", "198.51.100.1", 429),
        ("another client", "198.51.100.2", 200),
        ("forged entries on the left change nothing", "6.6.6.6, 198.51.100.1", 429),
        ("trusted hops on the right are skipped", "198.51.100.1, 127.0.0.9", 429),
        ("port on an IPv4 entry", "198.51.100.3:4321", 200),
        ("IPv6 client", "2001:db8:0:1::1", 200),
        ("same IPv6 /64", "2001:db8:0:1::2", 429),
        ("bracketed IPv6 with port", "[2001:db8:0:2::1]:443", 200),
        ("garbage: the proxy itself is the client", "not-an-address", 200),
        ("garbage again: the proxy's bucket", "still garbage", 429),
        ("no header: the proxy's bucket", None, 429),
    ]
    for name, xff, want in table:
        checks.eq("trusted peer: %s (%r)" % (name, xff), st(trusting, xff), want)
    t6, p6 = "[::1]:%d" % v6[0], "[::1]:%d" % v6[1]
    checks.eq("trusted IPv6 peer: the header names the client", st(trusting, "198.51.100.20", t6), 200)
    checks.eq("trusted IPv6 peer: same client again", st(trusting, "198.51.100.20", t6), 429)
    checks.eq("trusted IPv6 peer: garbage makes ::1 the client", st(trusting, "::1::2", t6), 200)
    checks.eq("untrusted IPv6 peer: first request", st(plain, "2001:db8::9", p6), 200)
    checks.eq("untrusted IPv6 peer: a forged header changes nothing", st(plain, "2001:db8:5::9", p6), 429)
    checks.eq("untrusted peer: first request", st(plain, "203.0.113.5"), 200)
    checks.eq("untrusted peer: a forged header changes nothing", st(plain, "203.0.113.6"), 429)
    checks.eq("untrusted peer: nor a list", st(plain, "203.0.113.7, 203.0.113.8"), 429)


def main():
    checks = h.Checks("rate limits shared through PostgreSQL")
    if h.BACKEND != "discoveryd":
        checks.skip("all", "discoveryd only")
        checks.passed += 1
        checks.finish()
    checks.run("X-Forwarded-For table", scenario_xff)
    pg = pg_harness.Postgres()
    checks.add_log("postgres", pg.log, 20)
    try:
        a = node(checks, pg, "node-a")
        b = node(checks, pg, "node-b")
        checks.run("two nodes share one budget", scenario_shared_budget, pg, a, b)
        checks.run("concurrent clients from several processes", scenario_concurrency, pg, a, b)
        checks.run("PostgreSQL stopped under load, then started", scenario_stop_and_return, pg, a, b)
        checks.run("PostgreSQL frozen (SIGSTOP)", scenario_frozen, pg, a, b)
        checks.run("wrong password / unreachable at start", scenario_bad_start, pg)
    finally:
        pg.signal_all(signal.SIGCONT)
    checks.finish()


if __name__ == "__main__":
    main()
