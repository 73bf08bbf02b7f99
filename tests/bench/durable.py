#!/usr/bin/env python3
"""tests/bench/durable.py — the durable-store benchmarks of issue 7, discoveryd beside etcd 3.4
(--enable-v2, fsync on), alternating targets, a fresh server and data dir per run, loopback only:

  snap     registration PUT latency while a snapshot of a 1M-key store is taken, against the same
           window's requests that did not overlap the snapshot (p99 both ways);
  restart  time from process start until a GET of a known token answers 200 with exactly the data
           it answered before the kill, and peak RSS (VmHWM) at that moment, for 100k registrations
           (default snapshot settings) and for 1M (the WAL only, no snapshot yet) and 1M + the snap
           window (a snapshot plus the WAL after it); data-dir bytes per registration.

One command: tests/bench/durable.py [--rounds 3] [--keys 1000000] [--small 100000] [--quick]
             [--out BENCHMARKS.md] [--no-build]
Writes the <!-- durable:begin --> ... <!-- durable:end --> section of BENCHMARKS.md (run.sh keeps it).
Builds build-bench (Release: discoveryd, bench_load) unless --no-build. Not a test: nothing is asserted;
every loop is bounded in count and time. Python 3 standard library; needs etcd and cmake on PATH.
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import bench_helper  # noqa: E402  (seed_tokens, free port)

TOKENS = 10000
KNOWN = "bench-7"  # the token whose GET is compared before the kill and after the restart
SNAP_AFTER = 25000  # the snapshot is due this many PUTs into the measured window
DD_FLAGS = ["--surplus", "1000", "--new-rate", "1000000", "--new-burst", "1000000", "--new-range-rate",
            "1000000", "--new-range-burst", "1000000", "--token-write-rate", "1000000", "--token-write-burst",
            "1000000", "--log-level", "warn"]


def log(msg):
    print("[durable %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def port():
    return bench_helper.pick_port()


class Server:
    def __init__(self, target, ddir, snapcount, bins):
        self.target, self.ddir, self.snapcount, self.bins = target, ddir, snapcount, bins
        self.proc = None
        self.port = None
        self.logpath = None

    def argv(self):
        if self.target == "etcd":
            pp = port()
            a = ["etcd", "--name", "bench", "--data-dir", os.path.join(self.ddir, "etcd.data"), "--enable-v2=true",
                 "--listen-client-urls", "http://127.0.0.1:%d" % self.port,
                 "--advertise-client-urls", "http://127.0.0.1:%d" % self.port,
                 "--listen-peer-urls", "http://127.0.0.1:%d" % pp, "--initial-advertise-peer-urls",
                 "http://127.0.0.1:%d" % pp, "--initial-cluster", "bench=http://127.0.0.1:%d" % pp,
                 "--initial-cluster-state", "new"]
        else:
            a = [self.bins["discoveryd"], "--listen", "127.0.0.1:%d" % self.port, "--data-dir",
                 os.path.join(self.ddir, "dd.data"), "--public-url", "http://127.0.0.1:%d" % self.port,
                 "--threads", str(os.cpu_count() or 2)] + DD_FLAGS
        if self.snapcount:
            a += ["--snapshot-count", str(self.snapcount)]
        return a

    def start(self, tag):
        self.port = port()
        self.logpath = os.path.join(self.ddir, "server-%s.log" % tag)
        self.proc = subprocess.Popen(self.argv(), stdout=open(self.logpath, "w"), stderr=subprocess.STDOUT)
        return self.proc

    def data_dir(self):
        return os.path.join(self.ddir, "etcd.data" if self.target == "etcd" else "dd.data")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait(30)
        self.proc = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.proc = None


def get(port, path, timeout=5):
    return bench_helper.http_get(port, path, timeout)


def wait_ready(srv, timeout=60):
    path = "/v2/keys/" if srv.target == "etcd" else "/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.proc.poll() is not None:
            return False
        try:
            if get(srv.port, path, 2)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def known_path():
    return "/v2/keys/discovery/%s?recursive=true&sorted=true" % KNOWN


def known_data(port_):
    st, body = get(port_, known_path(), 30)
    return json.loads(body)["node"] if st == 200 else None


def load(bins, port_, first, count, seconds, lat=None):
    a = [bins["bench_load"], "--port", str(port_), "--count", str(count), "--first", str(first),
         "--seconds", str(seconds), "--tokens", str(TOKENS), "--conns", "64"]
    if lat:
        a += ["--lat", lat]
    out = subprocess.run(a, capture_output=True, text=True, timeout=seconds + 60)
    f = out.stdout.split()
    if out.returncode != 0 or len(f) < 10:
        raise RuntimeError("bench_load failed: %s %s" % (out.stdout, out.stderr))
    keys = ("sent", "done", "ok", "non2xx", "unanswered", "secs", "rps", "p50", "p99", "max")
    return {k: float(v) for k, v in zip(keys, f)}


def vm(pid, key):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def du(path):
    apparent = alloc = 0
    for dp, _, fs in os.walk(path):
        for f in fs:
            try:
                st = os.lstat(os.path.join(dp, f))
            except OSError:
                continue
            apparent += st.st_size
            alloc += st.st_blocks * 512
    return apparent, alloc


def children(pid):
    kids = []
    for p in glob.glob("/proc/%d/task/*/children" % pid):
        try:
            kids += open(p).read().split()
        except OSError:
            pass
    return kids


class ChildWatch(threading.Thread):
    """discoveryd forks a child per snapshot: intervals (epoch s) during which the server had a child."""

    def __init__(self, pid, limit_s):
        super().__init__(daemon=True)
        self.pid, self.limit = pid, limit_s
        self.intervals = []
        self.stop_ev = threading.Event()

    def run(self):
        start = None
        end_by = time.monotonic() + self.limit
        while not self.stop_ev.is_set() and time.monotonic() < end_by:
            has = bool(children(self.pid))
            now = time.time()
            if has and start is None:
                start = now
            elif not has and start is not None:
                self.intervals.append((start, now))
                start = None
            time.sleep(0.005)
        if start is not None:
            self.intervals.append((start, None))


ETCD_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) .*etcdserver: (start to snapshot|saved snapshot)")


def etcd_snapshots(logpath):
    """(start, end) epoch seconds of each v2 snapshot from etcd's log ("start to snapshot" .. "saved snapshot")."""
    out, start = [], None
    for line in open(logpath, errors="replace"):
        m = ETCD_TS.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()  # etcd logs local time
        if m.group(2) == "start to snapshot":
            start = t
        elif start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[int((len(xs) - 1) * p)]


