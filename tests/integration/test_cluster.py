#!/usr/bin/env python3
# tests/integration/test_cluster.py — three discoveryd replicating one store: any member answers any
# request (writes on followers are forwarded), reads agree byte for byte, quorum reads work on
# followers; real etcd 3.4 members bootstrap with each one pointed at a different discoveryd, also
# when the discoveryd leader is SIGKILLed between the first and the second registration (a fourth,
# surplus member falls back to proxy); and a
# registration load with a member SIGKILLed and restarted over and over loses no acknowledged write
# (every one is on every member with its createdIndex), while other clients record a history of quorum
# reads, writes and CAS over 8 keys that must pass the linearizability checker. Bad flag combinations
# are refused naming the flag. DISCOVERYD_SOAK=1 makes the kill loop run 10 minutes.
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_cluster.py

import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import linearizability as lin  # noqa: E402
from cluster_harness import leader, listing, start_cluster, stop_all  # noqa: E402

SOAK = os.environ.get("DISCOVERYD_SOAK") == "1"
BIN = os.environ.get("DISCOVERYD_BIN", "")


def scenario_any_member_answers(c, nodes):
    L = h.wait_until(lambda: leader(nodes), 15, 0.1, "a leader")
    followers = [x for x in nodes if x is not L]
    c.check("exactly one leader", sum(1 for x in nodes if x.metric("discoveryd_is_leader") == 1) == 1)
    r = h.http_request(followers[0].hostport, "GET", "/new?size=3")
    c.eq("/new on a follower", r.status, 200)
    tok = r.text.rsplit("/", 1)[1]
    for i, x in enumerate(nodes):
        r = h.http_request(x.hostport, "PUT", "/%s/m%d?prevExist=false" % (tok, i),
                           body="value=m%d%%3Dhttp%%3A%%2F%%2F10.0.0.%d%%3A2380" % (i, i))
        c.eq("a registration through %s (%s)" % (x.name, "leader" if x is L else "follower"), r.status, 201)
    r = h.http_request(followers[1].hostport, "PUT", "/%s/m0?prevExist=false" % tok, body="value=again")
    c.eq("a duplicate registration through a follower is 412 (decided in log order)", r.status, 412)

    def same():
        bodies = {listing(x, tok) for x in nodes}
        return bodies if len(bodies) == 1 else None
    b = h.wait_until(same, 10, 0.05, "identical token dirs")
    c.check("every member serves the same token dir, byte for byte", len(b) == 1 and list(b)[0][0] == 200)
    r = h.http_request(followers[0].hostport, "GET", "/%s?quorum=true&recursive=true&sorted=true" % tok)
    c.check("a quorum read on a follower sees every write", r.status == 200 and r.body == list(b)[0][1], r)
    lists = [h.http_request(x.hostport, "GET", "/v2/members").json().get("members", []) for x in nodes]
    names = [sorted((m["name"], tuple(m["peerURLs"])) for m in ml) for ml in lists]
    c.check("/v2/members lists the three members with their peer URLs, the same on every member",
            len(names[0]) == 3 and names.count(names[0]) == 3 and
            all(re.fullmatch(r"[0-9a-f]{1,16}", m["id"]) for m in lists[0]),  # %x, as etcd writes them
            lists[0])
    r = h.http_request(nodes[0].hostport, "POST", "/v2/members", body='{"peerURLs":"http://127.0.0.1:1"}',
                       headers={"Content-Type": "application/json"})
    c.eq("adding a member with a malformed body is 400 (test_membership.py adds and removes members)",
         r.status, 400)
    ids = {h.http_request(x.hostport, "GET", "/%s" % tok).header("X-Etcd-Cluster-Id") for x in nodes}
    c.check("every member answers with one X-Etcd-Cluster-Id", len(ids) == 1 and None not in ids, ids)
    # a watch parked on a follower is answered by a write through another member
    res = {}

    def watch():
        res["r"] = h.http_request(followers[0].hostport, "GET", "/%s?wait=true&recursive=true" % tok, timeout=20)
    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.5)
    h.http_request(followers[1].hostport, "PUT", "/%s/late" % tok, body="value=x")
    t.join(20)
    c.check("a watch on a follower fires on a write made through another member",
            "r" in res and res["r"].status == 200 and b"/late" in res["r"].body, res.get("r"))


