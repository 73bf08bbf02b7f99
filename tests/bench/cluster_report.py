"""tests/bench/cluster_report.py — the <!-- cluster:begin --> ... <!-- cluster:end --> section of
BENCHMARKS.md from the results tests/bench/cluster.py records (live, or --report-from its --json).
Python 3 standard library only; formatting, no measuring."""

import os
import re
import statistics

TARGETS = ("etcd", "discoveryd")
GET_TOKEN = "bench-get"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs, f="%.2f", unit=""):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    m = statistics.median(xs)
    g = f if callable(f) else (lambda v: f % v)
    if len(xs) == 1:
        return g(m) + unit
    return "%s%s (%s–%s)" % (g(m), unit, g(min(xs)), g(max(xs)))


def ratio(a, b):
    return "%.2f×" % (a / b) if a and b else "–"


def machine_note(r):
    m = r.get("machine") or {}
    bits = []
    if m.get("start") == "busy":
        bits.append("⚠ busy at start (load %s)" % m.get("load"))
    if m.get("contended"):
        bits.append("⚠ other test runs seen in %d s" % m["contended"])
    return "; ".join(bits) or ("quiet" if m.get("start") == "quiet" else "–")


WL = [("get_follower", "(a) GET token dir, on a follower"), ("get_leader", "(a) GET token dir, on the leader"),
      ("put_leader", "(b) registration PUT through the leader"),
      ("put_follower", "(c) registration PUT through a follower")]


def lost(x):
    """Requests lost to errors. bench_load stops at its time bound with up to one request in flight per
    connection (64): those are not errors; more unanswered ones mean connections were dropped."""
    u = int(x.get("unanswered", 0))
    return u if u > 64 else 0


def fmt_int(v):
    return "{:,.0f}".format(v) if v is not None else "–"