def split_latencies(latfile, snaps):
    """p50/p99/max (ms) of the window's requests that overlapped a snapshot and of those that did not."""
    during, clear = [], []
    for line in open(latfile):
        s_us, l_us, _st = line.split()
        s = int(s_us) / 1e6
        e = s + int(l_us) / 1e6
        ms = int(l_us) / 1000.0
        if any(s <= (b if b is not None else 1e12) and e >= a for a, b in snaps):
            during.append(ms)
        else:
            clear.append(ms)
    wend = 0.0
    for line in open(latfile):
        s_us, l_us, _st = line.split()
        wend = max(wend, (int(s_us) + int(l_us)) / 1e6)
    # a snapshot still running when the window's last reply came: its tail was not measured
    outlasted = any(b is None or b > wend for a, b in snaps)
    return {"outlasted": outlasted, "n_during": len(during), "n_clear": len(clear),
            "p50_during": pct(during, 0.5), "p99_during": pct(during, 0.99), "max_during": pct(during, 1.0),
            "p50_clear": pct(clear, 0.5), "p99_clear": pct(clear, 0.99), "max_clear": pct(clear, 1.0)}


def restart(srv, expect, tag, limit=300):
    """Kill -9 the server, start it on the same data dir, time until the known token's GET matches.
    A discoveryd snapshot child still writing is waited for first (bounded): killed mid-snapshot, the
    orphaned child keeps the listening socket and the data-dir lock until it ends, and the restart
    then fails with "Address already in use" (seen while writing this benchmark; reported)."""
    if srv.target == "discoveryd":
        deadline = time.monotonic() + 120
        while children(srv.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    srv.kill9()
    t0 = time.monotonic()
    p = srv.start(tag)
    ok = False
    last = None
    while time.monotonic() - t0 < limit:
        if p.poll() is not None:
            last = "exited with %s" % p.returncode
            break
        try:
            st, body = get(srv.port, known_path(), 30)
            if st == 200:
                if json.loads(body)["node"] == expect:
                    ok = True
                    break
                last = "200 with different data"
            else:
                last = "status %d" % st
        except (OSError, ValueError, KeyError) as e:
            last = type(e).__name__
        time.sleep(0.002)
    secs = time.monotonic() - t0
    hwm = vm(p.pid, "VmHWM")
    if not ok:
        try:
            tail = [l.strip() for l in open(srv.logpath, errors="replace") if l.strip()][-1:]
        except OSError:
            tail = []
        last = "%s%s" % (last, (": " + tail[0][:200]) if tail else "")
    return {"ok": ok, "secs": secs if ok else None, "hwm_kb": hwm, "why": None if ok else last}


def seed(srv, bins, first, count):
    t = time.monotonic()
    r = load(bins, srv.port, first, count, 900)
    log("  seeded %d registrations (first %d) in %.1f s: %d ok, %d non-2xx, %d unanswered" % (
        r["done"], first, time.monotonic() - t, r["ok"], r["non2xx"], r["unanswered"]))
    if r["ok"] != count:
        raise RuntimeError("seeding failed: %r" % r)
    return r


def measured(fn, target, rnd, args, bins, tmp):
    """fn's run after a bounded wait for a quiet machine, with what disturbed it noted."""
    return bench_helper.measured(lambda: fn(target, rnd, args, bins, tmp), "round %d, %s" % (rnd, target),
                                 args.quiet_wait, log)


def machine_note(r):
    m = r.get("machine") or {}
    bits = []
    if m.get("start") == "busy":
        bits.append("⚠ busy at start")
    if m.get("contended"):
        bits.append("⚠ other test runs seen in %d s" % m["contended"])
    return "; ".join(bits) or ("quiet" if m.get("start") == "quiet" else "–")


def start_with_tokens(srv):
    """Start a fresh server and create the TOKENS tokens every workload registers into."""
    srv.start("seed")
    if not wait_ready(srv):
        raise RuntimeError("not ready")
    if bench_helper.seed_tokens(srv.port, "bench", TOKENS, 3) != 0:
        raise RuntimeError("token seeding failed")


def run_big(target, rnd, args, bins, tmp):
    """Seed TOKENS + keys; restart (WAL only); a window of PUTs with a snapshot due SNAP_AFTER into it;
    restart again (snapshot + WAL tail)."""
    d = tempfile.mkdtemp(prefix="r%d-big-%s-" % (rnd, target), dir=tmp)
    snapcount = TOKENS + args.keys + SNAP_AFTER
    srv = Server(target, d, snapcount, bins)
    res = {"target": target, "round": rnd, "snapcount": snapcount}
    try:
        start_with_tokens(srv)
        t = time.monotonic()
        seed(srv, bins, 0, args.keys)
        res["seed_secs"] = time.monotonic() - t
        expect = known_data(srv.port)
        res["hwm_seeded_kb"] = vm(srv.proc.pid, "VmHWM")
        res["bytes_wal_only"] = du(srv.data_dir())
        r1 = restart(srv, expect, "restart1")
        res["restart_wal"] = r1
        log("  %s restart with %d registrations (WAL, no snapshot): %s s, VmHWM %s kB%s" % (
            target, args.keys, "%.2f" % r1["secs"] if r1["ok"] else "–", r1["hwm_kb"],
            "" if r1["ok"] else " (FAILED: %s)" % r1["why"]))
        if not r1["ok"]:
            return res
        # the snapshot window
        latf = os.path.join(d, "window.lat")
        watch = None
        if target == "discoveryd":
            watch = ChildWatch(srv.proc.pid, 300)
            watch.start()
        w = load(bins, srv.port, args.keys, args.window, 120, latf)
        # the snapshot may outlast the window: wait for it (bounded) before killing the server
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if target == "discoveryd":
                if not children(srv.proc.pid):
                    break
            else:
                sn = etcd_snapshots(srv.logpath)
                if sn and sn[-1][1] is not None:
                    break
            time.sleep(0.05)
        time.sleep(0.1)
        if watch:
            watch.stop_ev.set()
            watch.join(5)
            snaps = watch.intervals
        else:
            snaps = etcd_snapshots(srv.logpath)
        res["window"] = w
        res["snaps"] = snaps
        res["window_start"] = None
        res["split"] = split_latencies(latf, snaps) if snaps else None
        res["snap_secs"] = [(b - a) if b else None for a, b in snaps]
        sp = res["split"] or {}
        log("  %s window: %d PUTs, %.0f req/s, p99 %.2f ms; snapshots %s; p99 during %s ms (n=%s), without %s ms (n=%s)" % (
            target, w["done"], w["rps"], w["p99"], ["%.2f s" % x if x else "unfinished" for x in res["snap_secs"]],
            sp.get("p99_during"), sp.get("n_during"), sp.get("p99_clear"), sp.get("n_clear")))
        if args.keep:
            shutil.copy(latf, os.path.join(args.keep, "r%d-%s-window.lat" % (rnd, target)))
            json.dump(snaps, open(os.path.join(args.keep, "r%d-%s-snaps.json" % (rnd, target)), "w"))
            shutil.copy(srv.logpath, os.path.join(args.keep, "r%d-%s-server.log" % (rnd, target)))
        res["hwm_running_kb"] = vm(srv.proc.pid, "VmHWM")
        expect2 = known_data(srv.port)
        res["regs_final"] = args.keys + int(w["ok"])
        res["bytes_final"] = du(srv.data_dir())
        r2 = restart(srv, expect2, "restart2")
        res["restart_snap"] = r2
        log("  %s restart with %d registrations (snapshot + WAL): %s s, VmHWM %s kB" % (
            target, res["regs_final"], "%.2f" % r2["secs"] if r2["ok"] else "FAILED %s" % r2["why"], r2["hwm_kb"]))
        return res
    except Exception as e:  # a failed run is reported, not hidden
        res["error"] = str(e)
        log("  %s round %d failed: %s" % (target, rnd, e))
        return res
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def run_small(target, rnd, args, bins, tmp):
    d = tempfile.mkdtemp(prefix="r%d-small-%s-" % (rnd, target), dir=tmp)
    srv = Server(target, d, None, bins)  # default snapshot settings on both sides
    res = {"target": target, "round": rnd}
    try:
        start_with_tokens(srv)
        seed(srv, bins, 0, args.small)
        expect = known_data(srv.port)
        res["hwm_seeded_kb"] = vm(srv.proc.pid, "VmHWM")
        res["bytes"] = du(srv.data_dir())
        r = restart(srv, expect, "restart")
        res["restart"] = r
        log("  %s restart with %d registrations (default snapshots): %s s, VmHWM %s kB" % (
            target, args.small, "%.2f" % r["secs"] if r["ok"] else "FAILED %s" % r["why"], r["hwm_kb"]))
        return res
    except Exception as e:
        res["error"] = str(e)
        log("  %s small round %d failed: %s" % (target, rnd, e))
        return res
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the BENCHMARKS.md section

def spread(xs, f="%.2f", unit=""):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    m = statistics.median(xs)
    if len(xs) == 1:
        return (f % m) + unit
    return "%s%s (%s–%s)" % (f % m, unit, f % min(xs), f % max(xs))


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    return "%.2f×" % (a / b) if a and b else "–"


def section(meta, big, small, args):
    L = ["<!-- durable:begin -->", "## Durable store: PUTs during a snapshot, restart, data dir (tests/bench/durable.py)", ""]
    if args.quick:
        L += ["> **SMOKE RUN (`--quick`)**: small sizes, one round; these numbers only show the script works.", ""]
    L += ["- Command: %s" % meta.get("command_md", "`%s`" % meta["command"]),
          "- Date: %s; machine: %s CPUs, %s, kernel %s; load average at start %s" % (
              meta["date"], meta["nproc"], meta["cpu"], meta["kernel"], meta["load"]),
          "- etcd: %s, `--enable-v2=true`, fsync on; discoveryd: %s, `--threads %s %s`" % (
              meta["etcd"], meta["dd"], os.cpu_count(), " ".join(DD_FLAGS)),
          "- Load: `bench_load` (tests/bench/bench_load.c, C, epoll): 64 keep-alive loopback connections, one "
          "request in flight per connection, `PUT /v2/keys/discovery/bench-<k %% %d>/m<k>?prevExist=false`, every "
          "request's start time and latency recorded. %d tokens (`_config/size`=3) are written first. Targets "
          "alternate (etcd, discoveryd) per round; every run has a fresh server and data dir. Figures: **median "
          "(min–max) of %d round(s)**." % (TOKENS, TOKENS, args.rounds),
          ""]
    tg = ("etcd", "discoveryd")
    if big:
        L += ["### (c) registration PUTs while a snapshot of a %s-key store is taken" % format(args.keys + TOKENS + SNAP_AFTER, ","), "",
              "Keys at the snapshot: %s tokens' `_config/size` + %s registrations." % (
                  format(TOKENS, ","), format(args.keys + SNAP_AFTER, ",")), "",
              "Both servers run with `--snapshot-count %s` so that no snapshot is taken while %s registrations are "
              "seeded and the first one falls due %s PUTs into a measured window of %s PUTs. discoveryd's snapshot "
              "interval = the time its forked snapshot child is alive (polled every 5 ms); etcd's = its log lines "
              "`start to snapshot` .. `saved snapshot` (v2 store clone + JSON + save). *During* = the window's "
              "requests whose [start, start+latency] overlaps that interval; *without* = the rest of the same "
              "window. Same store size, same process, same load." % (
                  format(TOKENS + args.keys + SNAP_AFTER, ","), format(args.keys, ","), format(SNAP_AFTER, ","),
                  format(args.window, ",")), "",
              "| target | p99 without snapshot | p99 during snapshot | during / without | max during | snapshot took | "
              "requests during | window req/s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        agg = {t: dict(clear=None, during=None) for t in tg}
        for t in tg:
            rs = [r for r in big if r["target"] == t and r.get("split")]
            s = lambda k: [r["split"][k] for r in rs]
            rat = [r["split"]["p99_during"] / r["split"]["p99_clear"] for r in rs
                   if r["split"]["p99_during"] and r["split"]["p99_clear"]]
            agg[t] = dict(clear=med(s("p99_clear")), during=med(s("p99_during")))
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                t, spread(s("p99_clear"), unit=" ms"), spread(s("p99_during"), unit=" ms"), spread(rat, unit="×"),
                spread(s("max_during"), unit=" ms"), spread([sum(x for x in r["snap_secs"] if x) for r in rs], unit=" s"),
                spread(s("n_during"), "%.0f"), spread([r["window"]["rps"] for r in rs], "%.0f")))
        L.append("| **discoveryd / etcd** | %s | %s | | | | | |" % (
            ratio(agg["discoveryd"]["clear"], agg["etcd"]["clear"]), ratio(agg["discoveryd"]["during"], agg["etcd"]["during"])))
        for t in tg:  # the same, from the undisturbed runs only
            rs = [r for r in big if r["target"] == t and r.get("split") and machine_note(r) == "quiet"]
            s = lambda k: [r["split"][k] for r in rs]
            rat = [r["split"]["p99_during"] / r["split"]["p99_clear"] for r in rs
                   if r["split"]["p99_during"] and r["split"]["p99_clear"]]
            L.append("| %s, undisturbed runs only (%d) | %s | %s | %s | %s | %s | %s | %s |" % (
                t, len(rs), spread(s("p99_clear"), unit=" ms"), spread(s("p99_during"), unit=" ms"), spread(rat, unit="×"),
                spread(s("max_during"), unit=" ms"), spread([sum(x for x in r["snap_secs"] if x) for r in rs], unit=" s"),
                spread(s("n_during"), "%.0f"), spread([r["window"]["rps"] for r in rs], "%.0f")))
        L += ["", "Per round (p99 / max in ms; a round without exactly one finished snapshot in the window is marked):", "",
              "| round | target | seeding | window req/s | non-2xx | p99 without | p99 during | max during | n during | snapshots (s) | machine |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for r in sorted(big, key=lambda r: (r["round"], r["target"] != "etcd")):
            if r.get("error") and not r.get("split"):
                L.append("| %d | %s | failed: %s | | | | | | | | %s |" % (r["round"], r["target"], r["error"], machine_note(r)))
                continue
            sp, w = r.get("split") or {}, r.get("window") or {}
            sn = r.get("snap_secs") or []
            mark = "" if len(sn) == 1 and sn[0] else " ⚠ (not exactly one finished snapshot)"
            if sp.get("outlasted"):
                mark += " ⚠ (the snapshot outlasted the window)"
            L.append("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s%s | %s |" % (
                r["round"], r["target"], "%.0f s" % r["seed_secs"] if r.get("seed_secs") else "–",
                "%.0f" % w["rps"] if w else "–", "%d" % w["non2xx"] if w else "–",
                "%.2f" % sp["p99_clear"] if sp.get("p99_clear") else "–",
                "%.2f" % sp["p99_during"] if sp.get("p99_during") else "–",
                "%.2f" % sp["max_during"] if sp.get("max_during") else "–", sp.get("n_during", "–"),
                ", ".join("%.2f" % x if x else "unfinished" for x in sn) or "none", mark, machine_note(r)))
        L.append("")
    L += ["### (d) restart time, peak RSS and data dir per registration", "",
          "Restart = `kill -9` after every write was acknowledged, then the same command on the same data dir; time "
          "from just before the exec until `GET /v2/keys/discovery/%s?recursive=true&sorted=true` answers 200 with "
          "exactly the JSON it answered before the kill (polled every 2 ms). Peak RSS = `VmHWM` of the restarted "
          "process at that moment; beside it the `VmHWM` of the process that wrote the data, read just before the "
          "kill. Data dir = the sum of its file sizes (allocated bytes were the same: both servers preallocate "
          "their 64 MiB WAL segments, so small stores are dominated by one segment), per registration held." % KNOWN, "",
          "| registrations | data dir holds | target | restart | peak RSS after restart | peak RSS of the process "
          "that wrote it | data dir | bytes / registration |", "|---|---|---|---:|---:|---:|---:|---:|"]
    rows = []
    if small:
        rows.append((format(args.small, ","), "default snapshot settings (discoveryd every 10,000 entries, etcd every "
                     "100,000)", [(t, [r for r in small if r["target"] == t and r.get("restart")], "restart", "bytes",
                                   lambda r: args.small, "hwm_seeded_kb") for t in tg]))
    if big:
        rows.append((format(args.keys, ","), "WAL only, no snapshot yet (snapshot-count above the seeded count)",
                     [(t, [r for r in big if r["target"] == t and r.get("restart_wal")], "restart_wal", "bytes_wal_only",
                       lambda r: args.keys, "hwm_seeded_kb") for t in tg]))
        rows.append(("%s (%s + the window)" % (format(args.keys + args.window, ","), format(args.keys, ",")), "one snapshot (taken in (c)) + the WAL after it",
                     [(t, [r for r in big if r["target"] == t and r.get("restart_snap")], "restart_snap", "bytes_final",
                       lambda r: r["regs_final"], "hwm_running_kb") for t in tg]))
    for label, shape, per in rows:
        ms = {t: (None,) * 5 for t in tg}
        for t, rs, rk, bk, nregs, hk in per:
            secs = [r[rk]["secs"] for r in rs]
            hwm = [r[rk]["hwm_kb"] / 1024 if r[rk]["hwm_kb"] else None for r in rs]
            hwm0 = [r[hk] / 1024 if r.get(hk) else None for r in rs]
            size = [r[bk][0] / 2 ** 20 for r in rs]
            app = [r[bk][0] / nregs(r) for r in rs]
            fails = sum(1 for r in rs if not r[rk]["ok"])
            ms[t] = (med(secs), med(hwm), med(hwm0), med(size), med(app))
            L.append("| %s | %s | %s | %s%s | %s | %s | %s | %s |" % (
                label, shape, t, spread(secs, unit=" s"), " (%d failed)" % fails if fails else "",
                spread(hwm, "%.0f", " MiB"), spread(hwm0, "%.0f", " MiB"), spread(size, "%.0f", " MiB"),
                spread(app, "%.0f")))
        L.append("| %s | | **discoveryd / etcd** | **%s** | %s | %s | %s | %s |" % (
            (label,) + tuple(ratio(ms["discoveryd"][i], ms["etcd"][i]) for i in range(5))))
    L += ["", "Per round (restart s / peak RSS MiB after restart):", "",
          "| round | target | %s | machine |" % " | ".join(x[0] for x in rows), "|---:|---|%s---|" % ("---:|" * len(rows))]
    for rnd in range(1, args.rounds + 1):
        for t in tg:
            cells, notes = [], []
            for label, _shape, per in rows:
                for tt, rs, rk, _bk, _n, _hk in per:
                    if tt != t:
                        continue
                    r = next((x for x in rs if x["round"] == rnd), None)
                    if r is None:
                        cells.append("–")
                        continue
                    rr = r[rk]
                    cells.append("%s / %s" % ("%.2f" % rr["secs"] if rr["ok"] else "failed (%s)" % rr["why"],
                                              "%.0f" % (rr["hwm_kb"] / 1024) if rr["hwm_kb"] else "–"))
                    notes.append(machine_note(r))
            if cells:
                L.append("| %d | %s | %s | %s |" % (rnd, t, " | ".join(cells), "; ".join(sorted(set(notes)))))
    allr = big + small
    L += ["", "Runs disturbed by other test runs on the machine (busy at start, or another test run seen during "
          "the run; each run first waits up to %s s for a quiet machine): %d of %d." % (
              meta.get("quiet_wait", "%.0f" % args.quiet_wait), sum(1 for r in allr if machine_note(r) not in ("quiet", "–")), len(allr)),
          "", "Not a test: nothing is asserted. Raw per-round results: run with `--json FILE`.", "<!-- durable:end -->"]
    return "\n".join(L)


def write_section(out, text):
    old = open(out, encoding="utf-8").read() if os.path.exists(out) else ""
    pat = re.compile(r"<!-- durable:begin -->.*?<!-- durable:end -->", re.S)
    if pat.search(old):
        new = pat.sub(lambda m: text, old)
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    open(out, "w", encoding="utf-8").write(new)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keys", type=int, default=1000000, help="registrations seeded for (c) and the big restarts")
    ap.add_argument("--window", type=int, default=150000, help="PUTs in the measured snapshot window")
    ap.add_argument("--small", type=int, default=100000, help="registrations for the small restart")
    ap.add_argument("--only", choices=("big", "small"), help="run one part only")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 100k / 20k keys")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--keep", help="keep each window's per-request latencies, snapshot intervals and server log here")
    ap.add_argument("--targets", default="etcd,discoveryd", help="comma-separated, for investigations")
    ap.add_argument("--quiet-wait", type=float, default=90,
                    help="before each run wait up to this many s for a quiet machine (default 90)")
    ap.add_argument("--report-from", nargs="+", metavar="JSON",
                    help="run nothing: write the section from results recorded with --json (several runs of the "
                    "same settings are merged, rounds numbered in order)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.keys, args.window, args.small = 1, 100000, 60000, 20000
    if not (1 <= args.rounds <= 20 and 1000 <= args.keys <= 5000000 and SNAP_AFTER * 2 <= args.window <= 1000000
            and 1000 <= args.small <= 5000000):
        ap.error("--rounds 1..20, --keys and --small 1000..5000000, --window %d..1000000" % (SNAP_AFTER * 2))
    if args.report_from:
        big, small, metas = [], [], []
        for path in args.report_from:
            d = json.load(open(path))
            off = max([r["round"] for r in big + small] or [0])
            for r in d["big"] + d["small"]:
                r["round"] += off
            big += d["big"]
            small += d["small"]
            metas.append(d["meta"])
        meta = dict(metas[-1])
        meta["command_md"] = ("section written by `tests/bench/durable.py --report-from` from the recorded results "
                              "of " + " and ".join("`%s` (%s, load %s)" % (m["command"], m["date"], m["load"])
                                                   for m in metas))
        meta["quiet_wait"] = "/".join(sorted(set(str(m.get("quiet_wait", "?")) for m in metas)))
        meta["date"] = ", ".join(m["date"] for m in metas)
        meta["load"] = ", ".join(m["load"] for m in metas)
        args.rounds = max(r["round"] for r in big + small)
        write_section(args.out, section(meta, big, small, args))
        log("wrote %s from %d recorded run(s)" % (args.out, len(metas)))
        return
    bins = bench_helper.build_bins(ROOT, ("etcd",), args.no_build, log)
    for b in bins.values():
        if not os.access(b, os.X_OK):
            sys.exit("missing %s (build it, or drop --no-build)" % b)
    git = lambda *a: subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True).stdout.strip()
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!BENCHMARKS.md") else ""
    meta = {"command": "tests/bench/durable.py" + ("".join(" " + a for a in sys.argv[1:])),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "nproc": os.cpu_count(),
            "cpu": next((l.split(": ", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
            "kernel": os.uname().release, "load": open("/proc/loadavg").read().split()[0],
            "quiet_wait": "%.0f" % args.quiet_wait,
            "etcd": subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
            "dd": "commit %s%s, Release build (`build-bench`)" % (git("rev-parse", "--short", "HEAD"), dirty)}
    tmp = tempfile.mkdtemp(prefix="dd-durable-")
    big, small = [], []
    try:
        for rnd in range(1, args.rounds + 1):
            for t in args.targets.split(","):
                if args.only in (None, "small"):
                    log("round %d, %s: restart with %d registrations" % (rnd, t, args.small))
                    small.append(measured(run_small, t, rnd, args, bins, tmp))
                if args.only in (None, "big"):
                    log("round %d, %s: %d registrations, snapshot window, restarts" % (rnd, t, args.keys))
                    big.append(measured(run_big, t, rnd, args, bins, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        json.dump({"meta": meta, "big": big, "small": small}, open(args.json, "w"), indent=1)
    write_section(args.out, section(meta, big, small, args))
    log("wrote %s" % args.out)


if __name__ == "__main__":
    main()
