#!/usr/bin/env python3
"""tests/bench/cluster.py — the cluster benchmarks of issue 8: a 3-node discoveryd cluster beside a
3-member etcd 3.4 cluster (--enable-v2=true, default fsync), both on loopback of this machine,
alternating targets, fresh clusters and data dirs per run:

  throughput  (a) GET of a 3-member token dir (wrk, get.lua) on a follower and on the leader;
              (b) durable registration PUTs through the leader and (c) through a follower
              (bench_load, closed loop, 64 connections, over TOKENS tokens seeded with _config/size=3);
              req/s, p50, p99 per round, medians with min–max spread, discoveryd/etcd ratios.
  failover    TRIALS times: a client writes one registration at a time to the two survivors-to-be,
              the leader is `kill -9`ed, time from the kill to the first 2xx of a write sent after
              the kill; then the killed member is restarted and waited for (healthy, caught up).
  catchup     a follower is `kill -9`ed, CATCHUP registrations go through the leader, the follower is
              restarted: time until its applied index reaches the leader's commit index, and whether it
              caught up by snapshot or by log.

One command: tests/bench/cluster.py [--rounds 3] [--duration 10] [--trials 20] [--catchup 100000,5000]
             [--quick] [--out BENCHMARKS.md] [--json FILE] [--report-from JSON...] [--no-build]
Writes the <!-- cluster:begin --> ... <!-- cluster:end --> section of BENCHMARKS.md (cluster_report.py;
run.sh keeps it).
Builds build-bench (Release: discoveryd, bench_load) unless --no-build. Not a test: nothing is asserted;
every loop is bounded in count and time; every process it starts is killed on exit, Ctrl-C included.
Python 3 standard library; needs etcd, wrk and cmake on PATH (deploy/deps.sh installs them).
Env: DISCOVERYD_BIN=path runs that binary instead of build-bench's (named in the report, e.g. a sanitizer
build to see why a member died); BENCH_NOTE=text adds a highlighted line to the section (also with
--report-from). A failed run keeps its members' logs in /tmp/dd-cluster-failed-* and names the directory.
"""

import argparse
import contextlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import bench_helper  # noqa: E402  (seed_tokens, seed_members, parse_wrk, quiet_state, foreign_procs)
from cluster_report import GET_TOKEN, TARGETS, section, write_section  # noqa: E402

DD_FLAGS = ["--surplus", "1000", "--new-rate", "1000000", "--new-burst", "1000000", "--new-range-rate",
            "1000000", "--new-range-burst", "1000000", "--token-write-rate", "1000000", "--token-write-burst",
            "1000000", "--log-level", "warn"]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BODY = "value=name%3Dhttp%3A%2F%2F127.0.0.1%3A2380"
PROCS = []  # every server process this script started, killed on exit whatever happens


