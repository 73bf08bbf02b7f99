#!/usr/bin/env python3
# tests/integration/test_nemesis.py — fault runs on real discoveryd processes. A client load (registration
# PUTs, writes and CAS with prevValue, quorum and plain reads, over several tokens, against every member)
# records a history while a nemesis injects one kind of fault per run, then all kinds mixed: SIGKILL of the
# leader, of a follower, of a majority (writes stop: 5xx within the bounded wait, never a 4xx, never a hang;
# then resume); partitions through a fault-injecting proxy between peers (faultproxy.py: leader isolated,
# majority/minority split, one-way loss); SIGSTOP/SIGCONT of the leader for longer than the election timeout;
# a follower SIGKILLed while the others take more writes than the leader keeps (it restarts and catches up by
# snapshot). The mixed run adds a paused follower and SIGKILLs while a snapshot streams.
# Each run prints ops sent, acknowledged, failed, indeterminate, faults injected, acknowledged writes lost
# (must be 0) and the linearizability checker's verdict on the quorum reads, writes and CAS. A five-member
# cluster runs two kinds (two members incl. the leader SIGKILLed; a 2/3 split). The per-peer /metrics move:
# frames sent grow, a member cut off by the proxy shows as disconnected with frames queued for it, a member
# that fell too far behind gets a snapshot. DISCOVERYD_SOAK=1 runs each nemesis for 10 minutes.
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_nemesis.py

import os
import random
import re
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import linearizability as lin  # noqa: E402
from cluster_harness import leader, listing, start_cluster, stop_all  # noqa: E402

SOAK = os.environ.get("DISCOVERYD_SOAK") == "1"
RUN_SECONDS = 600 if SOAK else 16
CLIENT_TIMEOUT = 10.0   # an answer must come before this: the members' own bounded wait is 4 s
HOLD = (2.5, 4.0)       # how long a partition or a pause lasts: longer than the 1 s election timeout


