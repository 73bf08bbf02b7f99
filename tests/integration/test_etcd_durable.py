#!/usr/bin/env python3
# tests/integration/test_etcd_durable.py — real etcd 3.4 members across a discoveryd crash: a token of
# size 3, two members register and wait, discoveryd is SIGKILLed and restarted on the same port and
# --data-dir, the third member registers, and the cluster forms (three healthy members, member list
# of three). The two waiting members re-poll with their old waitIndex after the restart, so this also
# shows the per-token history came back (a 401 would make them fail).
# Bounded: every wait has a deadline (members' discovery retry back-off is 2^n s, n small here).
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_etcd_durable.py

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import durable as d  # noqa: E402


def scenario(c, backend):
    tok, url = backend.new_token(3)
    m1 = h.Member(c, "d1", url)
    m2 = h.Member(c, "d2", url)

    def two_registered():
        for m in (m1, m2):
            if not m.alive():
                raise h.Fatal("member %s exited:\n%s" % (m.name, h.tail(m.log, 20)))
        return len(backend.listing(tok)[1]) == 2
    h.wait_until(two_registered, 30, 0.1, "two registrations")
    time.sleep(1.0)  # both are now parked in their watch for the third member
    idx0, list0 = backend.listing(tok)
    print("# before the kill: X-Etcd-Index %d, registrations %s" % (idx0, [(k, ci) for k, _, ci in list0]))

    d.kill9(backend)
    t0 = time.monotonic()
    secs = d.restart(backend)
    idx1, list1 = backend.listing(tok)
    print("# discoveryd SIGKILLed and restarted on the same port and data dir in %.2fs" % secs)
    c.eq("after the restart: the two registrations, same createdIndex and value", list1, list0)
    c.eq("after the restart: same X-Etcd-Index", idx1, idx0)
    c.check("d1 and d2 still running (waiting for the third)", m1.alive() and m2.alive(),
            (m1.returncode(), m2.returncode()))

    # Let d1 and d2 notice the crash and go back to waiting (their retry reads the token again and
    # parks a new watch on the restarted discoveryd), so the third registration wakes a watch.
    def rewaiting(m):
        log = m.log_text()
        i = log.find("retrying in")
        return i >= 0 and "waiting for 1 more" in log[i:]
    try:
        h.wait_until(lambda: rewaiting(m1) and rewaiting(m2), 30, 0.2, "d1 and d2 waiting again")
        c.check("d1 and d2 retried after the crash and wait again", True)
    except TimeoutError as e:
        c.check("d1 and d2 retried after the crash and wait again", False, e)

    m3 = h.Member(c, "d3", url)
    ms = [m1, m2, m3]
    h.wait_cluster(ms, timeout=90)
    print("# cluster of three formed %.1fs after the restart" % (time.monotonic() - t0))
    h.assert_cluster(c, "after the discoveryd crash", ms)
    idx2, list2 = backend.listing(tok)
    c.eq("the first two registrations unchanged (missing from the final listing)", [x for x in list0 if x not in list2], [])
    c.eq("three registrations in the token dir", len(list2), 3)
    st = backend.status(tok)
    c.eq("/status: full, three members", (st.get("full"), sorted(m.get("name") for m in st.get("members", []))),
         (True, ["d1", "d2", "d3"]))
    for m in (m1, m2):
        log = m.log_text()
        c.check("%s log: no 401 / event index cleared from discovery" % m.name,
                "event index cleared" not in log and "outdated and cleared" not in log, h.tail(m.log, 10))
    h.kill_members(ms)


def main():
    c = h.Checks("etcd 3.4 members across a discoveryd SIGKILL and restart")
    if h.BACKEND != "discoveryd":
        # The restart is of discoveryd itself; the etcd-store backend has no such process.
        print("SKIP: DISCOVERYD_ITEST_BACKEND=%s (this test restarts discoveryd)" % h.BACKEND)
        sys.exit(0)
    try:
        backend = h.DiscoverydBackend(c)
    except Exception as e:  # noqa: BLE001
        c.check("discoveryd started", False, e)
        c.finish()
    c.run("two register, discoveryd kill -9 + restart, the third registers, the cluster forms", scenario, backend)
    c.check("discoveryd running at the end", backend.alive())
    c.finish()


if __name__ == "__main__":
    main()
