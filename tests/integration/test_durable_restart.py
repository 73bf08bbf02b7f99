#!/usr/bin/env python3
# tests/integration/test_durable_restart.py — a restart with the same --data-dir serves exactly the
# state it had: every token's GET bodies byte-identical (recursive or not, sorted or not, short and
# private form), the same X-Etcd-Index and X-Etcd-Cluster-Id, TTL keys with the same expiration
# (and expiring at their original deadline), watches on old indexes answered from history (no 401);
# the same with >= 100k keys (restart time printed); a second discoveryd on the same --data-dir
# refuses to start; SIGTERM then restart preserves everything too.
# Bounded: 100k writes over 16 connections, every wait with a deadline.
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_durable_restart.py

import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import durable as d  # noqa: E402

BIG_TOKENS = 100
BIG_PER_TOKEN = 1000    # 100 x 1000 = 100k keys (token size 1000, so no surplus limit applies)


def req(backend, method, path, body=None, want=None):
    r = h.http_request(backend.hostport, method, path, body=body, timeout=10)
    if want is not None and r.status not in want:
        raise RuntimeError("%s %s: %r" % (method, path, r))
    return r


class State:
    tokens = []        # token names whose GETs must be byte-identical
    ttl_tok = None     # token with TTL keys (compared with "ttl" taken out)
    watches = []       # watch paths on old indexes, answered from history


def build_small_state(c, backend, st):
    a, _ = backend.new_token(3)
    b, _ = backend.private_token(5, "restart-b-%08x" % random.getrandbits(32))
    st.tokens += [a, b]
    first = req(backend, "PUT", "/%s/m1?prevExist=false" % a, "value=m1=http://127.0.0.1:2380", (201,))
    i1 = first.json()["node"]["createdIndex"]
    for m in ("m2", "m3", "m4"):
        req(backend, "PUT", "/%s/%s?prevExist=false" % (a, m), "value=%s=http://127.0.0.1:2380" % m, (201,))
    req(backend, "PUT", "/%s/m1" % a, "value=m1-updated", (200,))                 # modifiedIndex != created
    req(backend, "DELETE", "/%s/m2" % a, None, (200,))                            # a delete in history
    req(backend, "POST", "/%s" % a, "value=in-order", (201,))                     # an in-order key
    req(backend, "PUT", "/%s/sub?dir=true" % a, None, (201,))                     # a directory
    req(backend, "PUT", "/%s/sub/k1" % a, "value=nested", (201,))
    req(backend, "PUT", "/%s/_hidden" % a, "value=h", (201,))                     # hidden child
    req(backend, "PUT", "/v2/keys/discovery/%s/x1?prevExist=false" % b, "value=private", (201,))
    for i in range(20):
        tok, _ = backend.new_token(3)
        st.tokens.append(tok)
        for j in range(i % 4):
            req(backend, "PUT", "/%s/n%d?prevExist=false" % (tok, j), "value=v%d" % j, (201,))
    t, _ = backend.new_token(3)
    st.ttl_tok = t
    req(backend, "PUT", "/%s/long?ttl=3600" % t, "value=stays", (201,))
    req(backend, "PUT", "/%s/plain" % t, "value=p", (201,))
    # Watches on old indexes: the first event of m1 (key watch) and of the dir (recursive watch).
    st.watches = ["/%s/m1?wait=true&waitIndex=%d" % (a, i1),
                  "/%s?wait=true&recursive=true&waitIndex=%d" % (a, i1),
                  "/%s/m2?wait=true&waitIndex=%d" % (a, i1 + 1)]


def ttl_view(backend, tok):
    """(body with every "ttl" removed, {key: (expiration, ttl)}) of the TTL token's recursive GET."""
    r = req(backend, "GET", "/%s?recursive=true&sorted=true" % tok, None, (200,))
    doc = r.json()
    ttls = {}

    def strip(n):
        if "ttl" in n:
            ttls[n["key"]] = (n.get("expiration"), n.pop("ttl"))
        for ch in n.get("nodes", []) or []:
            strip(ch)
    strip(doc["node"])
    return json.dumps(doc, sort_keys=False), ttls, time.monotonic()