class DiscoveryProxy:
    """An HTTP proxy for etcd's --discovery-proxy that sends everything to one discoveryd member.
    etcd derives its member IDs from the discovery URL, so members of one cluster must use the very
    same URL: the proxy is how each of them reaches a different discoveryd (as a load balancer or
    DNS would)."""

    def __init__(self, target, others=()):
        import http.server
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def relay(self):
                u = urllib.parse.urlsplit(self.path)
                path = u.path + ("?" + u.query if u.query else "")
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
                r = None
                for t in [proxy.target] + [x for x in proxy.others if x is not proxy.target]:
                    try:  # a member that is down is skipped, as a load balancer's health check would
                        r = h.http_request(t.hostport, self.command, path, body=body, headers=hdrs, timeout=90)
                        break
                    except ConnectionError:
                        continue
                    except Exception:  # noqa: BLE001
                        break
                if r is None:
                    self.send_error(502)
                    return
                self.send_response(r.status)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.body)))
                self.end_headers()
                self.wfile.write(r.body)
            do_GET = do_PUT = do_POST = do_DELETE = relay

        self.target = target
        self.others = list(others)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def scenario_etcd_bootstrap(c, nodes, kill_leader):
    label = "etcd members, one per discoveryd%s" % (", leader killed after the first" if kill_leader else "")
    r = h.http_request(nodes[0].hostport, "GET", "/new?size=3")
    tok = r.text.rsplit("/", 1)[1]
    url = "%s/%s" % (nodes[0].base, tok)  # one URL for all: etcd derives member IDs from it
    proxies = []

    def member(name, node):
        p = DiscoveryProxy(node, nodes)
        proxies.append(p)
        return h.Member(c, name, url, extra=["--discovery-proxy", p.url], gated=True)
    killed = None
    ms = [member("e1", nodes[0])]
    h.open_gates(ms)
    try:
        def registered(n):
            return lambda: (len(h.http_request(nodes[1].hostport, "GET", "/%s" % tok).json()["node"]
                                .get("nodes", [])) >= n) or None
        h.wait_until(registered(1), 30, 0.1, "the first registration")
        if kill_leader:
            killed = leader(nodes)
            killed.kill9()
        alive = [x for x in nodes if x is not killed]
        rest = [member("e2", alive[0]), member("e3", alive[-1])]
        h.open_gates(rest)
        ms += rest
        h.wait_cluster(ms, timeout=60)
        h.assert_cluster(c, label, ms)
        if killed:
            killed.start()
            killed = None
            h.wait_until(lambda: all(x.healthy() for x in nodes), 30, 0.1, "the killed member back")
        bodies = h.wait_until(lambda: (lambda s: s if len(s) == 1 else None)(
            {listing(x, tok)[1] for x in nodes}), 20, 0.1, "members agree on the token")
        got = h.http_request(nodes[0].hostport, "GET", "/%s" % tok).json()["node"].get("nodes", [])
        c.eq("%s: the token holds the three registrations on every member" % label, len(got), 3)
        # a surplus member, through yet another discoveryd member, learns the cluster is full
        m4 = member("e4", nodes[-1])
        ms.append(m4)
        h.open_gates([m4])
        h.wait_until(lambda: "falling back to proxy" in m4.log_text() or not m4.alive(), 30, 0.1,
                     "the surplus member to fall back to proxy")
        c.check("%s: a surplus member falls back to proxy and keeps running" % label,
                "falling back to proxy" in m4.log_text() and m4.alive(), h.tail(m4.log, 10))
    except Exception as e:  # noqa: BLE001
        c.check("%s: cluster formed" % label, False, e)
    finally:
        h.kill_members(ms)
        for p in proxies:
            p.close()
        if kill_leader and killed is not None:  # the scenarios after this one need all three
            killed.start()
            h.wait_until(lambda: all(x.healthy() for x in nodes), 30, 0.1, "every member back")