def log(msg):
    print("[cluster %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_ports(n):
    socks, out = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        out.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return out


def req(port, method, path, body=None, timeout=5, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def kill_all():
    for p in PROCS:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for p in PROCS:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass


# ---------------------------------------------------------------------------------------------
# a three-member cluster of either kind


class Cluster:
    def __init__(self, target, tmp, tag, bins, n=3):
        self.target, self.bins, self.n = target, bins, n
        self.dir = tempfile.mkdtemp(prefix="%s-%s-" % (tag, target), dir=tmp)
        ports = free_ports(2 * n)
        self.cports, self.pports = ports[:n], ports[n:]
        pre = "d" if target == "discoveryd" else "e"
        self.names = ["%s%d" % (pre, i + 1) for i in range(n)]
        self.initial = ",".join("%s=http://127.0.0.1:%d" % (self.names[i], self.pports[i]) for i in range(n))
        self.procs = [None] * n
        self.starts = [0] * n

    def argv(self, i):
        name, cp, pp = self.names[i], self.cports[i], self.pports[i]
        data = os.path.join(self.dir, name + ".data")
        if self.target == "etcd":
            return ["etcd", "--name", name, "--data-dir", data, "--enable-v2=true",
                    "--listen-client-urls", "http://127.0.0.1:%d" % cp, "--advertise-client-urls",
                    "http://127.0.0.1:%d" % cp, "--listen-peer-urls", "http://127.0.0.1:%d" % pp,
                    "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % pp, "--initial-cluster", self.initial,
                    "--initial-cluster-state", "new", "--initial-cluster-token", os.path.basename(self.dir)]
        return [self.bins["discoveryd"], "--name", name, "--initial-cluster", self.initial, "--listen",
                "127.0.0.1:%d" % cp, "--data-dir", data, "--public-url", "http://127.0.0.1:%d" % cp,
                "--threads", str(os.cpu_count() or 2)] + DD_FLAGS

    def logpath(self, i):
        return os.path.join(self.dir, self.names[i] + ".log")

    def start(self, i):
        self.starts[i] += 1
        f = open(self.logpath(i), "a")
        f.write("=== start %d at %.3f\n" % (self.starts[i], time.time()))
        f.flush()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCOVERYD_", "ETCD_"))}
        p = subprocess.Popen(self.argv(i), stdout=f, stderr=subprocess.STDOUT, env=env)
        f.close()
        self.procs[i] = p
        PROCS.append(p)
        return p

    def start_all(self, timeout=60):
        for i in range(self.n):
            self.start(i)
        if not wait_for(lambda: all(self.healthy(i) for i in range(self.n)), timeout,
                        lambda: any(p.poll() is not None for p in self.procs)):
            raise RuntimeError("%s cluster not healthy after %d s (%s)" % (self.target, timeout, self.tail()))
        if not wait_for(lambda: self.leader() is not None, timeout):
            raise RuntimeError("%s cluster has no leader after %d s" % (self.target, timeout))

    def alive(self, i):
        return self.procs[i] is not None and self.procs[i].poll() is None

    def kill9(self, i):
        p = self.procs[i]
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGKILL)
        if p is not None:
            p.wait(30)
        self.procs[i] = None

    def stop(self):
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.kill()
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    pass
        self.procs = [None] * self.n

    def keep_logs(self, res):
        """A run that failed keeps its members' logs (outside the temp dir, which goes) for the report."""
        if not res.get("error"):
            return
        dst = tempfile.mkdtemp(prefix="dd-cluster-failed-%s-" % os.path.basename(self.dir))
        for i in range(self.n):
            if os.path.exists(self.logpath(i)):
                shutil.copy(self.logpath(i), dst)
        res["logs"] = dst
        log("  logs of the failed run kept in %s" % dst)

    def tail(self, only=None):
        out = []
        for i in range(self.n) if only is None else [only]:
            try:
                lines = [l.strip() for l in open(self.logpath(i), errors="replace") if l.strip()]
            except OSError:
                lines = []
            if lines:
                out.append("%s: %s" % (self.names[i], lines[-1][:200]))
        return "; ".join(out) or "no log"

    def healthy(self, i):
        if not self.alive(i):
            return False
        try:
            return req(self.cports[i], "GET", "/health", timeout=2)[0] == 200
        except OSError:
            return False

    def metrics(self, i, timeout=5):
        """The plain (unlabelled and labelled) samples of /metrics as {name{labels}: value}."""
        try:
            st, body = req(self.cports[i], "GET", "/metrics", timeout=timeout)
        except OSError:
            return None
        if st != 200:
            return None
        out = {}
        for line in body.decode(errors="replace").splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def msum(self, m, prefix):
        """Sum of a metric over its labels (e.g. etcd's per-peer snapshot counters)."""
        if m is None:
            return None
        return sum(v for k, v in m.items() if k == prefix or k.startswith(prefix + "{"))

    def is_leader(self, i):
        if not self.alive(i):
            return False
        if self.target == "etcd":
            try:
                st, body = req(self.cports[i], "GET", "/v2/stats/self", timeout=2)
                return st == 200 and json.loads(body).get("state") == "StateLeader"
            except (OSError, ValueError):
                return False
        m = self.metrics(i, 2)
        return bool(m) and m.get("discoveryd_is_leader") == 1

    def leader(self):
        ls = [i for i in range(self.n) if self.is_leader(i)]
        return ls[0] if len(ls) == 1 else None

    def indexes(self, i, timeout=5):
        """(applied, commit) of member i: discoveryd's raft metrics; etcd's proposals applied/committed
        gauges, which etcd sets to its applied and committed Raft indexes."""
        m = self.metrics(i, timeout)
        if not m:
            return None, None
        if self.target == "etcd":
            return m.get("etcd_server_proposals_applied_total"), m.get("etcd_server_proposals_committed_total")
        return m.get("discoveryd_raft_applied_index"), m.get("discoveryd_raft_commit_index")

    def leader_changes(self, i):
        m = self.metrics(i, 2)
        if not m:
            return None
        return m.get("etcd_server_leader_changes_seen_total" if self.target == "etcd" else "discoveryd_leader_changes_total")

    def caught_up(self, i, timeout):
        """Wait (bounded) until member i's applied index reaches the leader's commit index."""
        def ok():
            L = self.leader()
            if L is None:
                return False
            c = self.indexes(L)[1]
            a = self.indexes(i)[0]
            return c is not None and a is not None and a >= c
        return wait_for(ok, timeout)


def exit_how(rc):
    if rc is not None and rc < 0:
        try:
            return "was killed by %s (exit status %d)" % (signal.Signals(-rc).name, rc)
        except ValueError:
            pass
    return "exited with status %s" % rc


def wait_for(cond, timeout, abort=None, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if abort is not None and abort():
            return False
        time.sleep(step)
    return False


# ---------------------------------------------------------------------------------------------
# load tools


def run_wrk(port, duration, tmpdir, tag):
    url = "http://127.0.0.1:%d/v2/keys/discovery/%s?quorum=false&recursive=false&sorted=false" % (port, GET_TOKEN)
    out = os.path.join(tmpdir, "wrk-%s.txt" % tag)
    with open(out, "w") as f:
        subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % duration, "--latency", "-s", os.path.join(HERE, "get.lua"),
                        url], stdout=f, stderr=subprocess.STDOUT, timeout=duration + 60)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = bench_helper.parse_wrk(out)
    f = buf.getvalue().split()
    if rc != 0 or len(f) < 6:
        return {"error": "wrk output unparsable: %s" % open(out).read()[-300:]}
    return {"rps": float(f[0]), "p50": float(f[1]), "p99": float(f[2]), "non2xx": int(f[3]), "sockerr": int(f[4]),
            "requests": int(f[5])}


