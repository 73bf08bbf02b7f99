#!/usr/bin/env python3
# tests/integration/test_metrics.py — /metrics is what an operator's Prometheus expects: every
# family has HELP and TYPE, counters end in _total, units are in the name (_seconds, _bytes);
# request latency histograms per route (cumulative buckets ending at +Inf == _count); the
# process_* metrics (resident memory, open fds, CPU seconds, start time); discoveryd_build_info
# with the version --version prints and a commit; the parked-watch and live-token gauges; proposals
# committed and failed (the per-peer families of a cluster member are tested in test_nemesis.py).
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_metrics.py

import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|\+Inf|NaN)$')


def parse(text):
    """{family: {"type":..., "help":..., "samples":[(name, labels, value)]}}; raises on bad lines."""
    fams, bad = {}, []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            fams.setdefault(name, {"samples": []})["help"] = line.split(" ", 3)[3] if line.count(" ") >= 3 else ""
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            fams.setdefault(name, {"samples": []})["type"] = typ
        elif line.strip():
            m = SAMPLE.match(line)
            if not m:
                bad.append(line)
                continue
            name = m.group(1)
            fam = re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(r"_(bucket|sum|count)$", "", name) in fams \
                else name
            fams.setdefault(fam, {"samples": []})["samples"].append((name, m.group(2) or "", float(m.group(3))))
    return fams, bad


def value(fams, name, labels=""):
    for fam in fams.values():
        for n, lb, v in fam["samples"]:
            if n == name and (not labels or lb == labels):
                return v
    return None


def scenario(c, d):
    tok, _ = d.new_token(3)
    h.http_request(d.hostport, "PUT", "/%s/aaaa1" % tok, body="value=m1%3Dhttp%3A%2F%2Fa%3A2380")
    h.http_request(d.hostport, "GET", "/%s" % tok)
    h.http_request(d.hostport, "GET", "/health")
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(("GET /%s?wait=true&recursive=true HTTP/1.1\r\nHost: x\r\n\r\n" % tok).encode())
    h.wait_until(lambda: value(parse(d.metrics())[0], "discoveryd_parked_watches") == 1, 10, 0.05, "parked")
    fams, bad = parse(d.metrics())
    s.close()
    c.check("every line parses as the Prometheus text format", not bad, bad[:5])
    missing = [f for f, v in fams.items() if "type" not in v or "help" not in v]
    c.check("every family has HELP and TYPE", not missing, missing)
    wrong = [f for f, v in fams.items() if v.get("type") == "counter" and not f.endswith("_total")]
    c.check("every counter ends in _total", not wrong, wrong)
    wrong = [f for f, v in fams.items() if v.get("type") != "counter" and f.endswith("_total")]
    c.check("nothing else ends in _total", not wrong, wrong)
    for route in ("new", "keys", "health"):
        fam = fams.get("discoveryd_http_request_duration_seconds", {"samples": []})
        buckets = [(lb, v) for n, lb, v in fam["samples"] if n.endswith("_bucket") and 'route="%s"' % route in lb]
        count = value(fams, "discoveryd_http_request_duration_seconds_count", '{route="%s"}' % route)
        mono = all(buckets[i][1] <= buckets[i + 1][1] for i in range(len(buckets) - 1))
        c.check("latency histogram for route %s: cumulative buckets, +Inf == count >= 1" % route,
                buckets and mono and 'le="+Inf"' in buckets[-1][0] and buckets[-1][1] == count and count >= 1,
                (buckets[-2:], count))
    c.eq("the histogram's TYPE", fams.get("discoveryd_http_request_duration_seconds", {}).get("type"), "histogram")
    rss = value(fams, "process_resident_memory_bytes")
    c.check("process_resident_memory_bytes is a plausible size", rss is not None and 1 << 20 < rss < 1 << 34, rss)
    fds = value(fams, "process_open_fds")
    c.check("process_open_fds counts at least the listener and the WAL", fds is not None and fds >= 3, fds)
    cpu = value(fams, "process_cpu_seconds_total")
    c.check("process_cpu_seconds_total is there and positive", cpu is not None and cpu > 0, cpu)
    start = value(fams, "process_start_time_seconds")
    c.check("process_start_time_seconds is in the past", start is not None and 0 < start <= time.time() + 1, start)
    version = subprocess.run([os.environ["DISCOVERYD_BIN"], "--version"], capture_output=True,
                             text=True).stdout.split()[-1]
    info = [lb for n, lb, v in fams.get("discoveryd_build_info", {"samples": []})["samples"] if v == 1]
    c.check("discoveryd_build_info{version,commit} 1 with the --version version", info and
            ('version="%s"' % version) in info[0] and re.search(r'commit="[0-9a-f]{7,}|commit="unknown"', info[0]),
            info)
    c.check("proposals committed count this member's writes (/new and the registration)",
            (value(fams, "discoveryd_proposals_committed_total") or 0) >= 2 and
            fams["discoveryd_proposals_committed_total"]["type"] == "counter",
            value(fams, "discoveryd_proposals_committed_total"))
    c.eq("no write failed", value(fams, "discoveryd_proposals_failed_total"), 0)
    c.eq("a member alone has no per-peer families", [f for f in fams if f.startswith("discoveryd_peer_")], [])
    c.check("the live-token gauge", value(fams, "discoveryd_tokens_live") == 1 and
            fams["discoveryd_tokens_live"]["type"] == "gauge", fams.get("discoveryd_tokens_live"))
    c.eq("the parked-watch gauge is back to 0 after the watcher hung up",
         h.wait_until(lambda: value(parse(d.metrics())[0], "discoveryd_parked_watches") == 0, 10, 0.05, "unparked"),
         True)


def main():
    c = h.Checks("/metrics for an operator")
    d = h.DiscoverydBackend(c)
    c.run("the metrics", scenario, d)
    c.finish()


if __name__ == "__main__":
    main()
