#!/usr/bin/env python3
# tests/integration/test_etcd_rejoin.py — members coming back: a member re-registering with a wiped
# data dir (same name, peer URL and discovery URL, hence the same member id) gets 412 and exits 1;
# members restarted with their data dirs make no discovery request at all and rejoin.
# Run: DISCOVERYD_BIN=build-itest/discoveryd python3 tests/integration/test_etcd_rejoin.py
#      DISCOVERYD_ITEST_BACKEND=etcd python3 tests/integration/test_etcd_rejoin.py

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def scenario_wiped_data_dir(c, backend):
    tok, url = backend.new_token(3)
    ms = h.start_members(c, ["w1", "w2", "w3"], url)
    h.wait_cluster(ms, timeout=45)
    h.assert_cluster(c, "wiped: first boot", ms)
    before_idx, before = backend.listing(tok)

    w3 = ms[2]
    w3.kill()
    w3.wipe()
    w3.start()
    rc = w3.wait_exit(30)
    c.eq("wiped w3: exit status", rc, 1)
    log = w3.log_text(since_start=True)
    c.check("wiped w3: log says it has previously registered", "has previously registered" in log,
            h.tail(w3.log, 10))
    after_idx, after = backend.listing(tok)
    c.eq("wiped w3: the 412 left the registrations unchanged", after, before)
    c.eq("wiped w3: the 412 left X-Etcd-Index unchanged", after_idx, before_idx)

    # The other two still run the 3-member cluster (2 of 3 is a quorum).
    eps = [m.client_url for m in ms[:2]]
    c.eq("wiped: member list from w1,w2 still names all three",
         h.member_list(eps), sorted((m.name, [m.peer_url]) for m in ms))
    hl = h.endpoint_health(eps)
    c.check("wiped: w1 and w2 healthy", all(hl.values()), hl)
    if backend.kind == "discoveryd":
        st = backend.status(tok)
        c.eq("wiped: /status still lists the three as members",
             sorted((m.get("name"), m.get("role")) for m in st.get("members", [])),
             [("w1", "member"), ("w2", "member"), ("w3", "member")])
    h.kill_members(ms)


def scenario_restart_with_data(c, backend):
    tok, direct_url = backend.new_token(3)
    relay = h.Relay(backend.hostport)
    url = h.via_relay(direct_url, relay)
    ms = h.start_members(c, ["k1", "k2", "k3"], url)
    h.wait_cluster(ms, timeout=45)
    h.assert_cluster(c, "restart: first boot", ms)
    conns0, bytes0 = relay.counts()
    c.check("restart: the first boot went through the counting relay", conns0 >= 3 and bytes0 > 0,
            (conns0, bytes0))
    idx0, list0 = backend.listing(tok)

    # One member restarted with its data dir.
    k2 = ms[1]
    k2.kill()
    k2.start()
    h.wait_cluster(ms, timeout=45)
    h.assert_cluster(c, "restart: after k2 restarted", ms)
    c.check("restart k2: log says the discovery token was ignored",
            "discovery token ignored" in k2.log_text(since_start=True), h.tail(k2.log, 10))
    c.eq("restart k2: no discovery traffic (relay connections, bytes)", relay.counts(), (conns0, bytes0))

    # The whole cluster killed and restarted at once.
    h.kill_members(ms)
    for m in ms:
        m.gated = True
        m.start()
    h.open_gates(ms)
    h.wait_cluster(ms, timeout=45)
    h.assert_cluster(c, "restart: after all three restarted", ms)
    for m in ms:
        c.check("restart all: %s log says the discovery token was ignored" % m.name,
                "discovery token ignored" in m.log_text(since_start=True), h.tail(m.log, 10))
    c.eq("restart all: no discovery traffic (relay connections, bytes)", relay.counts(), (conns0, bytes0))
    idx1, list1 = backend.listing(tok)
    c.eq("restart: registrations unchanged", list1, list0)
    c.eq("restart: X-Etcd-Index unchanged", idx1, idx0)
    h.kill_members(ms)


def main():
    c = h.Checks("members rejoining: wiped data dir, restart with data dir")
    try:
        backend = h.start_backend(c)
    except Exception as e:  # noqa: BLE001
        c.check("backend started", False, e)
        c.finish()
    c.run("4. re-registration with a wiped data dir gets 412, exit 1", scenario_wiped_data_dir, backend)
    c.run("6. restart with data dir: no discovery request, rejoins", scenario_restart_with_data, backend)
    c.check("backend still running", backend.alive())
    c.finish()


if __name__ == "__main__":
    main()