def run_load(bins, port, first, count, seconds, tokens, conns=64):
    a = [bins["bench_load"], "--port", str(port), "--count", str(count), "--first", str(first),
         "--seconds", str(seconds), "--tokens", str(tokens), "--conns", str(conns)]
    out = subprocess.run(a, capture_output=True, text=True, timeout=seconds + 60)
    f = out.stdout.split()
    if out.returncode != 0 or len(f) < 10:
        return {"error": "bench_load failed (%s): %s %s" % (out.returncode, out.stdout.strip(), out.stderr.strip()[-300:])}
    keys = ("sent", "done", "ok", "non2xx", "unanswered", "secs", "rps", "p50", "p99", "max")
    r = {k: float(v) for k, v in zip(keys, f)}
    r["requests"] = r["done"]
    return r


def seed(cl, port, tokens):
    t = time.monotonic()
    with contextlib.redirect_stderr(io.StringIO()) as err:
        rc = bench_helper.seed_tokens(port, "bench", tokens, 3)
        rc2 = bench_helper.seed_members(port, GET_TOKEN)
    if rc != 0 or rc2 != 0:
        raise RuntimeError("seeding %s failed: %s" % (cl.target, err.getvalue().strip()[-300:]))
    return time.monotonic() - t


def measured(fn, what, target, args, *rest):
    """fn's run after a bounded wait for a quiet machine, with what disturbed it noted."""
    res = bench_helper.measured(lambda: fn(target, args, *rest), "%s, %s" % (what, target), args.quiet_wait, log,
                                catch=True)
    res.setdefault("target", target)
    return res


