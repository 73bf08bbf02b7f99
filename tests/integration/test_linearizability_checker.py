#!/usr/bin/env python3
# tests/integration/test_linearizability_checker.py — the linearizability checker (linearizability.py)
# on hand-written histories: it accepts known-good ones (concurrent writes, overlapping reads, a CAS race,
# unknown writes that did or did not happen) and rejects known-bad ones (a stale read, a lost acknowledged
# write, two CAS wins from one value, a read of a value never written). No server involved.
# Run: python3 tests/integration/test_linearizability_checker.py

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import linearizability as lin  # noqa: E402
from linearizability import FAIL, MISSING, OK, UNKNOWN, Op  # noqa: E402


def W(v, t0, t1, outcome=OK, key="k", c=""):
    return Op(key, "write", v, invoke=t0, complete=None if outcome == UNKNOWN else t1, outcome=outcome, client=c)


def R(v, t0, t1, outcome=OK, key="k", c=""):
    return Op(key, "read", v, invoke=t0, complete=None if outcome == UNKNOWN else t1, outcome=outcome, client=c)


def C(exp, new, t0, t1, outcome=OK, key="k", c=""):
    return Op(key, "cas", new, expected=exp, invoke=t0, complete=None if outcome == UNKNOWN else t1,
              outcome=outcome, client=c)


GOOD = {
    "empty history": [],
    "sequential write then read": [W("a", 0, 1), R("a", 2, 3)],
    "read of a key never written is missing": [R(MISSING, 0, 1)],
    "concurrent writes, later reads agree on the one that came last (b)":
        [W("a", 0, 5), W("b", 1, 4), R("a", 6, 7), R("a", 8, 9)],
    "concurrent writes, either order": [W("a", 0, 5), W("b", 1, 4), R("b", 6, 7)],
    "a read overlapping a write sees the old value": [W("a", 0, 1), W("b", 2, 5), R("a", 3, 4), R("b", 6, 7)],
    "a read overlapping a write sees the new value": [W("a", 0, 1), W("b", 2, 5), R("b", 3, 4), R("b", 6, 7)],
    "the new value seen twice while its write is pending": [W("a", 0, 1), W("b", 2, 10), R("b", 3, 4),
                                                                 R("b", 5, 6)],
    "a CAS race where exactly one wins": [W("a", 0, 1), C("a", "b", 2, 5), C("a", "c", 3, 6, FAIL),
                                          R("b", 7, 8)],
    "a CAS race, the other one wins": [W("a", 0, 1), C("a", "b", 2, 5, FAIL), C("a", "c", 3, 6), R("c", 7, 8)],
    "a chain of CAS": [W("a", 0, 1), C("a", "b", 2, 3), C("b", "c", 4, 5), R("c", 6, 7)],
    "an unknown write that happened (seen later)": [W("a", 0, 1), W("b", 2, 3, UNKNOWN), R("b", 10, 11)],
    "an unknown write that did not happen": [W("a", 0, 1), W("b", 2, 3, UNKNOWN), R("a", 10, 11),
                                             R("a", 12, 13)],
    "an unknown write that took effect long after its timeout": [W("a", 0, 1), W("b", 2, 3, UNKNOWN),
                                                                 R("a", 10, 11), R("b", 20, 21)],
    "an unknown CAS that happened": [W("a", 0, 1), C("a", "b", 2, 3, UNKNOWN), R("b", 4, 5)],
    "a failed write has no effect": [W("a", 0, 1), W("b", 2, 3, FAIL), R("a", 4, 5)],
    "an unknown read is ignored": [W("a", 0, 1), R("zzz", 2, 3, UNKNOWN), R("a", 4, 5)],
    "keys are independent": [W("a", 0, 1, key="x"), W("a", 0, 1, key="y"), W("b", 2, 3, key="y"),
                             R("a", 4, 5, key="x"), R("b", 4, 5, key="y")],
}

BAD = {
    "a stale read (starts after a write completed, returns the older value)":
        [W("a", 0, 1), W("b", 2, 3), R("a", 4, 5)],
    "a lost acknowledged write (never seen; a later read sees the older value)":
        [W("a", 0, 1), W("b", 2, 3, c="c1"), R("a", 10, 11, c="c2"), R("a", 12, 13, c="c3")],
    "two successful CAS from the same expected value": [W("a", 0, 1), C("a", "b", 2, 5), C("a", "c", 3, 6)],
    "a read of a value never written": [W("a", 0, 1), R("q", 2, 3)],
    "a read of missing after an acknowledged write": [W("a", 0, 1), R(MISSING, 2, 3)],
    "a value seen, then the older one again (non-monotonic reads)":
        [W("a", 0, 1), W("b", 2, 10), R("b", 3, 4), R("a", 5, 6)],
    "an unknown write seen, then un-seen": [W("a", 0, 1), W("b", 2, 3, UNKNOWN), R("b", 4, 5), R("a", 6, 7)],
    "a CAS that succeeded against a value not there": [W("a", 0, 1), C("z", "b", 2, 3)],
    "one bad key among good ones": [W("a", 0, 1, key="x"), R("a", 2, 3, key="x"),
                                    W("a", 0, 1, key="y"), W("b", 2, 3, key="y"), R("a", 4, 5, key="y")],
}


