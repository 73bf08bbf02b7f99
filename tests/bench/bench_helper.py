#!/usr/bin/env python3
"""tests/bench/bench_helper.py — the small jobs tests/bench/run.sh does not do in bash: free ports,
readiness polls, seeding tokens, parsing wrk output and writing BENCHMARKS.md from the results.
Python 3 standard library only; every loop is bounded."""

import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time


def pick_port():
    """A port on 127.0.0.1 that nobody listens on right now (bind 0, read, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_port():
    print(pick_port())


def build_bins(root, tools, no_build, log):
    """The Release discoveryd and bench_load of build-bench (configured and built unless no_build),
    after checking that the tools a script needs are on PATH. Exits with a one-line reason."""
    for tool in tuple(tools) + (() if no_build else ("cmake",)):
        if shutil.which(tool) is None:
            sys.exit("missing %s: run deploy/deps.sh first" % tool)
    bdir = os.path.join(root, "build-bench")
    if not no_build:
        log("building discoveryd and bench_load (Release, build-bench)")
        subprocess.run(["cmake", "-S", root, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", bdir, "--target", "discoveryd", "bench_load", "-j2"], check=True,
                       stdout=subprocess.DEVNULL)
    return {"discoveryd": os.path.join(bdir, "discoveryd"), "bench_load": os.path.join(bdir, "tests/bench/bench_load")}


def wait_ready(port, path, timeout, pid=None):
    deadline = time.time() + float(timeout)
    while time.time() < deadline:
        if pid and not os.path.exists("/proc/%s" % pid):
            print("server process %s exited before it was ready" % pid, file=sys.stderr)
            return 1
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=2)
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return 0
        except OSError:
            pass
        time.sleep(0.1)
    print("not ready after %s s: 127.0.0.1:%s%s" % (timeout, port, path), file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------------------------
# a quiet machine: the benchmarks share 2 cores with other people's test runs

FOREIGN = re.compile(r"^(ctest|etcd|discoveryd|chromium|chrome|postgres|wrk|bench_load)$")


def _ancestors(pid):
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            with open("/proc/%d/stat" % pid) as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return seen


def foreign_procs(mine):
    """Benchmark-disturbing processes (test runners, servers, browsers) that are not descendants of mine."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % d) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if FOREIGN.match(comm) and int(mine) not in _ancestors(int(d)):
            out.append("%s:%s" % (d, comm))
    return out


def _cpu_busy(interval):
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t0, i0 = snap()
    time.sleep(interval)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(mine, max_wait):
    """Waits (at most max_wait s) until no foreign process runs and the CPUs were < 15% busy for 2 s.
    Prints one line: quiet|busy, seconds waited, load average, what was seen."""
    print("\t".join(quiet_state(mine, max_wait)))
    return 0


def quiet_state(mine, max_wait):
    t0 = time.time()
    while True:
        fp = foreign_procs(mine)
        busy = _cpu_busy(2.0)
        if not fp and busy < 0.15:
            state = "quiet"
            break
        if time.time() - t0 >= float(max_wait):
            state = "busy"
            break
        time.sleep(3)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    return (state, "%.0f" % (time.time() - t0), load,
            "cpu %.0f%% busy; %s" % (busy * 100, ", ".join(fp[:6]) or "no foreign processes"))


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Foreign(threading.Thread):
    """Counts the 1-s samples in which another test run (runner, server, browser) was on the machine."""

    def __init__(self):
        super().__init__(daemon=True)
        self.n = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.wait(1.0):
            if foreign_procs(os.getpid()):
                self.n += 1


def measured(fn, label, quiet_wait, log, catch=False):
    """fn()'s result (a dict) after a bounded wait for a quiet machine, with what disturbed it in
    result["machine"]. catch: an exception becomes {"error": ...} (one failed run is a result)."""
    st = quiet_state(os.getpid(), quiet_wait)
    log("%s: machine %s after %s s (load %s; %s)" % (label, st[0], st[1], st[2], st[3]))
    fg = Foreign()
    fg.start()
    try:
        res = fn()
    except Exception as e:  # noqa: BLE001
        if not catch:
            raise
        log("  %s FAILED: %s" % (label, e))
        res = {"error": str(e)[:400]}
    finally:
        fg.stop_ev.set()
        fg.join(5)
    res["machine"] = {"start": st[0], "load": st[2], "contended": fg.n}
    return res