# ---------------------------------------------------------------------------------------------
# (1) throughput


def run_tput(target, args, rnd, bins, tmp):
    cl = Cluster(target, tmp, "r%d-tput" % rnd, bins)
    res = {"target": target, "round": rnd, "runs": {}}
    try:
        cl.start_all()
        L = cl.leader()
        F = next(i for i in range(cl.n) if i != L)
        res["leader"], res["follower"] = cl.names[L], cl.names[F]
        res["seed_secs"] = seed(cl, cl.cports[L], args.tokens)
        if not cl.caught_up(F, 60):
            raise RuntimeError("follower %s did not catch up with the seeded tokens" % cl.names[F])
        lc0 = [cl.leader_changes(i) for i in range(cl.n)]
        # PUT order alternates by round so that neither path always runs on the bigger store
        order = [("get_follower", F), ("get_leader", L)]
        puts = [("put_leader", L), ("put_follower", F)]
        order += puts if rnd % 2 else puts[::-1]
        for wl, i in order:
            if wl.startswith("get"):
                r = run_wrk(cl.cports[i], args.duration, cl.dir, wl)
            else:
                first = 10 ** 8 if wl == "put_follower" else 0
                r = run_load(bins, cl.cports[i], first, min(50000 * args.duration, 5000000), args.duration,
                             args.tokens)
            r["member"] = cl.names[i]
            r["alive"] = all(cl.alive(j) for j in range(cl.n))
            res["runs"][wl] = r
            if "error" in r:
                log("  %s %s on %s: %s" % (target, wl, cl.names[i], r["error"]))
            else:
                log("  %s %s on %s (%s): %.0f req/s, p50 %.2f ms, p99 %.2f ms, non-2xx %d%s" % (
                    target, wl, cl.names[i], "leader" if i == L else "follower", r["rps"], r["p50"], r["p99"],
                    r["non2xx"], (", unanswered %d" % r["unanswered"]) if r.get("unanswered") else
                    (", socket errors %d" % r["sockerr"]) if r.get("sockerr") else ""))
            if not r["alive"]:
                res["error"] = "a member died during %s: %s" % (wl, cl.tail())
                log("  " + res["error"])
                break
        lc1 = [cl.leader_changes(i) for i in range(cl.n)]
        res["leader_changes"] = sum((b or 0) - (a or 0) for a, b in zip(lc0, lc1))
        res["leader_after"] = cl.names[cl.leader()] if cl.leader() is not None else None
    finally:
        cl.stop()
        cl.keep_logs(res)
        shutil.rmtree(cl.dir, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------------------------
# (2) failover


class Writer(threading.Thread):
    """One registration PUT at a time, alternating between the given members, 1 s timeout; records
    (sent, answered, status) with status -1 for a transport error or timeout. Bounded by max_secs."""

    def __init__(self, ports, prefix, tokens, max_secs, timeout=1.0):
        super().__init__(daemon=True)
        self.ports, self.prefix, self.tokens = ports, prefix, tokens
        self.max_secs, self.timeout = max_secs, timeout
        self.recs = []
        self.stop_ev = threading.Event()
        self.conns = {}

    def conn(self, port):
        c = self.conns.get(port)
        if c is None:
            c = self.conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=self.timeout)
        return c

    def run(self):
        k = 0
        end = time.monotonic() + self.max_secs
        while not self.stop_ev.is_set() and time.monotonic() < end:
            port = self.ports[k % len(self.ports)]
            path = "/v2/keys/discovery/bench-%d/%s-%d?prevExist=false" % (k % self.tokens, self.prefix, k)
            k += 1
            t0 = time.monotonic()
            try:
                c = self.conn(port)
                c.request("PUT", path, body=BODY, headers=FORM)
                r = c.getresponse()
                r.read()
                st = r.status
            except (OSError, http.client.HTTPException):
                st = -1
                c = self.conns.pop(port, None)
                if c is not None:
                    c.close()
            t1 = time.monotonic()
            self.recs.append((t0, t1, st))
            if not 200 <= st < 300 and t1 - t0 < 0.01:
                time.sleep(0.01)  # a fast refusal: do not spin
        for c in self.conns.values():
            c.close()


