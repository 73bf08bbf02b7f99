#!/usr/bin/env python3
# tests/integration/test_etcd_bootstrap.py — unmodified etcd 3.4 members bootstrap through discovery:
# a 3-member cluster on a /new token, the same through the private form with a hand-made
# _config/size and a uuidgen token, and size-1 and size-5 clusters.
# Run: DISCOVERYD_BIN=build-itest/discoveryd python3 tests/integration/test_etcd_bootstrap.py
#      DISCOVERYD_ITEST_BACKEND=etcd python3 tests/integration/test_etcd_bootstrap.py

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def check_token_dir(c, label, backend, tok, members):
    """The token dir holds exactly one registration per member, value name=peerURL."""
    _, nodes = backend.listing(tok)
    got = sorted(v for _, v, _ in nodes)
    want = sorted("%s=%s" % (m.name, m.peer_url) for m in members)
    c.eq("%s: token dir holds one registration per member" % label, got, want)
    idx = sorted(ci for _, _, ci in nodes)
    c.check("%s: createdIndexes are distinct and >= 2" % label,
            len(set(idx)) == len(idx) and all(i >= 2 for i in idx), idx)


def check_status(c, label, backend, tok, members, size):
    if backend.kind != "discoveryd":
        c.skip("%s: /status" % label, "discoveryd-only")
        return
    st = backend.status(tok)
    c.eq("%s: /status size" % label, st.get("size"), size)
    c.eq("%s: /status full" % label, st.get("full"), True)
    ms = st.get("members", [])
    c.eq("%s: /status member names" % label, sorted(m.get("name") for m in ms),
         sorted(m.name for m in members))
    c.check("%s: /status roles all member" % label, all(m.get("role") == "member" for m in ms), ms)
    c.eq("%s: /status peerURLs" % label, sorted(tuple(m.get("peerURLs", [])) for m in ms),
         sorted((m.peer_url,) for m in members))


def bootstrap(c, backend, label, tok, url, names):
    ms = h.start_members(c, names, url)
    try:
        h.wait_cluster(ms, timeout=45)
    except Exception as e:  # noqa: BLE001
        c.check("%s: cluster formed" % label, False, e)
        return ms
    h.assert_cluster(c, label, ms)
    check_token_dir(c, label, backend, tok, ms)
    check_status(c, label, backend, tok, ms, len(names))
    return ms


def scenario_new_token(c, backend):
    tok, url = backend.new_token(3)
    if backend.kind == "discoveryd":
        c.check("/new token is 32 lowercase hex", len(tok) == 32 and all(ch in "0123456789abcdef" for ch in tok), tok)
        c.eq("/new URL is public base + token", url, backend.base + "/" + tok)
    ms = bootstrap(c, backend, "new-token size 3", tok, url, ["n1", "n2", "n3"])
    h.kill_members(ms)


def scenario_private_form(c, backend):
    tok = subprocess.run(["uuidgen"], stdout=subprocess.PIPE, check=True, timeout=10).stdout.decode().strip()
    c.check("uuidgen gave a token", len(tok) == 36, tok)
    r = h.http_request(backend.hostport, "PUT", "/v2/keys/discovery/%s/_config/size" % tok, body="value=3")
    c.eq("private form: PUT _config/size is 201", r.status, 201)
    try:
        c.eq("private form: PUT _config/size action", r.json().get("action"), "set")
    except ValueError:
        c.check("private form: PUT _config/size JSON", False, r)
    url = "%s/v2/keys/discovery/%s" % (backend.base, tok)
    ms = bootstrap(c, backend, "private form size 3", tok, url, ["p1", "p2", "p3"])
    h.kill_members(ms)


def scenario_sizes(c, backend):
    # size 1 and size 5 at the same time
    t1, u1 = backend.new_token(1)
    t5, u5 = backend.new_token(5)
    m1 = h.start_members(c, ["s1a"], u1)
    m5 = h.start_members(c, ["f1", "f2", "f3", "f4", "f5"], u5)
    for label, tok, ms, size in (("size 1", t1, m1, 1), ("size 5", t5, m5, 5)):
        try:
            h.wait_cluster(ms, timeout=60)
        except Exception as e:  # noqa: BLE001
            c.check("%s: cluster formed" % label, False, e)
            continue
        h.assert_cluster(c, label, ms)
        check_token_dir(c, label, backend, tok, ms)
        check_status(c, label, backend, tok, ms, size)
    h.kill_members(m1 + m5)


def main():
    c = h.Checks("etcd bootstrap through discovery")
    try:
        backend = h.start_backend(c)
    except Exception as e:  # noqa: BLE001
        c.check("backend started", False, e)
        c.finish()
    c.run("1. three members on a /new token", scenario_new_token, backend)
    c.run("2. private form, hand-made _config/size, uuidgen token", scenario_private_form, backend)
    c.run("5. size 1 and size 5 clusters", scenario_sizes, backend)
    c.check("backend still running", backend.alive())
    c.finish()


if __name__ == "__main__":
    main()