def put_all(port, reqs, conns=8):
    """PUTs (path, body) pairs over a few keep-alive connections; returns {status: count}."""
    counts = {}
    lock = threading.Lock()
    errors = []

    def worker(part):
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        local = {}
        for path, body in part:
            try:
                c.request("PUT", path, body=body, headers=FORM)
                r = c.getresponse()
                r.read()
                local[r.status] = local.get(r.status, 0) + 1
            except OSError as e:
                errors.append(str(e))
                c.close()
        c.close()
        with lock:
            for k, v in local.items():
                counts[k] = counts.get(k, 0) + v

    parts = [reqs[i::conns] for i in range(conns)]
    ts = [threading.Thread(target=worker, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join(600)
    if errors:
        counts["transport-error"] = len(errors)
    return counts


def seed_tokens(port, prefix, n, size):
    reqs = [("/v2/keys/discovery/%s-%d/_config/size" % (prefix, i), "value=%s" % size) for i in range(int(n))]
    counts = put_all(port, reqs)
    ok = counts.get(201, 0) + counts.get(200, 0)
    print("seeded %d/%s tokens %s-*: statuses %r" % (ok, n, prefix, counts), file=sys.stderr)
    return 0 if ok == int(n) else 1


def seed_members(port, token):
    reqs = [("/v2/keys/discovery/%s/_config/size" % token, "value=3")]
    reqs += [("/v2/keys/discovery/%s/%016x?prevExist=false" % (token, 0xfc594def544cce00 + i),
              "value=m%d%%3Dhttp%%3A%%2F%%2F127.0.0.1%%3A%d2380" % (i + 1, i + 1)) for i in range(3)]
    counts = put_all(port, reqs[:1], 1)
    counts2 = put_all(port, reqs[1:], 1)
    ok = counts.get(201, 0) + counts2.get(201, 0)
    if ok != 4:
        print("seeding token %s failed: %r %r" % (token, counts, counts2), file=sys.stderr)
        return 1
    return 0


def seed_upstream(port):
    """The upstream discovery server: a token from its /new?size=3 and three members registered through
    it (PUT /<token>/<id>, as etcd's discovery client does). Prints the token."""
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    c.request("GET", "/new?size=3")
    r = c.getresponse()
    url = r.read().decode().strip()
    c.close()
    if r.status != 200 or "/" not in url:
        print("upstream /new?size=3: %d %r" % (r.status, url[:200]), file=sys.stderr)
        return 1
    tok = url.rsplit("/", 1)[1]
    reqs = [("/%s/%016x?prevExist=false" % (tok, 0xfc594def544cce00 + i),
             "value=m%d%%3Dhttp%%3A%%2F%%2F127.0.0.1%%3A%d2380" % (i + 1, i + 1)) for i in range(3)]
    counts = put_all(port, reqs, 1)
    if counts.get(201, 0) != 3:
        print("registering 3 members through the upstream server failed: %r" % counts, file=sys.stderr)
        return 1
    print(tok)
    return 0


def to_ms(text):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 60e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * f
    return float(text)


def parse_wrk(path):
    """One line of tab-separated fields: rps p50_ms p99_ms non2xx socket_errors requests."""
    rps = p50 = p99 = None
    non2xx = sockerr = 0
    total = 0
    for line in open(path, encoding="utf-8", errors="replace"):
        f = line.split()
        if line.startswith("Requests/sec:"):
            rps = float(f[1])
        elif len(f) == 2 and f[0] == "50%":
            p50 = to_ms(f[1])
        elif len(f) == 2 and f[0] == "99%":
            p99 = to_ms(f[1])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            non2xx = int(f[-1])
        elif line.strip().startswith("Socket errors:"):
            sockerr = sum(int(x.strip(",")) for x in f if x.strip(",").isdigit())
        elif "requests in" in line:
            total = int(f[0])
    if rps is None or p50 is None or p99 is None:
        print("\t".join(["nan"] * 3 + ["0", "0", "0"]))
        return 1
    print("%.2f\t%.3f\t%.3f\t%d\t%d\t%d" % (rps, p50, p99, non2xx, sockerr, total))
    return 0


# ---------------------------------------------------------------------------------------------
# BENCHMARKS.md

WORKLOADS = {
    "get": ("(a) GET of a 3-member token dir",
            "`GET /v2/keys/discovery/<tok>?quorum=false&recursive=false&sorted=false` (what every member "
            "sends twice), one token holding `_config/size`=3 and three members. Two peers run in the same "
            "alternation: **h2o** serving, as a static file (`application/json`), the very bytes discoveryd "
            "answered in that round — the limit of an HTTP/1.1 server on this machine — and **upstream**, "
            "the original discovery server (Debian `etcd-discovery`) proxying `GET /<tok>?…` to its own etcd 3.4, "
            "with a token from its `/new?size=3` and three members registered through it (its peak RSS and CPU "
            "are the proxy's and its etcd's together)."),
    "put": ("(b) member registrations",
            "`PUT /v2/keys/discovery/<tok>/<unique id>?prevExist=false`, body "
            "`value=name%3Dhttp%3A%2F%2F127.0.0.1%3A2380`, `Content-Type: application/x-www-form-urlencoded`; "
            "ids unique per request (`tests/bench/put.lua`), spread over TOKENS tokens whose `_config/size`=3 "
            "was written beforehand on both targets. Fresh server and data dir for every run."),
}


TARGETS = ["etcd", "discoveryd", "h2o", "upstream"]


def fmt(v, unit="", nd=0):
    if v is None:
        return "–"
    return ("{:,.%df}" % nd).format(v) + unit


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def machine_note(r):
    """quiet, or what disturbed the run: busy when it started, other test runs seen during it (1 s samples)."""
    bits = []
    if r["start"] == "busy":
        bits.append("⚠ busy at start")
    if r["contended"]:
        bits.append("⚠ other test runs seen in %d s" % r["contended"])
    return "; ".join(bits) or ("quiet" if r["start"] == "quiet" else "–")


def durability_note(wrows):
    """What the registration table compares, decided from this run's evidence: a discoveryd run counts
    as durable when its data dir holds WAL segments and its threads issued fsyncs during the load."""
    dd = [r for r in wrows if r["target"] == "discoveryd" and r["status"] == "ok" and r["total"]]
    if not dd:
        return "discoveryd: no clean run, so nothing is claimed about its durability here."
    if any(r["fsyncs"] is None for r in dd):
        return ("discoveryd: fsyncs were not counted in this run (perf could not count syscall tracepoints), "
                "so whether its registrations were made durable is not shown here.")
    walled = [r for r in dd if (r["wal_segs"] or 0) > 0 and r["fsyncs"] > 0]
    if len(walled) != len(dd):
        return ("discoveryd: **in-memory store** — in %d of %d runs its data dir held no WAL segment or its "
                "threads issued no fsync during the load, so its registrations were not made durable, while "
                "etcd's were. Not a fair comparison." % (len(dd) - len(walled), len(dd)))
    return ("Durable on both sides: in every discoveryd run its data dir held WAL segments (`wal/*.wal`) and "
            "its threads issued fdatasync/fsync during the load (counted below); etcd fsyncs its WAL "
            "(default, fsync on). fsync/s = `fdatasync`+`fsync` syscalls of the server process, all threads, "
            "counted by `perf stat -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p PID` (kernel "
            "tracepoints, no strace slowdown) from just before wrk starts to just after it ends; etcd's own "
            "counters (WAL fsyncs + bbolt commits + snapshot fsyncs from /metrics) are shown per round as a "
            "cross-check. PUTs per fsync = requests answered / fsyncs (group commit).")


def report(results, meta_path, out):
    meta = {}
    for line in open(meta_path, encoding="utf-8"):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            meta[k] = v
    rows = []
    for line in open(results, encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 12 or f[0] == "round":
            continue
        rows.append(dict(round=int(f[0]), wl=f[1], target=f[2], status=f[3],
                         rps=float(f[4]) if f[4] not in ("", "nan") else None,
                         p50=float(f[5]) if f[5] not in ("", "nan") else None,
                         p99=float(f[6]) if f[6] not in ("", "nan") else None,
                         non2xx=int(f[7] or 0), sockerr=int(f[8] or 0), total=int(f[9] or 0),
                         hwm=int(f[10]) if f[10] else None, cpu=float(f[11]) if f[11] else None,
                         data=int(f[12]) if len(f) > 12 and f[12] else None,
                         fsyncs=int(f[13]) if len(f) > 13 and f[13] else None,
                         fsync_metric=int(f[14]) if len(f) > 14 and f[14] else None,
                         wal_segs=int(f[15]) if len(f) > 15 and f[15] else None,
                         secs=float(f[16]) if len(f) > 16 and f[16] else None,
                         start=f[17] if len(f) > 17 else "",
                         contended=int(f[18]) if len(f) > 18 and f[18] else 0))
    for r in rows:
        r["fsps"] = r["fsyncs"] / r["secs"] if r["fsyncs"] is not None and r["secs"] else None
        r["per_fsync"] = r["total"] / r["fsyncs"] if r["fsyncs"] and r["total"] else None
    quick = meta.get("quick") == "1"
    L = []
    L.append("# discoveryd vs etcd 3.4: benchmarks")
    L.append("")
    L.append("Written by `tests/bench/run.sh` (do not edit by hand; re-run the script).")
    L.append("")
    if quick:
        L.append("> **SMOKE RUN (`--quick`)** — %s round of %s s per target and workload. These numbers only "
                 "prove that the script works; they are **not** a measurement (one short round; the machine may "
                 "have been busy). For the real table run `tests/bench/run.sh` (3 rounds × 10 s) on a quiet "
                 "machine." % (meta.get("rounds"), meta.get("duration")))
        L.append("")
    L.append("## How these numbers were produced")
    L.append("")
    L.append("- Command: `%s`" % meta.get("command", ""))
    L.append("- Date: %s" % meta.get("date", ""))
    L.append("- Machine: %s CPUs (`nproc`), %s, kernel %s" % (meta.get("nproc"), meta.get("cpu"), meta.get("kernel")))
    L.append("- etcd: %s, started with `--enable-v2=true`, defaults otherwise (fsync on, snapshot-count 100000), "
             "fresh data dir in a temp dir, loopback" % meta.get("etcd_version"))
    L.append("- discoveryd: %s, `%s`" % (meta.get("dd_version"), meta.get("dd_args")))
    L.append("- etcd command: `%s`" % meta.get("etcd_cmd", ""))
    if "get" in meta.get("workloads", "get put").split():
        L.append("- h2o (GET only): %s, `%s`" % (meta.get("h2o_version", ""), meta.get("h2o_cmd", "")))
        L.append("- upstream (GET only): %s, `%s`" % (meta.get("upstream_version", ""), meta.get("upstream_cmd", "")))
    if meta.get("profile"):
        L.append("- Profiles of the discoveryd runs (`--profile`: `perf record -e cpu-clock -g`, top symbols by "
                 "`perf report --stdio`): `%s`" % meta["profile"])
    L.append("- Load: `%s` from the same machine; wrk and the servers share the CPUs. Targets alternate "
             "(etcd, discoveryd[, h2o, upstream], etcd, discoveryd, …); each run starts a fresh server process. "
             "Numbers on this shared 2-core machine vary run to run: compare ratios within one run. Tables show the "
             "**median of %s round(s)**; per-round values are listed below each table." % (meta.get("wrk_cmd"), meta.get("rounds")))
    L.append("- Peak RSS = `VmHWM` from `/proc/<pid>/status` of the server at the end of the run (a fresh process per "
             "run, so it is the peak of that workload plus start-up). Server CPU = (utime+stime) during the wrk run / "
             "duration, in cores.")
    if meta.get("note"):
        L.append("- Note: %s" % meta["note"])
    L.append("- A run with non-2xx replies or socket errors is flagged ⚠ in the tables and its counts are shown; "
             "such a run is not a clean measurement.")
    L.append("- The machine is shared: before each run the script waits (at most BENCH_QUIET_WAIT s) until no other "
             "test runner, server or browser runs and the CPUs idle; the per-round `machine` column says whether "
             "the run started quiet and in how many 1-s samples another test run was seen. Runs disturbed: "
             "%d of %d." % (sum(1 for r in rows if machine_note(r) not in ("quiet", "–")), len(rows)))
    L.append("")
    for wl in ("get", "put"):
        title, desc = WORKLOADS[wl]
        wrows = [r for r in rows if r["wl"] == wl]
        if not wrows:
            continue
        targets = [t for t in TARGETS if any(r["target"] == t for r in wrows)]
        L.append("## %s" % title)
        L.append("")
        L.append(desc.replace("TOKENS", meta.get("tokens", "10000")))
        if wl == "put":
            L.append("")
            L.append(durability_note(wrows))
        L.append("")
        fs = wl == "put"
        L.append("| target | req/s | spread max/min | p50 | p99 | peak RSS | server CPU |%s non-2xx | socket errors | runs |"
                 % (" fsync/s | PUTs per fsync |" if fs else ""))
        L.append("|---|---:|---:|---:|---:|---:|---:|%s---:|---:|---|" % ("---:|---:|" if fs else ""))
        med = {}
        for target in targets:
            trs = [r for r in wrows if r["target"] == target]
            okrs = [r for r in trs if r["status"] == "ok"]
            if not okrs:
                why = trs[0]["status"] if trs else "not run"
                L.append("| %s | %s | | | | | | | | |" % (target, why))
                continue
            m = dict(rps=median([r["rps"] for r in okrs]), p50=median([r["p50"] for r in okrs]),
                     p99=median([r["p99"] for r in okrs]), hwm=median([r["hwm"] for r in okrs]),
                     cpu=median([r["cpu"] for r in okrs]), fsps=median([r["fsps"] for r in okrs]),
                     per_fsync=median([r["per_fsync"] for r in okrs]))
            med[target] = m
            bad = sum(r["non2xx"] for r in okrs)
            serr = sum(r["sockerr"] for r in okrs)
            flag = " ⚠" if bad or serr else ""
            rpss = [r["rps"] for r in okrs if r["rps"]]
            m["spread"] = max(rpss) / min(rpss) if rpss else None
            L.append("| %s%s | %s | %s | %s | %s | %s | %s |%s %d | %d | %d |" % (
                target, flag, fmt(m["rps"]), fmt(m["spread"], "", 2), fmt(m["p50"], " ms", 2), fmt(m["p99"], " ms", 2),
                fmt(m["hwm"] / 1024 if m["hwm"] else None, " MiB", 1), fmt(m["cpu"], "", 2),
                (" %s | %s |" % (fmt(m["fsps"]), fmt(m["per_fsync"], "", 1))) if fs else "", bad, serr, len(okrs)))
        errs = sum(r["non2xx"] + r["sockerr"] for r in wrows if r["status"] == "ok")

        def ratio(a, b):
            return "%.2f×" % (a / b) if a and b else "–"
        shown = False
        for peer in [t for t in targets if t != "discoveryd"]:
            if "discoveryd" not in med or peer not in med:
                continue
            e, d = med[peer], med["discoveryd"]
            shown = True
            L.append("| **discoveryd / %s**%s | **%s** | %s | %s | %s | %s | %s |%s | | |" % (
                peer, " ⚠" if errs else "",
                ratio(d["rps"], e["rps"]), ratio(d["spread"], e["spread"]), ratio(d["p50"], e["p50"]),
                ratio(d["p99"], e["p99"]), ratio(d["hwm"], e["hwm"]), ratio(d["cpu"], e["cpu"]),
                (" %s | %s |" % (ratio(d["fsps"], e["fsps"]), ratio(d["per_fsync"], e["per_fsync"]))) if fs else ""))
        if shown:
            L.append("")
            L.append("Ratio: req/s higher is better for discoveryd; spread (the fastest round's req/s over the "
                     "slowest's, per system), p50, p99, RSS and CPU lower is better. Medians of one run; only "
                     "ratios within one run are compared.")
            if errs:
                L.append("")
                L.append("⚠ **Not a valid comparison**: %d replies in these runs were non-2xx or failed at the "
                         "socket level (counts per run below); error replies are cheaper than real work." % errs)
        L.append("")
        L.append("Per round:")
        L.append("")
        L.append("| round | target | status | req/s | p50 | p99 | peak RSS | CPU | requests | non-2xx | socket errors "
                 "| data dir after |%s" % (" fsyncs (perf) | fsync/s | etcd's own fsync count | WAL segments |"
                                           if fs else ""))
        L.append("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|%s" % ("---:|---:|---:|---:|" if fs else ""))
        L[-2] += " machine |"
        L[-1] += "---|"
        for r in sorted(wrows, key=lambda r: (r["round"], TARGETS.index(r["target"]) if r["target"] in TARGETS else 9)):
            extra = ""
            if fs:
                extra = " %s | %s | %s | %s |" % (fmt(r["fsyncs"]), fmt(r["fsps"]), fmt(r["fsync_metric"]),
                                                  fmt(r["wal_segs"]))
            L.append(("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d | %s |" + extra) % (
                r["round"], r["target"], r["status"] + (" ⚠" if r["non2xx"] or r["sockerr"] else ""),
                fmt(r["rps"]), fmt(r["p50"], " ms", 2), fmt(r["p99"], " ms", 2),
                fmt(r["hwm"] / 1024 if r["hwm"] else None, " MiB", 1), fmt(r["cpu"], "", 2),
                fmt(r["total"]), r["non2xx"], r["sockerr"],
                fmt(r["data"] / 1024 if r["data"] is not None else None, " MiB", 1)) + " %s |" % machine_note(r))
        L.append("")
    L.append("## Reference")
    L.append("")
    L.append("The recorded etcd 3.4.23 baseline (trace §8, 2 vCPU VM, same wrk command): GET token dir "
             "37,588 req/s, p50 1.64 ms, p99 49.5 ms; registration PUT on a fresh store 19,340 req/s, p50 2.93 ms, "
             "p99 20.4 ms.")
    L.append("")
    # Sections other benchmarks own (<!-- name:begin --> ... <!-- name:end -->, e.g. the Raft core's)
    # are carried over unchanged.
    kept = []
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            old = f.read()
        kept = [m.group(0) for m in re.finditer(r"<!-- (\w+):begin -->.*?<!-- \1:end -->", old, flags=re.S)]
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(L + kept) + ("\n" if kept else ""))
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "freeport":
        free_port()
        return 0
    if cmd == "wait":
        return wait_ready(argv[2], argv[3], argv[4], argv[5] if len(argv) > 5 else None)
    if cmd == "seed-tokens":
        return seed_tokens(argv[2], argv[3], argv[4], argv[5])
    if cmd == "seed-members":
        return seed_members(argv[2], argv[3])
    if cmd == "seed-upstream":
        return seed_upstream(argv[2])
    if cmd == "wait-quiet":
        return wait_quiet(argv[2], argv[3])
    if cmd == "foreign":
        print(len(foreign_procs(argv[2])))
        return 0
    if cmd == "parse-wrk":
        return parse_wrk(argv[2])
    if cmd == "report":
        return report(argv[2], argv[3], argv[4])
    print("usage: bench_helper.py freeport | wait PORT PATH TIMEOUT | seed-tokens PORT PREFIX N SIZE | "
          "seed-members PORT TOKEN | seed-upstream PORT | wait-quiet MYPID MAXWAIT | foreign MYPID | parse-wrk FILE | report RESULTS META OUT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))


def http_get(port, path, timeout):
    """GET path on 127.0.0.1:port; (status, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()