def simulated(seed, clients=4, per_client=300, keys=3):
    """A random linearizable history: each client runs ops one after another; every op takes effect at a
    random instant inside its interval, and reads and CAS get what the register held at that instant.
    One write in ten times out (unknown): half of those never happen, the others take effect up to 5 s
    after their invoke (the client has moved on)."""
    rnd = random.Random(seed)
    ops, effects = [], []   # effects: (instant, op, takes effect?)
    names = ["v0"]
    for cl in range(clients):
        t = rnd.uniform(0, 0.5)
        for n in range(per_client):
            key = "k%d" % rnd.randrange(keys)
            kind = rnd.choice(("write", "read", "read", "cas"))
            t_eff = t + rnd.uniform(0, 0.3)
            t_end = t_eff + rnd.uniform(0, 0.3)
            if kind == "write":
                v = "c%d-%d" % (cl, n)
                names.append(v)
                op = Op(key, "write", v, invoke=t, complete=t_end, client="c%d" % cl)
                if rnd.random() < 0.1:
                    op.outcome, op.complete = UNKNOWN, None
                    if rnd.random() < 0.5:
                        t_eff = t + rnd.uniform(0, 5)
                        effects.append((t_eff, op))
                else:
                    effects.append((t_eff, op))
            elif kind == "read":
                op = Op(key, "read", invoke=t, complete=t_end, client="c%d" % cl)
                effects.append((t_eff, op))
            else:
                op = Op(key, "cas", "c%d-%d" % (cl, n), expected=rnd.choice(names[-6:]), invoke=t, complete=t_end,
                        client="c%d" % cl)
                names.append(op.value)
                effects.append((t_eff, op))
            ops.append(op)
            t = t_end + rnd.uniform(0, 0.05)
    reg = {}
    for _, op in sorted(effects, key=lambda e: e[0]):
        cur = reg.get(op.key, MISSING)
        if op.kind == "write":
            reg[op.key] = op.value
        elif op.kind == "read":
            op.value = cur
        elif op.expected == cur:
            reg[op.key] = op.value
        elif op.outcome == OK:
            op.outcome = FAIL
    return ops


def main():
    c = h.Checks("linearizability checker on hand-written histories")
    for name, ops in GOOD.items():
        r = lin.check(ops)
        c.check("accepted: %s" % name, r.verdict is True, r)
    for name, ops in BAD.items():
        r = lin.check(ops)
        c.check("rejected: %s" % name, r.verdict is False, r)
        if r.verdict is False:
            print("  # " + r.message.replace("\n", "\n  # "))
    r = lin.check(BAD["one bad key among good ones"])
    c.check("the explanation names the bad key", "key y" in r.message, r.message)
    r = lin.check(BAD["a stale read (starts after a write completed, returns the older value)"])
    c.check("the explanation names the stale read", "read() -> 'a'" in r.message, r.message)

    # A large concurrent history: 6 clients, 400 ops on one key, every one overlapping its neighbours;
    # written as a legal sequential run (each op takes effect at the midpoint of its interval), so it must
    # be accepted within the budget.
    ops, value, t = [], MISSING, 0.0
    for i in range(400):
        t0, t1 = t, t + 3.0
        kind = ("write", "read", "cas")[i % 3]
        if kind == "write":
            value = "v%d" % i
            ops.append(W(value, t0, t1))
        elif kind == "read":
            ops.append(R(value, t0, t1))
        else:
            ops.append(C(value, "c%d" % i, t0, t1))
            value = "c%d" % i
        t += 1.0
    r = lin.check(ops)
    c.check("a 400-op overlapping history is accepted (%s states searched)" % r.steps, r.verdict is True, r)
    # The same history with one read made stale: rejected, or at least not accepted (budget).
    bad = list(ops)
    bad[301] = R("v0", bad[301].invoke, bad[301].complete)
    r = lin.check(bad, budget=50000)
    c.check("the same history with one stale read is not accepted (%s)" % ("rejected" if r.verdict is False
            else "budget"), r.verdict is not True, r)
    # Random linearizable histories like a fault run's (4 clients, 1200 ops over 3 keys, unknown writes):
    # accepted; then one read made stale (it returns a value overwritten before it started): rejected.
    for seed in range(3):
        ops = simulated(seed)
        r = lin.check(ops)
        c.check("simulated history %d (%d ops, %d unknown) is accepted (%d states searched)"
                % (seed, len(ops), sum(o.outcome == UNKNOWN for o in ops), r.steps), r.verdict is True, r)
        bad = lin.with_stale_read(ops)
        r = lin.check(bad) if bad else None
        c.check("simulated history %d with one stale read is rejected" % seed, r and r.verdict is False, r)
    # An impossible search is cut off by the budget with an explicit "unknown", not a hang.
    many = [W("w%d" % i, 0, 100) for i in range(22)] + [R("w%d" % i, 101 + i, 101.5 + i) for i in range(2)]
    r = lin.check(many, budget=2000)
    c.check("an exhausted budget is reported as unknown", r.verdict is None and "budget" in r.message, r)
    c.finish()


if __name__ == "__main__":
    main()