def scenario_rolling_restart(c, nodes):
    """SIGTERM one member after the other (the leader hands over first) while writers use the others,
    as a load balancer draining the member would: no write fails."""
    r = h.http_request(nodes[0].hostport, "GET", "/new?size=3")
    tok = r.text.rsplit("/", 1)[1]
    down = {"node": None}
    stop = threading.Event()
    res = {"ok": 0, "bad": []}
    lock = threading.Lock()

    def writer(w):
        i = 0
        while not stop.is_set() and i < 100000:
            i += 1
            x = random.choice([n for n in nodes if n is not down["node"]])
            try:
                r = h.http_request(x.hostport, "PUT", "/%s/roll/w%d-%d" % (tok, w, i), body="value=x", timeout=8)
                ok = r.status in (200, 201)
                detail = (x.name, r.status, r.body[:120])
            except Exception as e:  # noqa: BLE001
                ok, detail = False, (x.name, "exception", str(e))
            with lock:
                if ok:
                    res["ok"] += 1
                else:
                    res["bad"].append(detail)
            time.sleep(0.01)
    ws = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    for t in ws:
        t.start()
    changes = []
    for x in list(nodes):
        was_leader = x.metric("discoveryd_is_leader") == 1
        down["node"] = x
        time.sleep(0.3)  # the writers have moved off it
        x.proc.send_signal(15)
        rc = x.proc.wait(timeout=h.T(20))
        c.eq("%s (%s) stops with 0 on SIGTERM" % (x.name, "leader" if was_leader else "follower"), rc, 0)
        if was_leader:
            changes.append(x.name)
        x.start()
        h.wait_until(lambda: x.healthy(), 30, 0.05, "%s back" % x.name)
        down["node"] = None
        time.sleep(0.5)
    stop.set()
    for t in ws:
        t.join(30)
    print("# rolling restart: %d writes acknowledged, %d failed; leaders restarted: %s"
          % (res["ok"], len(res["bad"]), changes), flush=True)
    c.check("writes went on during the rolling restart", res["ok"] > 50, res["ok"])
    c.eq("writes that failed during the rolling restart", res["bad"][:5], [])
    c.check("the leader was among the members restarted", len(changes) >= 1, changes)


class LinClients:
    """Client threads recording a history of quorum reads, writes and CAS over a few keys (each a register)
    for the linearizability checker, spread over every member. Outcomes: 2xx ok; 412 or 404 on a CAS and
    any other 4xx is a definite failure; 5xx, a timeout or a connection error is unknown. Only quorum reads
    go in: a plain read may be stale in etcd v2 semantics."""

    def __init__(self, nodes, tok, n_clients=3, n_keys=8):
        self.nodes, self.tok = nodes, tok
        self.keys = ["k%d" % i for i in range(n_keys)]
        self.hist = lin.History()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(w,)) for w in range(n_clients)]

    def path(self, key):
        return "/v2/keys/discovery/%s/lin/%s" % (self.tok, key)

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def client(self, w):
        rnd = random.Random(w)
        last = {}  # key -> the last value this client saw there
        i = 0
        while not self.stop.is_set() and i < 100000:
            i += 1
            key = rnd.choice(self.keys)
            x = rnd.choice(self.nodes)
            p = rnd.random()
            value = "c%dx%d" % (w, i)
            if p < 0.4:
                op = self.hist.invoke("c%d@%s" % (w, x.name), key, "read")
                try:
                    r = h.http_request(x.hostport, "GET", self.path(key) + "?quorum=true", timeout=6)
                except Exception as e:  # noqa: BLE001
                    self.hist.finish(op, lin.UNKNOWN, note=type(e).__name__)
                    continue
                if r.status == 200:
                    v = r.json()["node"].get("value")
                    self.hist.finish(op, lin.OK, v)
                    last[key] = v
                elif r.status == 404:
                    self.hist.finish(op, lin.OK, lin.MISSING)
                else:
                    self.hist.finish(op, lin.UNKNOWN if r.status >= 500 else lin.FAIL, note=str(r.status))
                continue
            if p < 0.75 or key not in last:
                op = self.hist.invoke("c%d@%s" % (w, x.name), key, "write", value)
                path = self.path(key)
            else:
                op = self.hist.invoke("c%d@%s" % (w, x.name), key, "cas", value, expected=last[key])
                path = self.path(key) + "?prevValue=" + urllib.parse.quote(last[key], safe="")
            try:
                r = h.http_request(x.hostport, "PUT", path, body="value=" + value, timeout=6)
            except Exception as e:  # noqa: BLE001
                self.hist.finish(op, lin.UNKNOWN, note=type(e).__name__)
                time.sleep(0.02)
                continue
            if r.status in (200, 201):
                self.hist.finish(op, lin.OK)
                last[key] = value
            else:
                self.hist.finish(op, lin.UNKNOWN if r.status >= 500 else lin.FAIL, note=str(r.status))
                if r.status >= 500:
                    time.sleep(0.02)

    def verdict(self, c):
        ops = list(self.hist.ops)
        counts = self.hist.counts()
        t0 = time.monotonic()
        res = lin.check(ops)
        print("# linearizability history: %d ops over %d keys (%s); checker: %s in %.2fs, %d states searched"
              % (len(ops), len(self.keys), ", ".join("%s %d" % kv for kv in sorted(counts.items())),
                 {True: "linearizable", False: "NOT linearizable", None: "unknown"}[res.verdict],
                 time.monotonic() - t0, res.steps), flush=True)
        c.check("the history has acknowledged quorum reads, writes and CAS (%d, %d, %d)"
                % (counts.get("read ok", 0), counts.get("write ok", 0), counts.get("cas ok", 0)),
                counts.get("read ok", 0) > 20 and counts.get("write ok", 0) > 20 and counts.get("cas ok", 0) > 5,
                counts)
        c.check("history of %d ops over %d keys is linearizable" % (len(ops), len(self.keys)), res.verdict is True,
                res.message)
        bad = lin.with_stale_read(ops)
        res = lin.check(bad) if bad else None
        c.check("the same history with one quorum read made stale is rejected by the checker",
                res is not None and res.verdict is False, res)