def snapshot(backend, st):
    dump = d.dump_tokens(backend, st.tokens)
    watches = {}
    for w in st.watches:
        r = req(backend, "GET", w)
        watches[w] = (r.status, r.body)
    return dump, watches, ttl_view(backend, st.ttl_tok)


def compare(c, label, before, after):
    dump0, w0, (tb0, ttl0, t0) = before
    dump1, w1, (tb1, ttl1, t1) = after
    bad, shown = d.diff_dumps(dump0, dump1)
    c.check("%s: %d GETs of %d token dirs byte-identical with the same X-Etcd-Index and X-Etcd-Cluster-Id"
            % (label, len(dump0), len(dump0) // (2 * len(d.GET_VARIANTS))), not bad,
            "%d differ: %s" % (len(bad), shown))
    c.check("%s: every token GET answered 200" % label, all(v[0] == 200 for v in dump1.values()),
            [p for p, v in dump1.items() if v[0] != 200][:3])
    c.eq("%s: watches on old indexes answered from history, byte-identical" % label, w1, w0)
    c.check("%s: those watches are 200 events, not 401" % label,
            all(s == 200 and b'"action"' in b for s, b in w1.values()), w1)
    c.eq("%s: TTL token identical apart from ttl" % label, tb1, tb0)
    c.eq("%s: TTL keys keep their expiration" % label,
         {k: v[0] for k, v in ttl1.items()}, {k: v[0] for k, v in ttl0.items()})
    elapsed = t1 - t0
    ok = all(ttl0[k][1] - elapsed - 2 <= ttl1[k][1] <= ttl0[k][1] for k in ttl0 if k in ttl1)
    c.check("%s: ttl consistent with the elapsed %.1fs" % (label, elapsed), ok and ttl0, (ttl0, ttl1))


def scenario_kill9_small(c, backend, st):
    build_small_state(c, backend, st)
    before = snapshot(backend, st)
    d.kill9(backend)
    secs = d.restart(backend)
    after = snapshot(backend, st)
    print("# small state: %d tokens, X-Etcd-Index %s, restart after kill -9 to /health 200: %.2fs" %
          (len(st.tokens) + 1, before[0][next(iter(before[0]))][2], secs))
    compare(c, "kill -9", before, after)


def scenario_ttl_deadline(c, backend, st):
    # A short TTL key keeps its deadline across a kill -9: created with ttl=6, the kill comes 3 s
    # later; it must be gone by its original deadline (+ the 1 s sweep period and slack), well
    # before the deadline a restart would give it if the TTL started again (>= created + 9 s).
    tok = st.ttl_tok
    r = req(backend, "PUT", "/%s/short?ttl=6" % tok, "value=goes", (201,))
    t_created = time.monotonic()
    node = r.json()["node"]
    exp0, ci = node["expiration"], node["createdIndex"]
    time.sleep(3)
    d.kill9(backend)
    d.restart(backend)
    r1 = req(backend, "GET", "/%s/short" % tok)
    exp1 = r1.json()["node"].get("expiration") if r1.status == 200 else None
    c.eq("ttl=6 key after kill -9: still there with the same expiration", (r1.status, exp1), (200, exp0))
    deadline = t_created + 6 + 2.5
    time.sleep(max(0.0, deadline - time.monotonic()))
    r2 = req(backend, "GET", "/%s/short" % tok)
    c.eq("ttl=6 key gone by its original deadline + 2.5s (a reset TTL would keep it to +9s)",
         r2.status, 404)
    w = req(backend, "GET", "/%s/short?wait=true&waitIndex=%d" % (tok, ci + 1))
    c.check("watch after the deadline sees the expire event", w.status == 200 and
            w.json().get("action") == "expire", w)


def scenario_big(c, backend, st):
    t0 = time.monotonic()
    toks = [backend.new_token(1000)[0] for _ in range(BIG_TOKENS)]
    jobs = [("PUT", "/%s/k%04d?prevExist=false" % (tok, i),
             "value=k%04d=http://127.0.0.%d:%d" % (i, 1 + i % 200, 2380 + i))
            for i in range(BIG_PER_TOKEN) for tok in toks]
    res = d.parallel(backend.hostport, jobs, threads=16)
    created = sum(1 for _, r in res if not isinstance(r, Exception) and r.status == 201)
    load = time.monotonic() - t0
    c.eq("100k registrations all answered 201", created, len(jobs))
    st.tokens += toks
    rng = random.Random(7)
    sample = [j[1].split("?")[0] for j in rng.sample(jobs, 1000)]

    def keys_dump():
        out = {}
        for (m, p, _), r in d.parallel(backend.hostport, [("GET", p, None) for p in sample], threads=8):
            out[p] = (r.status, r.body, r.header("X-Etcd-Index")) if not isinstance(r, Exception) else repr(r)
        return out
    k0 = keys_dump()
    before = snapshot(backend, st)
    d.kill9(backend)
    secs = d.restart(backend, timeout=120)
    k1 = keys_dump()
    after = snapshot(backend, st)
    du = subprocess.run(["du", "-sb", backend.data_dir], stdout=subprocess.PIPE).stdout.split()[0].decode()
    print("# big state: %d keys written in %.1fs (%.0f/s), X-Etcd-Index %s, data dir %s bytes; restart "
          "after kill -9 to /health 200: %.2fs" % (created, load, created / load,
                                                    before[0][next(iter(before[0]))][2], du, secs))
    c.eq("100k: 1000 sampled keys byte-identical after the restart",
         [p for p in sample if k0[p] != k1[p]][:3], [])
    c.check("100k: sampled keys were 200", all(v[0] == 200 for v in k1.values()))
    compare(c, "100k kill -9", before, after)


def scenario_second_instance(c, backend, st):
    before = snapshot(backend, st)
    port = h.free_port()
    argv = list(backend.argv)
    i = argv.index("--listen")
    argv[i + 1] = "127.0.0.1:%d" % port
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOVERYD_")}
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env, timeout=h.T(20), preexec_fn=h._pdeathsig)
        rc, out = p.returncode, p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        rc, out = None, (e.output or b"").decode("utf-8", "replace")
    print("# second discoveryd on the same --data-dir: exit %s, said: %s" % (rc, out.strip()[:300]))
    c.check("second discoveryd on the same --data-dir exits non-zero", rc not in (None, 0), rc)
    c.check("its message names --data-dir and says it is in use", "--data-dir" in out and "in use" in out, out)
    c.check("the first discoveryd is still healthy", d.healthy_status(backend) == 200)
    compare(c, "after the refused second instance", before, snapshot(backend, st))


