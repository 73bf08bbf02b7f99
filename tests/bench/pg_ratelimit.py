#!/usr/bin/env python3
# tests/bench/pg_ratelimit.py — /new throughput and latency with the PostgreSQL rate limiter
# (--postgres) against the per-process limiter, one run each, same machine, same wrk load; also
# PostgreSQL transactions per /new and the database's CPU time. Not a test: it asserts nothing and
# prints a small report on stdout (nothing is written to BENCHMARKS.md).
# Usage: DISCOVERYD_BIN=build/discoveryd tests/bench/pg_ratelimit.py [--duration S] [--conns N]
# Needs wrk and PostgreSQL 15 (deploy/deps.sh).

import argparse
import os
import re
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
import harness as h  # noqa: E402
import pg_harness  # noqa: E402


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def wrk(hostport, duration, conns):
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % duration, "--latency",
                          "http://%s/new" % hostport], stdout=subprocess.PIPE, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def pct(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % p, out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": total, "p50": pct(50), "p99": pct(99),
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--conns", type=int, default=16)
    args = ap.parse_args()
    checks = h.Checks("bench: /new with the PostgreSQL limiter vs the per-process limiter")
    pg = pg_harness.Postgres()
    results = {}
    for name, extra in (("per-process", []), ("postgres", ["--postgres", pg.url()])):
        d = h.DiscoverydBackend(checks, label="bench-" + name, extra_args=["--threads", "2"] + extra)
        if name == "postgres":
            h.wait_until(lambda: 'backend="postgres"} 1' in d.metrics(), 10, 0.1, "postgres backend")
        wrk(d.hostport, 1, args.conns)  # warm-up
        x0 = int(pg.sql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'"))
        c0 = cpu_seconds(pg.pids())
        r = wrk(d.hostport, args.duration, args.conns)
        r["db_cpu"] = cpu_seconds(pg.pids()) - c0
        r["xacts"] = int(pg.sql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'")) - x0
        results[name] = r
        d.stop_and_check(checks)
        checks.finalizers.remove(d.stop_and_check)
    print("\n/new, wrk -t2 -c%d -d%ds, discoveryd --threads 2, limits relaxed (every request is admitted after "
          "2 bucket decisions), one run each on this machine (%d cores)\n" % (args.conns, args.duration,
                                                                          os.cpu_count()))
    print("| limiter | requests/s | p50 ms | p99 ms | non-2xx | PostgreSQL xacts per /new | PostgreSQL CPU s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print("| %s | %.0f | %.3f | %.3f | %d | %.2f | %.2f |" % (
            name, r["rps"], r["p50"], r["p99"], r["non2xx"], r["xacts"] / max(r["requests"], 1), r["db_cpu"]))
    a, b = results["per-process"], results["postgres"]
    print("\nadded p99: %.3f ms; throughput ratio postgres/per-process: %.2f" % (b["p99"] - a["p99"],
                                                                            b["rps"] / a["rps"]))
    pg.stop()
    checks.passed += 1
    checks.finish()


if __name__ == "__main__":
    main()