def scenario_no_leader(c, nodes):
    """Two of three members down: the last one has no leader; its /health is 503 with a reason and a
    write gets 503 within a few seconds (never a 4xx, never a hang); reads still answer. Then the
    two come back and writes go on."""
    r = h.http_request(nodes[0].hostport, "GET", "/new?size=3")
    tok = r.text.rsplit("/", 1)[1]
    alone, down = nodes[0], nodes[1:]
    h.wait_until(lambda: listing(alone, tok)[0] == 200, 10, 0.05, "the token on the member left alone")
    for x in down:
        x.kill9()
    try:
        def no_leader():
            r = h.http_request(alone.hostport, "GET", "/health", timeout=5)
            return r if r.status == 503 else None
        r = h.wait_until(no_leader, 20, 0.1, "/health 503 on the member left alone")
        c.check("/health of a member without a leader is 503 with a reason", b"leader" in r.body, r.body)
        t0 = time.time()
        r = h.http_request(alone.hostport, "PUT", "/%s/m1?prevExist=false" % tok, body="value=x", timeout=15)
        took = time.time() - t0
        c.eq("a write to a member without a leader is 503 (members retry 5xx)", r.status, 503)
        # the member gives up after 4 s; the bound leaves room for a loaded machine, not for a hang
        c.check("... answered after the member's bounded wait, not left hanging", took < 6.0, "%.2fs" % took)
        c.eq("a read on a member without a leader still answers", listing(alone, tok)[0], 200)
    finally:
        for x in down:
            x.start()
        h.wait_until(lambda: all(x.healthy() for x in nodes), 30, 0.1, "every member back")
    r = h.http_request(alone.hostport, "PUT", "/%s/m1?prevExist=false" % tok, body="value=x", timeout=10)
    c.eq("with the majority back, the write goes through", r.status, 201)