def scenario_sigterm(c, backend, st):
    before = snapshot(backend, st)
    rc = d.sigterm(backend)
    c.eq("SIGTERM: exit status", rc, 0)
    secs = d.restart(backend, timeout=120)
    print("# restart after SIGTERM to /health 200: %.2fs" % secs)
    compare(c, "SIGTERM", before, snapshot(backend, st))
    r = req(backend, "PUT", "/%s/after-restart?prevExist=false" % st.tokens[0], "value=x")
    c.eq("a write after the restarts is accepted", r.status, 201)
    c.check("its createdIndex continues the global index",
            r.status == 201 and r.json()["node"]["createdIndex"] == int(before[0][next(iter(before[0]))][2]) + 1, r)


def main():
    c = h.Checks("durability: restart serves the same state")
    try:
        backend = h.DiscoverydBackend(c, extra_args=["--max-size", "1000"])
    except Exception as e:  # noqa: BLE001
        c.check("discoveryd started", False, e)
        c.finish()
    st = State()
    c.run("(a) kill -9 and restart: byte-identical GETs, indexes, cluster ID, TTLs, history", scenario_kill9_small,
          backend, st)
    c.run("(a) a TTL key expires at its original deadline after a restart", scenario_ttl_deadline, backend, st)
    c.run("(b) >= 100k keys: kill -9 and restart", scenario_big, backend, st)
    c.run("(c) a second discoveryd on the same --data-dir refuses to start", scenario_second_instance, backend, st)
    c.run("(d) SIGTERM and restart", scenario_sigterm, backend, st)
    c.check("discoveryd running at the end", backend.alive())
    c.finish()


if __name__ == "__main__":
    main()
