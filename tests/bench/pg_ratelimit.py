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
    out = subprocess.run(["wrk", "-t%d" % min(2, conns), "-c%d" % conns, "-d%ds" % duration, "--latency",
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
        high = ["--new-rate", "1000000", "--new-burst", "1000000", "--new-range-rate", "1000000",
                "--new-range-burst", "1000000"]
        d = h.DiscoverydBackend(checks, label="bench-" + name, extra_args=["--threads", "2"] + high + extra)
        if name == "postgres":
            h.wait_until(lambda: 'backend="postgres"} 1' in d.metrics(), 10, 0.1, "postgres backend")
        wrk(d.hostport, 1, args.conns)  # warm-up
        for conns in (args.conns, 1):  # saturating, then one connection (latency at light load)
            x0 = int(pg.sql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'"))
            c0 = cpu_seconds(pg.pids())
            r = wrk(d.hostport, args.duration, conns)
            r["db_cpu"] = cpu_seconds(pg.pids()) - c0
            # minus the one psql transaction that reads the counter
            r["xacts"] = int(pg.sql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'")) - x0 - 1
            results[(name, conns)] = r
        d.stop_and_check(checks)
        checks.finalizers.remove(d.stop_and_check)
    print("\n/new, wrk -d%ds (-t2, -t1 for one connection), discoveryd --threads 2, limits high (every request is admitted after its 2 "
          "bucket decisions), one run each, same machine (%d cores), PostgreSQL 15 local (fsync off)\n" %
          (args.duration, os.cpu_count()))
    print("| limiter | connections | requests/s | p50 ms | p99 ms | non-2xx | statements per /new | "
          "PostgreSQL CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, conns), r in results.items():
        print("| %s | %d | %.0f | %.3f | %.3f | %d | %.2f | %.2f |" % (
            name, conns, r["rps"], r["p50"], r["p99"], r["non2xx"], r["xacts"] / max(r["requests"], 1),
            r["db_cpu"]))
    for conns in (args.conns, 1):
        a, b = results[("per-process", conns)], results[("postgres", conns)]
        print("\n%d connection(s): added p50 %.3f ms, added p99 %.3f ms; throughput postgres/per-process %.2f" %
              (conns, b["p50"] - a["p50"], b["p99"] - a["p99"], b["rps"] / a["rps"]))
    pg.stop()
    checks.passed += 1
    checks.finish()


if __name__ == "__main__":
    main()