class Load:
    """Client threads against every member. Registrations (PUT prevExist=false of a unique key) are
    remembered with their createdIndex when acknowledged; writes, CAS and quorum reads of a few registers
    per token go to the linearizability history; plain reads (not linearizable by design) must return a
    value someone wrote. Outcomes: 2xx acknowledged; a 412/404 of a CAS, or a refused connection (nothing
    was sent), failed; a 5xx, a reset or a timeout indeterminate. Any other 4xx is a violation, and so is
    a timeout on a member that was not paused (a hang)."""

    def __init__(self, nodes, toks, n_reg=3, n_lin=4, keys_per_tok=4):
        self.nodes, self.toks = nodes, toks
        self.keys = [(t, "k%d" % i) for t in toks for i in range(keys_per_tok)]
        self.hist = lin.History()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.n = {"sent": 0, "acknowledged": 0, "failed": 0, "indeterminate": 0}
        self.acked_regs = {}     # (tok, key) -> createdIndex
        self.acks = []           # (invoke, complete) of every acknowledged mutation, for "writes stop"
        self.violations = []     # 4xx that must not happen, hangs
        self.written = {}        # (tok, key) -> every value a write or CAS tried to put there
        self.stale_plain = []    # plain reads of a value nobody wrote
        self.plain = {"ok": 0, "5xx": 0}
        self.pauses = []         # (node, t0, t1) windows while a member was stopped
        self.threads = [threading.Thread(target=self.registrations, args=(w,)) for w in range(n_reg)] + \
            [threading.Thread(target=self.registers, args=(w,)) for w in range(n_lin)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def count(self, what, t0=None, t1=None):
        with self.lock:
            self.n[what] += 1
            if what == "acknowledged" and t0 is not None:
                self.acks.append((t0, t1))

    def paused_during(self, node, t0, t1):
        return node.paused or any(n is node and a <= t1 and (b is None or b >= t0) for n, a, b in self.pauses)

    def call(self, x, method, path, body=None):
        """(Resp or None, what happened: "resp", "refused", "timeout", or an exception name)."""
        with self.lock:
            self.n["sent"] += 1
        t0 = time.monotonic()
        try:
            return h.http_request(x.hostport, method, path, body=body, timeout=CLIENT_TIMEOUT), "resp"
        except ConnectionRefusedError:
            return None, "refused"
        except (socket.timeout, TimeoutError):
            if not self.paused_during(x, t0, time.monotonic()):
                with self.lock:
                    self.violations.append("%s %s on %s: no answer in %.0f s" % (method, path, x.name,
                                                                                   CLIENT_TIMEOUT))
            return None, "timeout"
        except Exception as e:  # noqa: BLE001 - a reset by a killed member and the like
            return None, type(e).__name__

    def bad4xx(self, x, method, path, r):
        with self.lock:
            self.violations.append("%s %s on %s: %d %s" % (method, path, x.name, r.status, r.body[:160]))

    def registrations(self, w):
        rnd = random.Random(1000 + w)
        i = 0
        while not self.stop.is_set() and i < 1000000:
            i += 1
            x = rnd.choice(self.nodes)
            tok = rnd.choice(self.toks)
            key = "w%d-%d" % (w, i)
            path = "/v2/keys/discovery/%s/reg/%s?prevExist=false" % (tok, key)
            t0 = time.monotonic()
            r, what = self.call(x, "PUT", path, "value=" + key)
            if r is not None and r.status == 201:
                self.count("acknowledged", t0, time.monotonic())
                with self.lock:
                    self.acked_regs[(tok, key)] = r.json()["node"]["createdIndex"]
                continue
            if r is not None and 400 <= r.status < 500:
                self.bad4xx(x, "PUT", path, r)  # a unique key: even 412 would mean a write happened twice
                self.count("failed")
            elif what == "refused":
                self.count("failed")
            else:
                self.count("indeterminate")
            time.sleep(0.02)

    def registers(self, w):
        rnd = random.Random(2000 + w)
        last = {}
        i = 0
        while not self.stop.is_set() and i < 1000000:
            i += 1
            tk = rnd.choice(self.keys)
            tok, key = tk
            x = rnd.choice(self.nodes)
            path = "/v2/keys/discovery/%s/lin/%s" % (tok, key)
            p = rnd.random()
            client = "c%d@%s" % (w, x.name)
            if p < 0.15:  # a plain read: served from the member's applied state
                r, what = self.call(x, "GET", path)
                if r is not None and r.status in (200, 404):
                    self.count("acknowledged")
                    v = r.json()["node"].get("value") if r.status == 200 else None
                    with self.lock:
                        self.plain["ok"] += 1
                        if v is not None and v not in self.written.get(tk, ()):
                            self.stale_plain.append((x.name, tok, key, v))
                elif r is not None and r.status < 500:
                    self.bad4xx(x, "GET", path, r)
                    self.count("failed")
                else:
                    if r is not None:
                        with self.lock:
                            self.plain["5xx"] += 1
                    self.count("failed" if what == "refused" else "indeterminate")
                    time.sleep(0.02)
                continue
            if p < 0.45:
                op = self.hist.invoke(client, tk, "read")
                r, what = self.call(x, "GET", path + "?quorum=true")
                if r is not None and r.status == 200:
                    v = r.json()["node"].get("value")
                    self.hist.finish(op, lin.OK, v)
                    last[tk] = v
                    self.count("acknowledged")
                elif r is not None and r.status == 404:
                    self.hist.finish(op, lin.OK, lin.MISSING)
                    self.count("acknowledged")
                elif r is not None and r.status < 500:
                    self.hist.finish(op, lin.FAIL, note=str(r.status))
                    self.bad4xx(x, "GET", path + "?quorum=true", r)
                    self.count("failed")
                else:
                    self.hist.finish(op, lin.UNKNOWN, note=what if r is None else str(r.status))
                    self.count("failed" if what == "refused" else "indeterminate")
                    time.sleep(0.02)
                continue
            value = "c%dx%d" % (w, i)
            with self.lock:
                self.written.setdefault(tk, set()).add(value)
            if p < 0.75 or tk not in last:
                op = self.hist.invoke(client, tk, "write", value)
                q = path
            else:
                op = self.hist.invoke(client, tk, "cas", value, expected=last[tk])
                q = path + "?prevValue=" + urllib.parse.quote(last[tk], safe="")
            t0 = time.monotonic()
            r, what = self.call(x, "PUT", q, "value=" + value)
            if r is not None and r.status in (200, 201):
                self.hist.finish(op, lin.OK)
                last[tk] = value
                self.count("acknowledged", t0, time.monotonic())
            elif r is not None and op.kind == "cas" and r.status in (404, 412):
                self.hist.finish(op, lin.FAIL, note=str(r.status))
                self.count("failed")
            elif r is not None and r.status < 500:
                self.hist.finish(op, lin.FAIL, note=str(r.status))
                self.bad4xx(x, "PUT", q, r)
                self.count("failed")
            elif what == "refused":
                self.hist.finish(op, lin.FAIL, note="refused")
                self.count("failed")
                time.sleep(0.02)
            else:
                self.hist.finish(op, lin.UNKNOWN, note=what if r is None else str(r.status))
                self.count("indeterminate")
                time.sleep(0.02)


def bulk(node, tok, n=1600, threads=8, seconds=60):
    """n writes to node over kept-alive connections (more than a leader keeps behind a snapshot with
    --snapshot-count 300 and 1000 entries kept); bounded by count and by time. Returns (done, errors)."""
    errs, done, lock = [], [0], threading.Lock()
    t_end = time.monotonic() + seconds

    def writer(w):
        try:
            ka = h.KeepAlive(node.hostport, timeout=CLIENT_TIMEOUT)
        except Exception as e:  # noqa: BLE001
            errs.append(type(e).__name__)
            return
        try:
            for i in range(n // threads):
                if time.monotonic() > t_end:
                    errs.append("out of time")
                    break
                r, _ = ka.request("PUT", "/%s/bulk/%d-%d-%d" % (tok, w, i, random.getrandbits(30)), body="value=x")
                with lock:
                    done[0] += 1
                    if r.status != 201:
                        errs.append(r.status)
        except Exception as e:  # noqa: BLE001
            errs.append(type(e).__name__)
        finally:
            ka.close()
    ws = [threading.Thread(target=writer, args=(w,)) for w in range(threads)]
    for t in ws:
        t.start()
    for t in ws:
        t.join(seconds + 2 * CLIENT_TIMEOUT)
    return done[0], errs


class Run:
    """One nemesis run: a fresh set of tokens, the load, and faults until the time is up."""

    def __init__(self, c, nodes, net, label):
        self.c, self.nodes, self.net, self.label = c, nodes, net, label
        self.faults = 0
        self.majority_windows = []  # (t0, t1) while a majority was down: no write may be acknowledged
        self.probes = []            # (status or exception, seconds) of writes sent while a majority was down
        self.resumed = 0            # majority losses after which a write was acknowledged again

    def others(self, x):
        return [o for o in self.nodes if o is not x]

    def all_back(self, what):
        self.net.heal()
        for x in self.nodes:
            x.resume()
            if not x.alive():
                x.start()
        h.wait_until(lambda: all(x.healthy() for x in self.nodes), 30, 0.1, "every member healthy after %s" % what)

    def hold(self):
        time.sleep(random.uniform(*HOLD))

    def pick_leader(self):
        return h.wait_until(lambda: leader(self.nodes), 15, 0.1, "a leader")

    # ---- one fault each: inject, hold, heal, wait until every member is healthy again
    def kill_leader(self):
        v = self.pick_leader()
        v.kill9()
        self.faults += 1
        time.sleep(random.uniform(0.5, 2.0))
        self.all_back("a leader SIGKILL")

    def kill_follower(self):
        L = self.pick_leader()
        v = random.choice(self.others(L))
        v.kill9()
        self.faults += 1
        time.sleep(random.uniform(0.5, 2.0))
        self.all_back("a follower SIGKILL")

    def kill_majority(self):
        L = self.pick_leader()
        k = len(self.nodes) // 2 + 1
        victims = [L] + random.sample(self.others(L), k - 1)
        for v in victims:
            v.kill9()
        self.faults += 1
        t0 = time.monotonic()
        left = [x for x in self.nodes if x not in victims]
        for i in range(2):  # a write on a survivor: 5xx after the bounded wait, not a 4xx, not a hang
            x = left[i % len(left)]
            s = time.monotonic()
            try:
                r = h.http_request(x.hostport, "PUT", "/%s/probe-%d-%d" % (self.load.toks[0], self.faults, i),
                                   body="value=p", timeout=CLIENT_TIMEOUT)
                self.probes.append((r.status, time.monotonic() - s))
            except Exception as e:  # noqa: BLE001
                self.probes.append((type(e).__name__, time.monotonic() - s))
        self.majority_windows.append((t0, time.monotonic()))
        self.all_back("a majority SIGKILL")

        def lands():
            r = h.http_request(left[0].hostport, "PUT", "/%s/probe-%d-ok" % (self.load.toks[0], self.faults),
                               body="value=p", timeout=CLIENT_TIMEOUT)
            return r.status in (200, 201)
        self.resumed += bool(h.wait_until(lands, 30, 0.1, "a write with the majority back"))

    def partition_leader(self):
        L = self.pick_leader()
        self.net.partition([L.id], [o.id for o in self.others(L)])
        self.faults += 1
        self.hold()
        self.all_back("the leader isolated")

    def partition_split(self):
        xs = list(self.nodes)
        random.shuffle(xs)
        k = (len(xs) - 1) // 2  # the minority: 1 of 3, 2 of 5
        self.net.partition([x.id for x in xs[:k]], [x.id for x in xs[k:]])
        self.faults += 1
        self.hold()
        self.all_back("a majority/minority split")

    def one_way(self):
        L = self.pick_leader()
        f = random.choice(self.others(L))
        a, b = (L, f) if random.random() < 0.5 else (f, L)
        self.net.drop(a.id, b.id)
        self.faults += 1
        self.hold()
        self.all_back("one-way loss %s -> %s" % (a.name, b.name))

    def behind_restart(self):
        """A follower SIGKILLed while the others take more writes than the leader keeps of its log: it
        restarts (replaying its own log, snapshotting as it applies) and catches up by the leader's snapshot."""
        L = self.pick_leader()
        F = random.choice(self.others(L))
        F.kill9()
        self.faults += 1
        bulk(L, self.load.toks[self.faults % len(self.load.toks)])
        F.start()
        self.all_back("a follower far behind restarted")

    def pause_follower(self):
        F = random.choice(self.others(self.pick_leader()))
        F.pause()
        t0 = time.monotonic()
        self.faults += 1
        try:
            self.hold()
        finally:
            F.resume()
            self.load.pauses.append((F, t0, time.monotonic()))
        self.all_back("a follower paused")

    def cut_during_snapshot(self):
        """A follower cut off while the leader moves on past its log; healed, and SIGKILLed (itself or the
        leader) while the leader's snapshot may be streaming to it."""
        L = self.pick_leader()
        F = random.choice(self.others(L))
        self.net.isolate(F.name, F.id, [x.id for x in self.others(F)])
        self.faults += 1
        bulk(L, self.load.toks[self.faults % len(self.load.toks)])
        self.net.heal()
        time.sleep(random.uniform(0.0, 0.3))
        random.choice([L, F]).kill9()
        time.sleep(random.uniform(0.3, 1.0))
        self.all_back("a SIGKILL while a snapshot streams")

    def pause_leader(self):
        L = self.pick_leader()
        L.pause()
        t0 = time.monotonic()
        self.faults += 1
        try:
            self.hold()
        finally:
            L.resume()
            self.load.pauses.append((L, t0, time.monotonic()))
        self.all_back("the leader paused")

    def go(self, steps, seconds, n_toks=6):
        toks = []
        for _ in range(n_toks):
            r = h.http_request(self.nodes[0].hostport, "GET", "/new?size=3")
            toks.append(r.text.rsplit("/", 1)[1])
        self.load = Load(self.nodes, toks)
        self.load.start()
        t_end = time.monotonic() + seconds
        try:
            time.sleep(1.0)
            rounds = 0
            while time.monotonic() < t_end and rounds < 10000:
                rounds += 1
                random.choice(steps)()
                time.sleep(random.uniform(0.3, 1.0))
        finally:
            self.load.join()
            try:
                self.all_back("the run")
            except Exception as e:  # noqa: BLE001
                self.c.check("%s: every member healthy after the run" % self.label, False, e)
        self.verdict()

    def verdict(self):
        c, L = self.c, self.load
        # every member converges on the same tokens; every acknowledged registration is on every member
        for tok in L.toks:
            h.wait_until(lambda: (lambda s: s if len(s) == 1 else None)({listing(x, tok)[1] for x in self.nodes}),
                         30, 0.2, "members agree on token %s" % tok)
        lost = 0
        for x in self.nodes:
            got = {}
            for tok in L.toks:
                r = h.http_request(x.hostport, "GET", "/v2/keys/discovery/%s/reg?recursive=true" % tok, timeout=10)
                for n in r.json().get("node", {}).get("nodes", []) if r.status == 200 else []:
                    got[(tok, n["key"].rsplit("/", 1)[1])] = n["createdIndex"]
            lost = max(lost, sum(1 for k, ci in L.acked_regs.items() if got.get(k) != ci))
        ops = list(L.hist.ops)
        t0 = time.monotonic()
        res = lin.check(ops)
        counts = L.hist.counts()
        verdict = {True: "linearizable", False: "NOT linearizable", None: "unknown (search budget)"}[res.verdict]
        print("# %s: ops sent %d, acknowledged %d, failed %d, indeterminate %d; faults injected %d; "
              "acknowledged writes lost %d; linearizability: %s (%d quorum reads/writes/CAS over %d keys, %.1fs); "
              "plain reads %d ok, %d answered 5xx; proxy frames %s"
              % (self.label, L.n["sent"], L.n["acknowledged"], L.n["failed"], L.n["indeterminate"], self.faults,
                 lost, verdict, len(ops), len(L.keys), time.monotonic() - t0, L.plain["ok"], L.plain["5xx"],
                 self.net.stats()), flush=True)
        c.check("%s: faults were injected (%d)" % (self.label, self.faults), self.faults >= 1)
        c.check("%s: writes, CAS and quorum reads were acknowledged (%s)" % (self.label, counts),
                counts.get("write ok", 0) > 10 and counts.get("read ok", 0) > 10 and counts.get("cas ok", 0) > 2)
        c.check("%s: registrations were acknowledged (%d)" % (self.label, len(L.acked_regs)), len(L.acked_regs) > 10)
        c.eq("%s: acknowledged registrations lost (missing on a member, or another createdIndex)" % self.label,
             lost, 0)
        c.check("%s: the history is linearizable" % self.label, res.verdict is True, res.message)
        bad = lin.with_stale_read(ops)
        res = lin.check(bad) if bad else None
        c.check("%s: the same history with one quorum read made stale is rejected by the checker" % self.label,
                res is not None and res.verdict is False, res)
        c.eq("%s: 4xx answers that only a bug explains, and hangs" % self.label, L.violations[:5], [])
        c.eq("%s: plain reads of a value nobody wrote" % self.label, L.stale_plain[:5], [])
        if self.majority_windows:
            during = [a for a in L.acks for w in self.majority_windows if a[0] >= w[0] and a[1] <= w[1]]
            c.eq("%s: writes acknowledged while a majority was down" % self.label, len(during), 0)
            bad = [p for p in self.probes if not (isinstance(p[0], int) and 500 <= p[0] < 600)]
            c.eq("%s: writes on a survivor of a majority loss are answered 5xx (not 4xx, not left hanging)"
                 % self.label, bad, [])
            c.eq("%s: writes resume once the majority is back, after each loss" % self.label, self.resumed,
                 len(self.majority_windows))


def peer_metrics(c, nodes, net):
    """The per-peer /metrics of the leader: frames sent grow; a member cut off by the proxy shows as
    disconnected with frames queued for it and no more sent; back, it is sent to again, and having missed
    more than the leader keeps of its log, it gets a snapshot. Proposals count as committed."""
    L = leader(nodes)
    F = [x for x in nodes if x is not L][0]
    lbl = '{peer="%x"}' % F.id

    def m(name, node=L):
        return node.metric(name, lbl if name.startswith("discoveryd_peer_") else "")
    s0 = m("discoveryd_peer_frames_sent_total")
    c.check("the leader counts frames sent to each peer (%s)" % s0, s0 is not None and
            h.wait_until(lambda: m("discoveryd_peer_frames_sent_total") > s0, 10, 0.1, "frames sent grow"))
    text = L.metrics_text()
    for fam in ("discoveryd_peer_frames_dropped_total", "discoveryd_peer_snapshots_sent_total",
                "discoveryd_peer_queued_bytes", "discoveryd_peer_connected"):
        c.eq("%s has a sample for each of the %d peers" % (fam, len(nodes) - 1),
             len(re.findall(r'^%s\{peer="[0-9a-f]+"\} \d+$' % fam, text, re.M)), len(nodes) - 1)
    snaps0 = m("discoveryd_peer_snapshots_sent_total")
    committed0 = m("discoveryd_proposals_committed_total")
    net.isolate(F.name, F.id, [x.id for x in nodes if x is not F])
    try:
        c.check("a member cut off shows as disconnected on the leader",
                h.wait_until(lambda: m("discoveryd_peer_connected") == 0, 10, 0.1, "disconnected"))
        c.check("frames for it wait in its queue", h.wait_until(lambda: m("discoveryd_peer_queued_bytes") > 0,
                                                                   10, 0.1, "queued"))
        s1 = m("discoveryd_peer_frames_sent_total")
        r = h.http_request(L.hostport, "GET", "/new?size=3")
        tok = r.text.rsplit("/", 1)[1]
        watched = {}

        def watch():  # parked on the member cut off, for a key the cluster writes meanwhile
            try:
                watched["r"] = h.http_request(F.hostport, "GET", "/%s/bulk?wait=true&recursive=true" % tok,
                                              timeout=60)
            except Exception as e:  # noqa: BLE001
                watched["r"] = e
        wt = threading.Thread(target=watch)
        wt.start()
        n_done, errs = bulk(L, tok)
        c.eq("1600 writes with a member cut off are acknowledged", (n_done, errs[:3]), (1600, []))
        c.eq("nothing more is sent to the member cut off", m("discoveryd_peer_frames_sent_total"), s1)
        c.check("proposals committed grow by the writes", (m("discoveryd_proposals_committed_total") or 0) >=
                committed0 + 1600, m("discoveryd_proposals_committed_total"))
    finally:
        net.heal()
    c.check("back, the member is connected and sent to again",
            h.wait_until(lambda: m("discoveryd_peer_connected") == 1 and
                         m("discoveryd_peer_frames_sent_total") > s1, 20, 0.1, "reconnected"))
    c.check("it caught up by a snapshot stream (snapshots sent to it grow)",
            h.wait_until(lambda: m("discoveryd_peer_snapshots_sent_total") > snaps0, 30, 0.2, "a snapshot sent"),
            m("discoveryd_peer_snapshots_sent_total"))
    h.wait_until(lambda: (lambda s: s if len(s) == 1 else None)({listing(x, tok)[1] for x in nodes}), 30, 0.2,
                 "the member caught up")
    wt.join(60)
    c.check("a watch parked on the member cut off is answered once it caught up (200, empty or an event)",
            isinstance(watched.get("r"), h.Resp) and watched["r"].status == 200, watched.get("r"))
    c.eq("the queue to it is empty again", h.wait_until(lambda: m("discoveryd_peer_queued_bytes") == 0, 10, 0.1,
                                                         "queue drained"), True)


def three(c):
    nodes, net = start_cluster(c, 3, proxied=True)
    try:
        c.run("per-peer metrics", peer_metrics, nodes, net)
        kinds = []
        for label, step in (("SIGKILL of the leader", "kill_leader"), ("SIGKILL of a follower", "kill_follower"),
                            ("SIGKILL of a majority", "kill_majority"), ("the leader isolated", "partition_leader"),
                            ("a majority/minority split", "partition_split"), ("one-way loss", "one_way"),
                            ("the leader paused (SIGSTOP)", "pause_leader"),
                            ("a follower far behind restarts (snapshot catch-up)", "behind_restart")):
            kinds.append(step)

            def one(c, label=label, step=step):
                r = Run(c, nodes, net, label)
                r.go([getattr(r, step)], RUN_SECONDS)
            c.run("nemesis: " + label, one)

        def mixed(c):
            r = Run(c, nodes, net, "mixed faults")
            r.go([getattr(r, k) for k in kinds + ["pause_follower", "cut_during_snapshot"]], RUN_SECONDS * 2)
        c.run("nemesis: every kind mixed", mixed)
        # the proposals that failed while a majority was down were counted
        failed = sum(x.metric("discoveryd_proposals_failed_total") or 0 for x in nodes)
        c.check("proposals failed are counted (%d on the members up now)" % failed, failed > 0)
    finally:
        stop_all(c, nodes)
        net.close()


def five(c):
    nodes, net = start_cluster(c, 5, proxied=True)
    try:
        def kill_two(c):
            r = Run(c, nodes, net, "5 members: SIGKILL of two incl. the leader")

            def step():
                L = r.pick_leader()
                vs = [L, random.choice(r.others(L))]
                for v in vs:
                    v.kill9()
                r.faults += 1
                time.sleep(random.uniform(1.0, 2.5))
                r.all_back("two members SIGKILLed")
            r.go([step], RUN_SECONDS)
        c.run("nemesis, 5 members: SIGKILL of two incl. the leader", kill_two)

        def split(c):
            r = Run(c, nodes, net, "5 members: a 2/3 split")
            r.go([r.partition_split, r.partition_leader], RUN_SECONDS)
        c.run("nemesis, 5 members: a 2/3 split", split)
    finally:
        stop_all(c, nodes)
        net.close()


def main():
    c = h.Checks("fault runs: a nemesis against replicated discoveryd")
    c.run("three members", three)
    c.run("five members", five)
    c.finish()


if __name__ == "__main__":
    main()
