#!/usr/bin/env python3
# tests/integration/test_etcd_full.py — a full discovery token: a late member with the default
# fallback runs as a v2 proxy that reaches the cluster, a late member with --discovery-fallback=exit
# exits 1 ("cluster is full"), and four members started at once on a size-3 token give exactly one
# 3-member cluster, the loser exiting 1 and (when it registered) shown as "surplus" by /status.
# Run: DISCOVERYD_BIN=build-itest/discoveryd python3 tests/integration/test_etcd_full.py
#      DISCOVERYD_ITEST_BACKEND=etcd python3 tests/integration/test_etcd_full.py

import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def scenario_proxy_and_exit(c, backend):
    tok, url = backend.new_token(3)
    ms = h.start_members(c, ["m1", "m2", "m3"], url, enable_v2=True)
    h.wait_cluster(ms, timeout=45)
    h.assert_cluster(c, "full: first three", ms)
    before_idx, before = backend.listing(tok)

    # 4th member, default fallback (proxy)
    m4 = h.Member(c, "m4", url)
    try:
        h.wait_until(lambda: "falling back to proxy" in m4.log_text() or not m4.alive(), 30, 0.1,
                     "m4 to fall back to proxy")
    except TimeoutError as e:
        c.check("m4: falls back to proxy", False, e)
    c.check("m4: log says 'falling back to proxy'", "falling back to proxy" in m4.log_text(), h.tail(m4.log, 10))
    c.check("m4: still running as a proxy", m4.alive(), "exit %s" % m4.returncode())

    # A v2 write through the proxy's client URL reaches the cluster.
    def put_via_proxy():
        r = h.http_request(m4.client_url, "PUT", "/v2/keys/itest-proxy", body="value=through-the-proxy", timeout=5)
        return r if r.status in (200, 201) else None
    try:
        r = h.wait_until(put_via_proxy, 30, 0.3, "PUT through the proxy")
        c.check("m4 proxy: PUT /v2/keys/itest-proxy answered 2xx", True)
    except TimeoutError as e:
        c.check("m4 proxy: PUT /v2/keys/itest-proxy answered 2xx", False, e)
    r = h.http_request(ms[0].client_url, "GET", "/v2/keys/itest-proxy?quorum=true")
    got = None
    try:
        got = r.json().get("node", {}).get("value")
    except ValueError:
        pass
    c.eq("m1: reads back the key written through the proxy", got, "through-the-proxy")

    # 5th member, fallback=exit
    m5 = h.Member(c, "m5", url, fallback="exit")
    rc = m5.wait_exit(30)
    c.eq("m5 (fallback=exit): exit status", rc, 1)
    c.check("m5: log says the cluster is full", "cluster is full" in m5.log_text(), h.tail(m5.log, 10))

    # Neither late member registered (both took the fast path), and the cluster is unchanged.
    after_idx, after = backend.listing(tok)
    c.eq("full token: registrations unchanged by the late members", after, before)
    c.eq("full token: X-Etcd-Index unchanged by the late members", after_idx, before_idx)
    h.assert_cluster(c, "full: after m4/m5", ms)
    if backend.kind == "discoveryd":
        st = backend.status(tok)
        c.eq("/status: full", st.get("full"), True)
        c.eq("/status: three members, all 'member'",
             sorted((m.get("name"), m.get("role")) for m in st.get("members", [])),
             [("m1", "member"), ("m2", "member"), ("m3", "member")])
    h.kill_members(ms + [m4, m5])


def scenario_four_at_once(c, backend):
    tok, url = backend.new_token(3)
    names = ["r1", "r2", "r3", "r4"]
    ms = h.start_members(c, names, url, fallback="exit")

    # Exactly one exits (status 1); the other three form the cluster.
    def one_exited():
        dead = [m for m in ms if not m.alive()]
        return dead if dead else None
    try:
        h.wait_until(one_exited, 45, 0.1, "the fourth member to exit")
    except TimeoutError as e:
        c.check("four at once: one member exits", False, e)
        h.kill_members(ms)
        return
    time.sleep(h.T(1.0))  # let a second, wrong exit show up if there is one
    dead = [m for m in ms if not m.alive()]
    live = [m for m in ms if m.alive()]
    c.eq("four at once: exactly one member exited", [m.name for m in dead], [dead[0].name])
    loser = dead[0]
    c.eq("four at once: the loser's exit status", loser.returncode(), 1)
    c.check("four at once: the loser's log says the cluster is full", "cluster is full" in loser.log_text(),
            h.tail(loser.log, 10))
    if len(live) != 3:
        h.kill_members(ms)
        return
    try:
        h.wait_cluster(live, timeout=45)
    except Exception as e:  # noqa: BLE001
        c.check("four at once: the other three form a cluster", False, e)
    h.assert_cluster(c, "four at once: the three", live)

    idx, nodes = backend.listing(tok)
    vals = {v: ci for _, v, ci in nodes}
    loser_val = "%s=%s" % (loser.name, loser.peer_url)
    registered = loser_val in vals
    print("# four at once: loser %s %s" % (loser.name, "registered (lost the race after the PUT)" if registered
                                            else "took the fast path (never registered)"))
    live_vals = sorted("%s=%s" % (m.name, m.peer_url) for m in live)
    c.check("four at once: the three winners are registered",
            all(v in vals for v in live_vals), sorted(vals))
    if registered:
        c.check("four at once: the loser has the highest createdIndex",
                vals[loser_val] == max(vals.values()), vals)
    if backend.kind != "discoveryd":
        c.skip("four at once: /status roles", "discoveryd-only")
        h.kill_members(ms)
        return
    st = backend.status(tok)
    roles = {m.get("name"): m.get("role") for m in st.get("members", [])}
    c.eq("four at once: /status shows the three winners as 'member'",
         sorted((n, roles.get(n)) for n in (m.name for m in live)),
         sorted((m.name, "member") for m in live))
    if registered:
        c.eq("four at once: /status shows the registered loser as 'surplus'", roles.get(loser.name), "surplus")
    else:
        c.check("four at once: /status does not list the unregistered loser", loser.name not in roles, roles)
    c.eq("four at once: /status full", st.get("full"), True)

    # Deterministic surplus: a registration by hand after the token is full is shown as surplus.
    p = "/v2/keys/discovery/%s/%s?prevExist=false" % (tok, "abcdef0123456789")
    r = h.http_request(backend.hostport, "PUT", p,
                       body="value=" + urllib.parse.quote("late=http://127.0.0.1:1", safe=""))
    c.eq("hand registration on a full token: 201", r.status, 201)
    st = backend.status(tok)
    roles = {m.get("name"): m.get("role") for m in st.get("members", [])}
    c.eq("/status shows the hand registration as 'surplus'", roles.get("late"), "surplus")
    h.kill_members(ms)


def main():
    c = h.Checks("full discovery token: proxy fallback, exit fallback, racing members")
    try:
        backend = h.start_backend(c)
    except Exception as e:  # noqa: BLE001
        c.check("backend started", False, e)
        c.finish()
    c.run("3. full cluster: 4th becomes a proxy, 5th exits", scenario_proxy_and_exit, backend)
    c.run("7. four members at once on a size-3 token", scenario_four_at_once, backend)
    c.check("backend still running", backend.alive())
    c.finish()


if __name__ == "__main__":
    main()