def run_failover(target, args, bins, tmp):
    cl = Cluster(target, tmp, "failover", bins)
    res = {"target": target, "trials": []}
    t_all = time.monotonic()
    try:
        cl.start_all()
        L = cl.leader()
        seed(cl, cl.cports[L], 1000)
        for trial in range(1, args.trials + 1):
            if time.monotonic() - t_all > args.trials * 60:
                res["error"] = "time budget spent after %d trials" % (trial - 1)
                break
            if not wait_for(lambda: cl.leader() is not None, 30):
                res["error"] = "no leader before trial %d" % trial
                break
            L = cl.leader()
            surv = [i for i in range(cl.n) if i != L]
            w = Writer([cl.cports[i] for i in surv], "f%d" % trial, 1000, 60, args.write_timeout)
            w.start()
            warm = wait_for(lambda: any(200 <= s < 300 for _, _, s in w.recs[-20:]), 5)
            time.sleep(0.2)
            t_kill = time.monotonic()
            cl.kill9(L)
            seen = None  # when a survivor first reported being the leader (independent of the client timeout)
            got = False
            while time.monotonic() - t_kill < 15:
                if seen is None and cl.leader() is not None:
                    seen = time.monotonic() - t_kill
                if any(t0 >= t_kill and 200 <= s < 300 for t0, _, s in list(w.recs)):
                    got = True
                    if seen is not None:
                        break
                time.sleep(0.01)
            w.stop_ev.set()
            w.join(5)
            after = [(t0, t1, s) for t0, t1, s in w.recs if t0 >= t_kill]
            first = next(((t1 - t_kill) for t0, t1, s in after if 200 <= s < 300), None)
            # the write in flight at the kill: when and how it was answered
            inflight = next(((t1 - t_kill, s) for t0, t1, s in w.recs if t0 < t_kill <= t1), None)
            tr = {"trial": trial, "killed": cl.names[L], "warm": warm, "secs": first if got else None, "leader_seen": seen,
                  "failed_before": sum(1 for _, t1, s in after if not 200 <= s < 300 and (first is None or t1 - t_kill <= first)),
                  "statuses": sorted({s for _, _, s in after if not 200 <= s < 300}),
                  "inflight": inflight}
            # restart the killed member; wait until it is healthy and caught up
            t_r = time.monotonic()
            cl.start(L)
            h = wait_for(lambda: cl.healthy(L), 60, lambda: not cl.alive(L))
            tr["restart_healthy_secs"] = time.monotonic() - t_r if h else None
            cu = h and cl.caught_up(L, 60)
            tr["restart_caught_up_secs"] = time.monotonic() - t_r if cu else None
            tr["new_leader"] = cl.names[cl.leader()] if cl.leader() is not None else None
            res["trials"].append(tr)
            log("  %s failover trial %d: killed %s (leader), new leader seen %s, first acked write %s after the kill "
                "(%d failed/timed-out writes before it%s); restarted: healthy %s, caught up %s" % (
                    target, trial, cl.names[L], "%.3f s" % seen if seen is not None else "–",
                    "%.3f s" % first if got else "NONE within 15 s", tr["failed_before"],
                    ", statuses %s" % tr["statuses"] if tr["statuses"] else "",
                    "%.2f s" % tr["restart_healthy_secs"] if h else "NO (%s)" % cl.tail(),
                    "%.2f s" % tr["restart_caught_up_secs"] if cu else "NO"))
            if not h or not cu:
                res["error"] = "the killed member %s did not come back (healthy %s, caught up %s): %s" % (
                    cl.names[L], h, cu, cl.tail())
                break
    finally:
        cl.stop()
        cl.keep_logs(res)
        shutil.rmtree(cl.dir, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------------------------
# (3) catch-up


def snap_metrics(cl, i):
    m = cl.metrics(i)
    if m is None:
        return None
    if cl.target == "etcd":
        return {"received": cl.msum(m, "etcd_network_snapshot_receive_success"),
                "sent": cl.msum(m, "etcd_network_snapshot_send_success")}
    return {"snapshots": m.get("discoveryd_snapshots_total"), "snapshot_index": m.get("discoveryd_snapshot_index")}


def snap_files(cl, i):
    """Raft indexes of the snapshot files in member i's data dir (discoveryd: <index>-<term>.snap)."""
    out = []
    for dp, _, fs in os.walk(os.path.join(cl.dir, cl.names[i] + ".data")):
        for f in fs:
            m = re.fullmatch(r"([0-9a-f]{16})-[0-9a-f]{16}\.snap", f)
            if m:
                out.append(int(m.group(1), 16))
    return sorted(out)


def run_catchup(target, args, writes, bins, tmp):
    cl = Cluster(target, tmp, "catchup", bins)
    res = {"target": target, "writes": writes}
    try:
        cl.start_all()
        L = cl.leader()
        F = next(i for i in range(cl.n) if i != L)
        res["leader"], res["follower"] = cl.names[L], cl.names[F]
        seed(cl, cl.cports[L], args.tokens)
        if not cl.caught_up(F, 60):
            raise RuntimeError("follower did not catch up with the seeding")
        res["follower_applied_at_kill"] = cl.indexes(F)[0]
        res["follower_snap_before"] = snap_metrics(cl, F)
        cl.kill9(F)
        r = run_load(bins, cl.cports[L], 0, writes, 600, args.tokens)
        res["load"] = r
        if "error" in r or r["ok"] != writes:
            raise RuntimeError("the %d writes through the leader did not all succeed: %r" % (writes, r))
        time.sleep(0.5)
        if cl.leader() != L:
            res["note"] = "leadership moved during the writes"
        L = cl.leader()
        res["leader_commit"] = cl.indexes(L)[1]
        res["leader_snap"] = snap_metrics(cl, L)
        res["leader_snap_files"] = snap_files(cl, L)
        t0 = time.monotonic()
        cl.start(F)
        trace = []  # (secs since restart, applied)
        target_idx = res["leader_commit"]
        done = None
        healthy = None
        end = t0 + 300
        while time.monotonic() < end:
            if not cl.alive(F):
                res["error"] = "the restarted follower %s %s %.2f s after its start" % (
                    cl.names[F], exit_how(cl.procs[F].returncode), time.monotonic() - t0)
                log("  %s; its log ends: %s" % (res["error"], cl.tail(F)))
                break
            a = cl.indexes(F, 2)[0]
            now = time.monotonic() - t0
            if a is not None:
                trace.append((round(now, 3), a))
                if a >= target_idx:
                    done = now
                    break
            if healthy is None and cl.healthy(F):
                healthy = time.monotonic() - t0
            time.sleep(0.02)
        if done is not None and healthy is None and wait_for(lambda: cl.healthy(F), 30):
            healthy = time.monotonic() - t0
        res["secs"] = done
        res["healthy_secs"] = healthy
        res["follower_snap_after"] = snap_metrics(cl, F)
        res["follower_snap_files"] = snap_files(cl, F)
        res["leader_snap_after"] = snap_metrics(cl, L)
        jumps = [(b[1] - a[1]) for a, b in zip(trace, trace[1:])]
        res["first_applied"] = trace[0][1] if trace else None
        res["max_jump"] = max(jumps) if jumps else None
        res["samples"] = len(trace)
        res["how"] = catchup_how(cl, res)
        log("  %s catch-up of %s after %d writes: %s (applied index %s -> %s; %s)" % (
            target, cl.names[F], writes, "%.2f s" % done if done is not None else
            "FAILED: %s" % res.get("error", "not within 300 s"),
            res["follower_applied_at_kill"], target_idx, res["how"]))
    finally:
        cl.stop()
        cl.keep_logs(res)
        shutil.rmtree(cl.dir, ignore_errors=True)
    return res


def catchup_how(cl, r):
    """Snapshot or log, from the evidence: etcd counts the snapshots it receives; discoveryd counts no
    received snapshot (its snapshot metrics are the member's own), so the evidence is whether the
    leader's log still held the entries after the follower's applied index (a leader drops its log up
    to its last snapshot) and whether the applied index jumped past them in one step."""
    if cl.target == "etcd":
        b, a = (r.get("follower_snap_before") or {}).get("received"), (r.get("follower_snap_after") or {}).get("received")
        if a is None:
            return "unknown (no metrics)"
        return "snapshot (etcd_network_snapshot_receive_success +%d)" % (a - (b or 0)) if a > (b or 0) else \
            "log (no snapshot received)"
    ls = (r.get("leader_snap") or {}).get("snapshot_index")
    fa = r.get("follower_applied_at_kill")
    if ls is None or fa is None:
        return "unknown (no metrics)"
    jump = r.get("max_jump") or 0
    got = sorted(set(r.get("leader_snap_files") or []) & set(r.get("follower_snap_files") or []))
    if ls > fa and r.get("secs") is None:
        return ("not caught up; a snapshot was due: the leader's last snapshot, index %d, is past the follower's "
                "applied index %d, so the entries between were no longer in the leader's log" % (ls, fa))
    if ls > fa:
        return ("snapshot (the leader's last snapshot, index %d, is past the follower's applied index %d, so the "
                "entries between were no longer in its log; %s; largest applied-index step seen: %d)" % (
                    ls, fa, "the follower's data dir then held the leader's snapshot file at index %d" % got[-1]
                    if got else "no snapshot file of the leader's index appeared in the follower's data dir", jump))
    return "log (the leader's last snapshot, index %d, is not past the follower's applied index %d; largest " \
           "applied-index step seen: %d)" % (ls, fa, jump)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds (default 3)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per throughput run (default 10)")
    ap.add_argument("--tokens", type=int, default=10000, help="tokens the PUTs spread over (default 10000)")
    ap.add_argument("--trials", type=int, default=20, help="failover trials per target (default 20)")
    ap.add_argument("--catchup", default="100000,5000",
                    help="writes while the follower is down, one catch-up run per comma-separated count (default "
                    "100000,5000: issue 8's 100k, and a count below discoveryd's snapshot interval)")
    ap.add_argument("--write-timeout", type=float, default=0.5,
                    help="failover client's timeout per write in s (default 0.5)")
    ap.add_argument("--only", default="throughput,failover,catchup", help="comma-separated parts to run")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated, for investigations")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 3 s, 3 trials, 20k catch-up writes")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--quiet-wait", type=float, default=90,
                    help="before each run wait up to this many s for a quiet machine (default 90)")
    ap.add_argument("--report-from", nargs="+", metavar="JSON",
                    help="run nothing: write the section from results recorded with --json (several runs are "
                    "merged, throughput rounds numbered in order)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration, args.trials, args.catchup, args.tokens = 1, 3, 3, "20000,2000", 2000
    try:
        args.catchup = [int(x) for x in str(args.catchup).split(",") if x]
    except ValueError:
        ap.error("--catchup: comma-separated counts")
    if not (1 <= args.rounds <= 20 and 1 <= args.duration <= 300 and 1 <= args.trials <= 200 and args.catchup
            and all(1000 <= c <= 2000000 for c in args.catchup) and 100 <= args.tokens <= 1000000):
        ap.error("--rounds 1..20, --duration 1..300, --trials 1..200, --catchup 1000..2000000, --tokens 100..1000000")
    parts = set(args.only.split(","))
    if parts - {"throughput", "failover", "catchup"}:
        ap.error("--only: throughput, failover, catchup")
    targets = [t for t in args.targets.split(",") if t]
    if set(targets) - set(TARGETS):
        ap.error("--targets: etcd, discoveryd")
    if args.report_from:
        tput, fo, cu, metas = [], [], [], []
        for path in args.report_from:
            d = json.load(open(path))
            off = max([r["round"] for r in tput if "round" in r] or [0])
            for r in d["throughput"]:
                r["round"] = r.get("round", 1) + off
            tput += d["throughput"]
            fo += d["failover"]
            cu += d["catchup"]
            metas.append(d["meta"])
        meta = dict(metas[-1])
        meta["command_md"] = ("section written by `tests/bench/cluster.py --report-from` from the recorded results "
                              "of " + " and ".join("`%s` (%s, load %s)" % (m["command"], m["date"], m["load"])
                                                   for m in metas))
        meta["date"] = ", ".join(m["date"] for m in metas)
        meta["load"] = ", ".join(m["load"] for m in metas)
        meta["quick"] = all(m.get("quick") for m in metas)
        if os.environ.get("BENCH_NOTE"):
            meta["busy_note"] = os.environ["BENCH_NOTE"]
        write_section(args.out, section(meta, tput, fo, cu, DD_FLAGS))
        log("wrote %s from %d recorded run(s)" % (args.out, len(metas)))
        return
    bins = bench_helper.build_bins(ROOT, ("etcd", "wrk"), args.no_build, log)
    dd_origin = "Release build (`build-bench`)"
    if os.environ.get("DISCOVERYD_BIN"):
        bins["discoveryd"] = os.path.abspath(os.environ["DISCOVERYD_BIN"])
        dd_origin = "binary given by DISCOVERYD_BIN=%s (not built by this script)" % os.environ["DISCOVERYD_BIN"]
    for b in bins.values():
        if not os.access(b, os.X_OK):
            sys.exit("missing %s (build it, or drop --no-build)" % b)
    git = lambda *a: subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                            ":!BENCHMARKS.md") else ""
    cmd = "tests/bench/cluster.py" + "".join(" " + a for a in sys.argv[1:])
    meta = {"command": cmd, "command_md": "`%s`" % cmd,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "nproc": os.cpu_count(),
            "cpu": next((l.split(": ", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
            "kernel": os.uname().release, "load": " ".join(open("/proc/loadavg").read().split()[:3]),
            "quiet_wait": "%.0f" % args.quiet_wait, "quick": args.quick, "tokens": args.tokens,
            "duration": args.duration,
            "etcd": "etcd " + subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0].split()[-1],
            "dd": "commit %s%s, %s" % (git("rev-parse", "--short", "HEAD"), dirty, dd_origin),
            "write_timeout": args.write_timeout}
    if os.environ.get("BENCH_NOTE"):
        meta["busy_note"] = os.environ["BENCH_NOTE"]
    tmp = tempfile.mkdtemp(prefix="dd-cluster-")
    tput, fo, cu = [], [], []
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if "throughput" in parts:
            for rnd in range(1, args.rounds + 1):
                for t in targets:
                    log("round %d, %s: throughput" % (rnd, t))
                    r = measured(run_tput, "round %d throughput" % rnd, t, args, rnd, bins, tmp)
                    r.setdefault("round", rnd)
                    tput.append(r)
        if "failover" in parts:
            for t in targets:
                log("%s: %d failover trials" % (t, args.trials))
                fo.append(measured(run_failover, "failover", t, args, bins, tmp))
        if "catchup" in parts:
            for writes in args.catchup:
                for t in targets:
                    log("%s: catch-up after %d writes" % (t, writes))
                    cu.append(measured(run_catchup, "catch-up", t, args, writes, bins, tmp))
    except KeyboardInterrupt:
        log("interrupted: stopping every server this script started; no report written")
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(130)
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        json.dump({"meta": meta, "throughput": tput, "failover": fo, "catchup": cu}, open(args.json, "w"), indent=1)
    write_section(args.out, section(meta, tput, fo, cu, DD_FLAGS))
    log("wrote %s" % args.out)


if __name__ == "__main__":
    main()