def scenario_kill_loop(c, nodes):
    seconds = 600 if SOAK else 25
    r = h.http_request(nodes[0].hostport, "GET", "/new?size=3")
    tok = r.text.rsplit("/", 1)[1]
    acked, lock, stop = {}, threading.Lock(), threading.Event()
    counts = {"sent": 0, "failed": 0, "kills": 0}

    def writer(w):
        i = 0
        while not stop.is_set() and i < 200000:
            i += 1
            x = random.choice(nodes)
            key = "w%d-%d" % (w, i)
            with lock:
                counts["sent"] += 1
            try:
                r = h.http_request(x.hostport, "PUT", "/v2/keys/discovery/%s/load/%s?prevExist=false" % (tok, key),
                                   body="value=%s" % key, timeout=6)
                if r.status == 201:
                    with lock:
                        acked[key] = r.json()["node"]["createdIndex"]
                    continue
            except Exception:  # noqa: BLE001
                pass
            with lock:
                counts["failed"] += 1
            time.sleep(0.05)
    ws = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in ws:
        t.start()
    lc = LinClients(nodes, tok)
    lc.start()
    t_end = time.time() + seconds
    failover = []
    while time.time() < t_end:
        time.sleep(random.uniform(1.0, 2.5))
        victim = leader(nodes) if random.random() < 0.6 else random.choice(nodes)
        if victim is None:
            continue
        victim.kill9()
        counts["kills"] += 1
        t0 = time.time()
        others = [x for x in nodes if x is not victim]

        def a_write_lands():
            x = random.choice(others)
            try:
                r = h.http_request(x.hostport, "PUT", "/%s/probe/k%d" % (tok, counts["kills"]), body="value=p",
                                   timeout=6)
                return r.status in (200, 201)
            except Exception:  # noqa: BLE001
                return False
        try:
            h.wait_until(a_write_lands, 20, 0.01, "a write acknowledged by a survivor")
            failover.append(time.time() - t0)
        except TimeoutError:
            c.check("a survivor acknowledges a write within 20 s of a kill", False)
        time.sleep(random.uniform(0.2, 1.5))
        victim.start()
        h.wait_until(lambda: victim.healthy(), 30, 0.05, "%s back" % victim.name)
    stop.set()
    for t in ws:
        t.join(30)
    lc.join()
    lc.verdict(c)
    h.wait_until(lambda: (lambda s: s if len(s) == 1 else None)({listing(x, tok)[1] for x in nodes}), 30, 0.2,
                 "members agree after the kills")
    got = {}
    for d in h.http_request(nodes[0].hostport, "GET", "/%s?recursive=true" % tok).json()["node"].get("nodes", []):
        for n in d.get("nodes", []) if d["key"].endswith("/load") else []:
            got[n["key"].rsplit("/", 1)[1]] = n["createdIndex"]
    lost = [k for k, ci in acked.items() if got.get(k) != ci]
    idx = [ci for ci in got.values()]
    failover.sort()
    print("# writes sent %d, acknowledged %d, failed or indeterminate %d, kills %d, lost %d; from a kill to the "
          "first acknowledged write on a survivor: median %.2fs, max %.2fs"
          % (counts["sent"], len(acked), counts["failed"], counts["kills"], len(lost),
             failover[len(failover) // 2] if failover else 0, failover[-1] if failover else 0), flush=True)
    c.check("writes were acknowledged during the kills", len(acked) > 50, len(acked))
    c.eq("acknowledged writes lost (missing, or another createdIndex)", len(lost), 0)
    c.check("no createdIndex was given twice", len(set(idx)) == len(idx))


def scenario_bad_flags(c):
    ports = h.free_ports(2)
    base = [BIN, "--listen", "127.0.0.1:%d" % ports[0], "--data-dir", h.tmpdir("badflags")]
    cases = [
        (["--name", "x", "--initial-cluster", "a=http://127.0.0.1:%d" % ports[1]], "--name"),
        (["--name", "a", "--initial-cluster", "a=http://127.0.0.1:1,a=http://127.0.0.1:2"], "--initial-cluster"),
        (["--listen-peer-urls", "http://127.0.0.1:1"], "--listen-peer-urls"),
        (["--name", "a", "--initial-cluster", "a=http://127.0.0.1:1", "--election-timeout", "100ms"],
         "--election-timeout"),
    ]
    for extra, flag in cases:
        p = subprocess.run(base + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        c.check("%s refused, naming %s" % (" ".join(extra), flag),
                p.returncode == 2 and flag.encode() in p.stderr, (p.returncode, p.stderr[-200:]))


def main():
    c = h.Checks("three discoveryd replicating one store")
    c.run("bad cluster flags", scenario_bad_flags)
    try:
        nodes = start_cluster(c)
    except Exception as e:  # noqa: BLE001
        c.check("the cluster started", False, e)
        c.finish()
    c.run("any member answers any request", scenario_any_member_answers, nodes)
    c.run("etcd members, each on another discoveryd", scenario_etcd_bootstrap, nodes, False)
    c.run("etcd members, the discoveryd leader killed between registrations", scenario_etcd_bootstrap, nodes, True)
    c.run("a rolling restart (SIGTERM hands leadership over)", scenario_rolling_restart, nodes)
    c.run("a member without a leader", scenario_no_leader, nodes)
    c.run("registrations while members are killed", scenario_kill_loop, nodes)
    stop_all(c, nodes)  # a graceful stop of every member, and no sanitizer report in any log
    c.finish()


if __name__ == "__main__":
    main()
