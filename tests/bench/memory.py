#!/usr/bin/env python3
"""tests/bench/memory.py — resident memory of discoveryd per empty token, per registered member, per
parked watch and per idle keep-alive connection (issue 12), with etcd 3.4 (--enable-v2) beside it for
tokens. Each figure is (VmRSS after − VmRSS before) / count, both read from /proc/<pid>/status of a
fresh server process once it is quiet (RSS unchanged for a second and no snapshot being written).

  tokens N    N × GET /new?size=3 (each makes /discovery/<token>/_config/size: 3 nodes, 1 event)
  members M   M/3 tokens made first (PUT .../_config/size), then 3 registrations each (16-hex ids)
  watches W   W/3 tokens; W connections each parking GET /v2/keys/discovery/<tok>?wait=true&recursive=true
              (3 per token, as a forming 3-member cluster does); counts the connection and the request
  idle C      C keep-alive connections that each made one GET and stay open; then a new client's
              GET latency (20 sequential GETs, p50 and max) while they are held
  etcd N      N × PUT /v2/keys/discovery/<tok>/_config/size on etcd (what the upstream discovery
              server writes per token)

tests/bench/memory.py [--tokens 100000,1000000] [--members 100000] [--watches 10000,18000,50000]
                      [--idle 10000] [--etcd 100000] [--out BENCHMARKS.md] [--no-build | --build-dir DIR]
                      [--compare-build DIR]
Writes the <!-- memory:begin --> ... <!-- memory:end --> section of --out. Builds build-bench (Release:
discoveryd, bench_load) unless --no-build. Not a test: nothing is asserted; every loop is bounded in
count and time. One process holds every connection of a watch or idle run, so the count is limited by
the hard RLIMIT_NOFILE (a run that needs more descriptors is reported as skipped, with the reason).
Python 3 standard library; needs etcd (for --etcd) and cmake on PATH.
"""

import argparse
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import bench_helper  # noqa: E402  (same directory)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

OPEN = ["--new-rate", "1000000", "--new-burst", "1000000", "--new-range-rate", "1000000",
        "--new-range-burst", "1000000", "--token-write-rate", "1000000", "--token-write-burst", "1000000",
        "--max-tokens", "0", "--log-level", "warn"]