def section(meta, tput, failover, catchup, dd_flags):
    L = ["<!-- cluster:begin -->", "## Clusters: 3-node discoveryd vs 3-member etcd 3.4 (issue 8)", ""]
    L.append("Written by `tests/bench/cluster.py` (do not edit by hand; re-run the script).")
    L.append("")
    if meta.get("quick"):
        L += ["> **SMOKE RUN (`--quick`)**: 1 short round, few trials, a small catch-up. These numbers only prove "
              "that the script works end to end; they are **not** a measurement.", ""]
    if meta.get("busy_note"):
        L += ["> %s" % meta["busy_note"], ""]
    L += ["- Command: %s" % meta["command_md"],
          "- Date: %s; load average at start: %s" % (meta["date"], meta["load"]),
          "- Machine: %s CPUs (`nproc`), %s, kernel %s. All six servers, the load generator and the "
          "script share these CPUs; both clusters are on loopback." % (meta["nproc"], meta["cpu"], meta["kernel"]),
          "- etcd: %s, three members, `--enable-v2=true`, defaults otherwise (fsync on, heartbeat 100 ms, election "
          "1000 ms, snapshot-count 100000), static `--initial-cluster` on loopback ports, fresh data dirs in a temp dir"
          % meta["etcd"],
          "- discoveryd: %s, three members `--name dN --initial-cluster d1=…,d2=…,d3=… --listen 127.0.0.1:PORT "
          "--data-dir DIR --public-url URL --threads %s %s` (defaults: heartbeat 100 ms, election 1 s, "
          "snapshot-count 10000)" % (meta["dd"], meta["nproc"], " ".join(dd_flags)),
          "- Leader found by `/v2/stats/self` (`state`) on etcd and `discoveryd_is_leader` in `/metrics` on "
          "discoveryd; applied/commit indexes from `/metrics` (`discoveryd_raft_applied_index` / "
          "`discoveryd_raft_commit_index`; etcd's `etcd_server_proposals_applied_total` / "
          "`etcd_server_proposals_committed_total`, gauges etcd sets to those indexes).",
          "- The machine is shared: before each run the script waits (at most %s s) for no other test runner, "
          "server or browser and idle CPUs; the `machine` column says whether the run started quiet and in how "
          "many 1-s samples another test run was seen." % meta.get("quiet_wait", "?"), ""]
    # (1) throughput
    if tput:
        L += ["### Throughput and latency", "",
              "Per round and target a fresh cluster: %s tokens seeded through the leader (`_config/size`=3, plus "
              "one token `%s` holding three members), then on that cluster in order: wrk GET on a follower, wrk "
              "GET on the leader (`wrk -t2 -c64 -d%ss --latency -s tests/bench/get.lua`, "
              "`GET /v2/keys/discovery/%s?quorum=false&recursive=false&sorted=false`), and registration PUTs "
              "(`bench_load --conns 64 --seconds %s`: closed loop, one request in flight per connection, "
              "`PUT /v2/keys/discovery/bench-<k %% tokens>/m<k>?prevExist=false`, every id new) through the leader "
              "and through a follower (order alternating by round). Targets alternate etcd, discoveryd per round. "
              "A follower write: discoveryd forwards it to the leader over its peer link and answers where it "
              "arrived; etcd 3.4's v2 handler proposes it to its local Raft node, which passes the proposal to the "
              "leader (MsgProp over the peer link), and answers once the member applied it."
              % (format(meta["tokens"], ","), GET_TOKEN, meta["duration"], GET_TOKEN, meta["duration"]), "",
              "Median over rounds, (min–max) in brackets; latencies in ms:", "",
              "| workload | etcd req/s | discoveryd req/s | **req/s ratio** | etcd p50 | discoveryd p50 | etcd p99 | "
              "discoveryd p99 | **p99 ratio** | target met? |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for wl, title in WL:
            vals = {}
            for t in TARGETS:
                rs = [r["runs"][wl] for r in tput if r["target"] == t and wl in r.get("runs", {})
                      and "error" not in r["runs"][wl]]
                vals[t] = rs
            m = {t: {k: med([x[k] for x in vals[t]]) for k in ("rps", "p50", "p99")} for t in TARGETS}
            bad = sum(x.get("non2xx", 0) + x.get("sockerr", 0) + lost(x) for t in TARGETS for x in vals[t])
            goal = "–"
            if wl.startswith("put") and m["etcd"]["rps"] and m["discoveryd"]["rps"]:
                rr = m["discoveryd"]["rps"] / m["etcd"]["rps"]
                pr = m["discoveryd"]["p99"] / m["etcd"]["p99"] if m["etcd"]["p99"] else None
                goal = "req/s ≥ 3×: %s; p99 ≤ ½: %s" % ("**yes**" if rr >= 3 else "**no**",
                                                        "**yes**" if pr is not None and pr <= 0.5 else "**no**")
            L.append("| %s%s | %s | %s | **%s** | %s | %s | %s | %s | **%s** | %s |" % (
                title, " ⚠ %d non-2xx/errors" % bad if bad else "",
                spread([x["rps"] for x in vals["etcd"]], fmt_int), spread([x["rps"] for x in vals["discoveryd"]], fmt_int),
                ratio(m["discoveryd"]["rps"], m["etcd"]["rps"]),
                spread([x["p50"] for x in vals["etcd"]]), spread([x["p50"] for x in vals["discoveryd"]]),
                spread([x["p99"] for x in vals["etcd"]]), spread([x["p99"] for x in vals["discoveryd"]]),
                ratio(m["discoveryd"]["p99"], m["etcd"]["p99"]), goal))
        L += ["", "Ratios are discoveryd / etcd of the medians: req/s higher is better for discoveryd, p99 lower. "
              "Issue 8's target for both PUT paths: req/s ≥ 3× etcd's and p99 ≤ ½ etcd's.", "",
              "Per round:", "",
              "| round | target | leader / follower used | seeding | workload | req/s | p50 | p99 | requests | "
              "non-2xx | errors¹ | leader changes in the round | machine |",
              "|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in sorted(tput, key=lambda r: (r["round"], r["target"] != "etcd")):
            if not r.get("runs"):
                L.append("| %d | %s | failed: %s | | | | | | | | | | %s |" % (
                    r["round"], r["target"], r.get("error", "?"), machine_note(r)))
                continue
            for wl, title in WL:
                x = r["runs"].get(wl)
                if x is None:
                    continue
                if "error" in x:
                    L.append("| %d | %s | %s / %s | | %s | failed: %s | | | | | | | %s |" % (
                        r["round"], r["target"], r.get("leader"), r.get("follower"), title, x["error"][:120],
                        machine_note(r)))
                    continue
                L.append("| %d | %s | %s / %s | %s | %s (on %s) | %s | %.2f | %.2f | %s | %d | %d | %s | %s |" % (
                    r["round"], r["target"], r.get("leader"), r.get("follower"),
                    "%.0f s" % r["seed_secs"] if r.get("seed_secs") else "–", title, x.get("member"),
                    fmt_int(x["rps"]), x["p50"], x["p99"], fmt_int(x["requests"]), x.get("non2xx", 0),
                    x.get("sockerr", 0) + lost(x),
                    "%d" % r["leader_changes"] if r.get("leader_changes") is not None else "–", machine_note(r)))
            if r.get("error"):
                L.append("| %d | %s | ⚠ %s | | | | | | | | | | |" % (r["round"], r["target"], r["error"][:200]))
        L += ["", "¹ socket errors (wrk) or requests left unanswered beyond the ≤ 64 still in flight when bench_load's "
              "time bound ended the run (those are not errors).", ""]
    # (2) failover
    if failover:
        L += ["### Failover after `kill -9` of the leader", "",
              "One cluster per target (1,000 tokens seeded). Each trial: a client writes one registration PUT at a "
              "time, alternating between the two members that will survive (keep-alive connections, %s s timeout; a "
              "refusal answered in under 10 ms is followed by a 10 ms pause), the leader gets SIGKILL, and the time "
              "is measured from just before the kill to the answer of the first write **sent after the kill** that "
              "got a 2xx. Then the killed member is restarted on its data dir and the next trial waits until it "
              "answers `/health` 200 and its applied index reached the leader's commit index. Default timeouts on "
              "both (heartbeat 100 ms, election 1 s). Beside it, the time until a survivor first reported being "
              "leader (polled every ~10 ms, one HTTP request per member, so on a busy machine it can trail the first ack by a "
              "few ms), which does not depend on the client's timeout: etcd 3.4 drops a "
              "proposal made while its member knows no leader and the v2 request then waits for its own timeout, so "
              "an etcd client sees the new leader only with its next attempt; discoveryd holds such a write until "
              "there is a leader (at most 4 s). Target (issue 8): < 2 s." % meta.get("write_timeout", "?"), "",
              "| target | trials | first acked write: p50 | max | min | new leader seen: p50 | max | trials without "
              "an acked write in 15 s | failed or timed-out writes before the first ack (total) | restart → healthy "
              "(median) | restart → caught up (median) | target < 2 s met? |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in sorted(failover, key=lambda r: r["target"] != "etcd"):
            ts = r.get("trials") or []
            secs = [t["secs"] for t in ts if t["secs"] is not None]
            seen = [t.get("leader_seen") for t in ts if t.get("leader_seen") is not None]
            met = "–"
            if ts:
                met = "**yes**" if len(secs) == len(ts) and max(secs) < 2 else "**no**"
            L.append("| %s | %d | %s | %s | %s | %s | %s | %d | %d | %s | %s | %s |" % (
                r["target"], len(ts), "%.3f s" % med(secs) if secs else "–", "%.3f s" % max(secs) if secs else "–",
                "%.3f s" % min(secs) if secs else "–", "%.3f s" % med(seen) if seen else "–",
                "%.3f s" % max(seen) if seen else "–", sum(1 for t in ts if t["secs"] is None),
                sum(t["failed_before"] for t in ts),
                "%.2f s" % med([t["restart_healthy_secs"] for t in ts]) if ts else "–",
                "%.2f s" % med([t["restart_caught_up_secs"] for t in ts]) if ts else "–", met))
        for r in failover:
            if r.get("error"):
                L.append("")
                L.append("⚠ %s: %s" % (r["target"], r["error"]))
        L += ["", "Per trial (seconds from the kill to the first acked write; non-2xx statuses seen before it, -1 = "
              "timeout or connection error; the write in flight at the kill: when it was answered and how):", ""]
        for r in sorted(failover, key=lambda r: r["target"] != "etcd"):
            cells = []
            for t in r.get("trials") or []:
                s = "%.3f" % t["secs"] if t["secs"] is not None else "none"
                if t.get("leader_seen") is not None:
                    s += " (leader %.3f)" % t["leader_seen"]
                if t["statuses"]:
                    s += " %s" % t["statuses"]
                if t.get("inflight"):
                    s += " (in flight: %+.2f s, %d)" % tuple(t["inflight"])
                cells.append(s)
            L.append("- %s (%s): %s" % (r["target"], machine_note(r), "; ".join(cells) or "no trial"))
        L.append("")
    # (3) catch-up
    if catchup:
        L += ["### Catch-up of a follower that was down", "",
              "Fresh cluster per target, %s tokens seeded; a follower gets SIGKILL; registrations go through the "
              "leader (`bench_load --conns 64`); the follower is restarted on its data dir and its applied index is "
              "polled (every 20 ms, `/metrics`) until it reaches the leader's commit index read after the last "
              "write." % format(meta["tokens"], ","), "",
              "| target | writes while down | write rate meanwhile | applied index at kill → leader's commit | restart "
              "→ caught up | restart → /health 200 | how | machine |", "|---|---:|---:|---|---:|---:|---|---|"]
        for r in sorted(catchup, key=lambda r: (-r.get("writes", 0), r["target"] != "etcd")):
            if r.get("error") and not r.get("load"):
                L.append("| %s | %s | | | failed: %s | | | %s |" % (r["target"], fmt_int(r.get("writes")),
                                                                   r["error"][:200], machine_note(r)))
                continue
            ld = r.get("load") or {}
            if r.get("secs") is None:
                r = dict(r, secs=None)
                done = "⚠ **failed**: %s" % (r.get("error") or "not caught up within 300 s")
            else:
                done = "%.2f s" % r["secs"]
            L.append("| %s | %s | %s req/s | %s → %s | %s | %s | %s | %s |" % (
                r["target"], fmt_int(r["writes"]), fmt_int(ld.get("rps")), fmt_int(r.get("follower_applied_at_kill")),
                fmt_int(r.get("leader_commit")), done,
                "%.2f s" % r["healthy_secs"] if r.get("healthy_secs") is not None else "–", r.get("how", "–"),
                machine_note(r)))
        L.append("")
    allr = tput + failover + catchup
    L += ["Runs disturbed by other test runs on the machine: %d of %d." % (
        sum(1 for r in allr if machine_note(r) not in ("quiet", "–")), len(allr)), "",
        "Not a test: nothing is asserted. Raw results: run with `--json FILE`; `--report-from FILE…` rewrites this "
        "section from them.", "<!-- cluster:end -->"]
    return "\n".join(L)


def write_section(out, text):
    old = open(out, encoding="utf-8").read() if os.path.exists(out) else ""
    pat = re.compile(r"<!-- cluster:begin -->.*?<!-- cluster:end -->", re.S)
    if pat.search(old):
        new = pat.sub(lambda m: text, old)
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    open(out, "w", encoding="utf-8").write(new)
