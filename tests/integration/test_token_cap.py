#!/usr/bin/env python3
# tests/integration/test_token_cap.py — memory is bounded: with --max-tokens N live tokens, /new
# and a token made by hand answer 503 + Retry-After with one line (capacity is transient), the
# refusal is logged once and counted in /metrics, and room comes back when a token goes. Expiry
# keeps up: 2000 tokens that are all overdue at start (created under a long --token-ttl, then the
# process restarted with --token-ttl 1s) are swept in bounded batches proposed back to back (the
# chained-sweep counter says so; before, one sweep of at most 1024 per second).
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_token_cap.py

import http.client
import os
import re
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def metric(text, name):
    m = re.search(r"^%s (\d+)$" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def scenario_cap(c, d):
    toks = [d.new_token(3)[0] for _ in range(5)]
    r = h.http_request(d.hostport, "GET", "/new?size=3")
    c.eq("the 6th /new with --max-tokens 5: 503", r.status, 503)
    c.check("... with Retry-After", (r.header("Retry-After") or "").isdigit(), r.header("Retry-After"))
    c.check("... and one line", r.text.endswith("\n") and r.text.count("\n") == 1 and "maximum of 5" in r.text,
            r.text)
    r = h.http_request(d.hostport, "PUT", "/v2/keys/discovery/hand-made-1/_config/size", body="value=3")
    c.eq("a token made by hand beyond the cap: 503", r.status, 503)
    c.check("... as an etcd JSON error with Retry-After", r.json().get("errorCode") == 1107 and
            r.header("Retry-After") is not None, r)
    c.eq("... and it was not created", h.http_request(d.hostport, "GET", "/status/hand-made-1").status, 404)
    r = h.http_request(d.hostport, "PUT", "/%s/aaaa1" % toks[0], body="value=m1%3Dhttp%3A%2F%2Fa%3A2380")
    c.eq("registrations on existing tokens go on at the cap", r.status, 201)
    m = d.metrics()
    c.eq("/metrics: discoveryd_tokens_refused_total", metric(m, "discoveryd_tokens_refused_total"), 2)
    c.eq("/metrics: discoveryd_tokens_max", metric(m, "discoveryd_tokens_max"), 5)
    c.eq("the cap is logged once", d.log_text().count("reached --max-tokens"), 1)
    r = h.http_request(d.hostport, "DELETE", "/%s?recursive=true" % toks[1])
    c.eq("the owner deletes a token", r.status, 200)
    r = h.http_request(d.hostport, "GET", "/new?size=3")
    c.eq("then /new has room again", r.status, 200)
    c.check("... and that is logged", "below --max-tokens" in d.log_text())


def create_many(port, n, threads=8):
    errors = []

    def work(k):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=h.T(30))
        try:
            for _ in range(k):
                conn.request("GET", "/new?size=3")
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(r.status)
        finally:
            conn.close()
    ts = [threading.Thread(target=work, args=(n // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def scenario_expiry_keeps_up(c):
    n = 2000
    base_dir = h.tmpdir("expiry")
    data = os.path.join(base_dir, "data")
    log = os.path.join(base_dir, "discoveryd.log")
    c.add_log("discoveryd (expiry)", log, 40)
    port = h.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOVERYD_")}

    def start(ttl):
        argv = [os.environ["DISCOVERYD_BIN"], "--listen", "127.0.0.1:%d" % port, "--data-dir", data,
                "--public-url", "http://x", "--token-ttl", ttl, "--max-tokens", "0"] + \
            h.DiscoverydBackend.RELAXED_LIMITS
        p = h.spawn(argv, log, env=env)
        h.wait_until(lambda: h.http_request("127.0.0.1:%d" % port, "GET", "/health", timeout=2).status == 200,
                     h.T(30), 0.1, "discoveryd /health")
        return p

    def stop(p):
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=h.T(20))
        return p.returncode

    p = start("168h")
    errors = create_many(port, n)
    c.check("%d tokens created" % n, not errors, errors[:5])
    c.eq("exit status after SIGTERM", stop(p), 0)
    p = start("1s")  # every token is now long overdue

    def m():
        return h.http_request("127.0.0.1:%d" % port, "GET", "/metrics").text
    try:
        h.wait_until(lambda: metric(m(), "discoveryd_tokens_live") == 0, h.T(60), 0.1, "every token expired")
    except TimeoutError:
        pass
    text = m()
    c.eq("every overdue token expired", metric(text, "discoveryd_tokens_live"), 0)
    c.eq("... counted", metric(text, "discoveryd_tokens_expired_total"), n)
    chained = metric(text, "discoveryd_expiry_sweeps_chained_total")
    c.check("the backlog was swept in batches proposed back to back (>= 3 chained for %d in batches of 512)" % n,
            chained is not None and chained >= 3, chained)
    c.eq("exit status after SIGTERM", stop(p), 0)
    raw = h.read_text(log)
    marks = [x for x in h.DiscoverydBackend.SANITIZER_MARKS if x in raw]
    c.check("no sanitizer report", not marks, marks)


def main():
    c = h.Checks("live tokens are capped and expiry keeps up")
    d = h.DiscoverydBackend(c, extra_args=["--max-tokens", "5"])
    c.run("--max-tokens", scenario_cap, d)
    c.run("expiry keeps up with a backlog", scenario_expiry_keeps_up)
    c.finish()


if __name__ == "__main__":
    main()