def log(msg):
    print("[memory %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def free_port():
    return bench_helper.pick_port()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def get(port, path, timeout=10):
    return bench_helper.http_get(port, path, timeout)


def metrics(port):
    st, body = get(port, "/metrics")
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r"^([a-z_]+) ([0-9.e+]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


class Server:
    """discoveryd or etcd in a temp dir; stopped by stop()."""

    def __init__(self, target, tmp, bins, extra=()):
        self.target, self.tmp, self.bins = target, tmp, bins
        self.port = free_port()
        d = tempfile.mkdtemp(prefix=target + "-", dir=tmp)
        if target == "etcd":
            pp = free_port()
            argv = ["etcd", "--name", "mem", "--data-dir", os.path.join(d, "data"), "--enable-v2=true",
                    "--listen-client-urls", "http://127.0.0.1:%d" % self.port,
                    "--advertise-client-urls", "http://127.0.0.1:%d" % self.port,
                    "--listen-peer-urls", "http://127.0.0.1:%d" % pp,
                    "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % pp,
                    "--initial-cluster", "mem=http://127.0.0.1:%d" % pp, "--initial-cluster-state", "new"]
            ready = "/v2/keys/"
        else:
            argv = [bins["discoveryd"], "--listen", "127.0.0.1:%d" % self.port, "--data-dir",
                    os.path.join(d, "data"), "--public-url", "http://127.0.0.1:%d" % self.port,
                    "--threads", "2"] + OPEN + list(extra)
            ready = "/health"
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=open(os.path.join(d, "server.log"), "w"),
                                     stderr=subprocess.STDOUT, preexec_fn=raise_nofile)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited at start-up (see %s)" % (target, d))
            try:
                if get(self.port, ready, 2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("%s not ready after 30 s" % target)

    def rss_kb(self):
        return status_kb(self.proc.pid, "VmRSS")

    def quiet_rss_kb(self, limit=120):
        """VmRSS once it has not moved for a second (and, for discoveryd, no snapshot child runs)."""
        last, same, deadline = -1, 0, time.monotonic() + limit
        while time.monotonic() < deadline:
            r = self.rss_kb()
            busy = self.target != "etcd" and has_children(self.proc.pid)
            same = same + 1 if (r == last and not busy) else 0
            if same >= 4:
                return r
            last = r
            time.sleep(0.25)
        log("  RSS did not settle in %d s; taking %d kB" % (limit, last))
        return last

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def has_children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return f.read().strip() != ""
    except OSError:
        return False


def load(bins, port, mode, count, prefix, tokens=None, conns=64, seconds=900):
    argv = [bins["bench_load"], "--port", str(port), "--mode", mode, "--count", str(count), "--conns", str(conns),
            "--seconds", str(seconds), "--prefix", prefix]
    if tokens:
        argv += ["--tokens", str(tokens)]
    if mode == "member":
        argv += ["--hex-ids"]
    t = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    f = out.stdout.split()
    if out.returncode != 0 or len(f) < 7:
        raise RuntimeError("bench_load failed: %s %s" % (out.stdout, out.stderr))
    ok = int(f[2])
    log("  %s × %d: %d 2xx, %d other, %.1f s (%.0f/s)" % (mode, count, ok, int(f[3]), time.monotonic() - t,
                                                          float(f[6])))
    if ok != count:
        raise RuntimeError("only %d of %d %s requests answered 2xx" % (ok, count, mode))
    return float(f[6])


# ---------------------------------------------------------------------------------------------- runs

def run_tokens(bins, tmp, n):
    srv = Server("discoveryd", tmp, bins)
    try:
        r0 = srv.quiet_rss_kb()
        rate = load(bins, srv.port, "new", n, "t")
        r1 = srv.quiet_rss_kb()
        m = metrics(srv.port)
        return {"what": "empty token (/new?size=3)", "count": n, "rss0": r0, "rss1": r1,
                "note": "%d nodes; /new at %.0f/s" % (m.get("discoveryd_store_nodes", 0), rate)}
    finally:
        srv.stop()


def run_members(bins, tmp, n):
    srv = Server("discoveryd", tmp, bins)
    try:
        ntok = max(1, n // 3)
        load(bins, srv.port, "size", ntok, "m")
        r0 = srv.quiet_rss_kb()
        load(bins, srv.port, "member", ntok * 3, "m", tokens=ntok)
        r1 = srv.quiet_rss_kb()
        return {"what": "registered member (16-hex id, 36-byte value)", "count": ntok * 3, "rss0": r0, "rss1": r1,
                "note": "3 into each of %d tokens" % ntok}
    finally:
        srv.stop()


def open_conns(port, n, request):
    """n connected sockets, each having sent request (bytes)."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        socks.append(s)
    return socks


def fd_room(n):
    hard = raise_nofile()
    return hard >= n + 200, hard


def run_watches(bins, tmp, n):
    ok, hard = fd_room(n)
    if not ok:
        return {"what": "parked watch", "count": n, "skipped": "needs %d descriptors in one process; the hard "
                "RLIMIT_NOFILE here is %d (ulimit -Hn)" % (n + 200, hard)}
    srv = Server("discoveryd", tmp, bins, ["--max-watches", str(n + 100), "--max-watches-per-client", str(n + 100),
                                           "--watch-timeout", "600s"])
    socks = []
    try:
        ntok = max(1, n // 3)
        load(bins, srv.port, "size", ntok, "w")
        r0 = srv.quiet_rss_kb()
        t = time.monotonic()
        for i in range(n):
            req = ("GET /v2/keys/discovery/w-%d?wait=true&recursive=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                   % (i % ntok)).encode()
            socks += open_conns(srv.port, 1, req)
        deadline = time.monotonic() + 60
        parked = 0
        while time.monotonic() < deadline:
            parked = int(metrics(srv.port).get("discoveryd_parked_watches", 0))
            if parked >= n:
                break
            time.sleep(0.2)
        r1 = srv.quiet_rss_kb(30)
        return {"what": "parked watch (with its connection)", "count": n, "rss0": r0, "rss1": r1,
                "note": "%d parked (of %d sent) in %.1f s; 3 per token" % (parked, n, time.monotonic() - t)}
    finally:
        for s in socks:
            s.close()
        srv.stop()


def run_idle(bins, tmp, n):
    ok, hard = fd_room(n)
    if not ok:
        return {"what": "idle keep-alive connection", "count": n, "skipped": "needs %d descriptors; hard "
                "RLIMIT_NOFILE is %d" % (n + 200, hard)}
    srv = Server("discoveryd", tmp, bins)
    socks = []
    try:
        load(bins, srv.port, "size", 1, "i")
        load(bins, srv.port, "member", 3, "i", tokens=1)
        path = "/v2/keys/discovery/i-0?quorum=false&recursive=false&sorted=false"
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()
        r0 = srv.quiet_rss_kb()
        t = time.monotonic()
        socks = open_conns(srv.port, n, req)
        answered = 0
        for s in socks:  # each answer is one small response; read it so the connection is idle
            try:
                s.settimeout(10)
                if s.recv(65536).startswith(b"HTTP/1.1 200"):
                    answered += 1
            except OSError:
                pass
        held = time.monotonic() - t
        r1 = srv.rss_kb()
        lats = []
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        for _ in range(20):
            t0 = time.perf_counter()
            c.request("GET", path)
            resp = c.getresponse()
            resp.read()
            lats.append((time.perf_counter() - t0) * 1000)
            if resp.status != 200:
                lats[-1] = float("inf")
        c.close()
        return {"what": "idle keep-alive connection", "count": n, "rss0": r0, "rss1": r1,
                "note": "%d answered, held %.1f s (h2o closes idle ones after 10 s); a new client's GET while "
                        "held: p50 %.2f ms, max %.2f ms (20 GETs)" % (answered, held, statistics.median(lats),
                                                                     max(lats))}
    finally:
        for s in socks:
            s.close()
        srv.stop()


def run_etcd(bins, tmp, n):
    if shutil.which("etcd") is None:
        return {"what": "etcd 3.4: token dir (_config/size)", "count": n, "skipped": "etcd not on PATH"}
    srv = Server("etcd", tmp, bins)
    try:
        r0 = srv.quiet_rss_kb()
        load(bins, srv.port, "size", n, "e")
        r1 = srv.quiet_rss_kb()
        return {"what": "etcd 3.4: token dir (PUT _config/size)", "count": n, "rss0": r0, "rss1": r1,
                "note": "Go heap: RSS follows the garbage collector"}
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------- report

def per_item(r):
    return (r["rss1"] - r["rss0"]) * 1024.0 / r["count"]


def fmt_row(r, before=None):
    if "skipped" in r:
        return "| %s | %s | – | – | – | – | skipped: %s |" % (r["what"], "{:,}".format(r["count"]), r["skipped"])
    b = "–"
    if before is not None and "skipped" not in before:
        b = "{:,.0f}".format(per_item(before))
    note = r.get("note", "")
    if before is not None and before.get("note") and before.get("note") != note and r["what"].startswith("idle"):
        note += "; before: " + before["note"].split("; ", 1)[-1]
    return "| %s | %s | %.1f MiB | %.1f MiB | %s | **%s** | %s |" % (
        r["what"], "{:,}".format(r["count"]), r["rss0"] / 1024.0, r["rss1"] / 1024.0, b,
        "{:,.0f}".format(per_item(r)), note)


def report(rows, cmd, commit, compare):
    lines = ["<!-- memory:begin -->", "## Memory (issue 12)", "",
             "Written by `%s` (tests/bench/memory.py), %s, commit %s, Release build. The machine (2 CPUs, "
             "shared with other people's test runs) is busy, but resident memory does not depend on CPU "
             "load the way throughput does (the /new rates in the notes do). Bytes per item = (VmRSS after − "
             "VmRSS before) / count, VmRSS from /proc/PID/status of a fresh server once it is quiet (no "
             "snapshot child, RSS unchanged for 1 s). discoveryd runs with the creation limiters opened wide, "
             "`--max-tokens 0`, `--threads 2` and the default `--snapshot-count` (so the in-memory log stays "
             "bounded). %s"
             % (cmd, datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), commit,
                "The *before* column is the same item measured in the same run on the build in `%s`." % compare
                if compare else ""), "",
             "The idle-connection figure swings by a few KB from run to run (it is read right after the "
             "answers, while h2o still recycles read buffers, not once quiet); the others repeat within a few "
             "percent. Parked watches need one descriptor each in the server and in this script, so a count "
             "above the hard `ulimit -n` is skipped. etcd's figure follows its garbage collector.", "",
             "| item | count | RSS at start | RSS with the items | bytes per item, before | bytes per item | notes |",
             "|---|---:|---:|---:|---:|---:|---|"]
    lines += [fmt_row(r, b) for r, b in rows]
    lines += ["", "Not a test: no threshold is asserted.", "<!-- memory:end -->"]
    return "\n".join(lines) + "\n"


def write_section(path, text):
    old = open(path).read() if os.path.exists(path) else ""
    m = re.search(r"<!-- memory:begin -->.*?<!-- memory:end -->\n?", old, re.S)
    new = old[:m.start()] + text + old[m.end():] if m else old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(new)


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()] if s else []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", default="100000,1000000")
    ap.add_argument("--members", default="100000")
    ap.add_argument("--watches", default="10000,18000,50000")
    ap.add_argument("--idle", default="10000")
    ap.add_argument("--etcd", default="100000")
    ap.add_argument("--out")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--compare-build", help="also measure every item on the Release build in this directory "
                    "(e.g. one of an older commit) and show it as the before column")
    ap.add_argument("--build-dir", help="use the Release build in this directory as it is (implies --no-build; "
                    "e.g. a build of an older commit, for a before/after comparison)")
    args = ap.parse_args()
    build = os.path.join(ROOT, "build-bench")
    if args.build_dir:
        build = os.path.abspath(args.build_dir)
    elif not args.no_build:
        subprocess.run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DDISCOVERYD_TESTS=ON"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", build, "-j2", "--target", "discoveryd", "bench_load"], check=True,
                       stdout=subprocess.DEVNULL)
    def bins_of(d):
        return {"discoveryd": os.path.join(d, "discoveryd"), "bench_load": os.path.join(d, "tests", "bench", "bench_load")}
    bins = bins_of(build)
    # the older build's own bench_load may predate --mode: drive both with this one
    cbins = dict(bins_of(os.path.abspath(args.compare_build)), bench_load=bins["bench_load"]) \
        if args.compare_build else None
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    if subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD", "--", "store", "api", "service"]).returncode:
        commit += " + uncommitted changes"
    if args.build_dir:
        commit = "the build in %s" % args.build_dir
    rows = []
    tmp = tempfile.mkdtemp(prefix="dd-memory-")
    plan = [(run_tokens, ints(args.tokens), "tokens"), (run_members, ints(args.members), "members"),
            (run_watches, ints(args.watches), "watches"), (run_idle, ints(args.idle), "idle")]
    try:
        for fn, counts, tag in plan:
            for n in counts:
                before = None
                if cbins:
                    log("%s %d (before: %s)" % (tag, n, args.compare_build))
                    before = fn(cbins, tmp, n)
                log("%s %d" % (tag, n))
                r = fn(bins, tmp, n)
                rows.append((r, before))
                log("  " + fmt_row(r, before))
        for n in ints(args.etcd):
            log("etcd tokens %d" % n)
            rows.append((run_etcd(bins, tmp, n), None))
            log("  " + fmt_row(rows[-1][0]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cmd = "tests/bench/memory.py " + " ".join(sys.argv[1:])
    text = report(rows, cmd.strip(), commit, args.compare_build)
    print(text)
    if args.out:
        write_section(args.out, text)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    main()
