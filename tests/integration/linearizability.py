# tests/integration/linearizability.py — a linearizability checker for per-key registers (write, read,
# compare-and-swap) over a recorded client history, in the Wing–Gong style: depth-first search over the
# order in which pending operations take effect, memoized on (set of operations placed, register value).
# Keys are checked one by one (a history is linearizable iff each key's sub-history is). Used by the
# fault runs in test_cluster.py; tested on hand-written histories in test_linearizability_checker.py.
#
# Operation model (one Op per client request):
#   kind "write": value = the value written.          ok: it took effect between invoke and complete.
#   kind "read":  value = what it returned (MISSING for a 404).
#   kind "cas":   expected, value = the new value.    ok: the compare held and it swapped.
#   outcome "ok"      — acknowledged; takes effect at one instant in [invoke, complete].
#   outcome "fail"    — definitely had no effect (a 412 compare failed, a 404, another 4xx); ignored.
#   outcome "unknown" — timeout, 5xx, connection error: may or may not have taken effect, and if it did,
#                       at any instant after its invoke (no upper bound). An unknown read is ignored.

import threading
import time

MISSING = None          # the register value of a key that does not exist

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


class Op:
    __slots__ = ("key", "kind", "value", "expected", "invoke", "complete", "outcome", "client", "note")

    def __init__(self, key, kind, value=MISSING, expected=MISSING, invoke=0.0, complete=None,
                 outcome=OK, client="", note=""):
        assert kind in ("write", "read", "cas"), kind
        assert outcome in (OK, FAIL, UNKNOWN), outcome
        self.key, self.kind, self.value, self.expected = key, kind, value, expected
        self.invoke, self.complete, self.outcome = invoke, complete, outcome
        self.client, self.note = client, note

    def __repr__(self):
        v = "missing" if self.value is MISSING else repr(self.value)
        if self.kind == "write":
            what = "write(%s)" % v
        elif self.kind == "read":
            what = "read() -> %s" % v
        else:
            what = "cas(%r -> %s)" % (self.expected, v)
        end = "?" if self.outcome == UNKNOWN or self.complete is None else "%.3f" % self.complete
        return "%s%s [%.3f, %s] %s%s" % ("%s: " % self.client if self.client else "", what, self.invoke, end,
                                          self.outcome, (" (%s)" % self.note) if self.note else "")


class History:
    """A thread-safe recorder: op = hist.invoke(...) before the request, hist.finish(op, ...) after."""

    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()

    def invoke(self, client, key, kind, value=MISSING, expected=MISSING):
        op = Op(key, kind, value, expected, invoke=time.monotonic(), complete=None, outcome=UNKNOWN,
                client=client)
        with self.lock:
            self.ops.append(op)
        return op

    def finish(self, op, outcome, read_value=MISSING, note=""):
        """outcome OK/FAIL/UNKNOWN; read_value: what a read returned. An UNKNOWN op keeps no end time."""
        t = time.monotonic()
        if op.kind == "read" and outcome == OK:
            op.value = read_value
        op.outcome, op.note = outcome, note
        op.complete = t if outcome != UNKNOWN else None

    def counts(self):
        c = {}
        with self.lock:
            for op in self.ops:
                k = "%s %s" % (op.kind, op.outcome)
                c[k] = c.get(k, 0) + 1
        return c


class Result:
    def __init__(self, verdict, message, keys, ops, steps):
        self.verdict = verdict      # True (linearizable), False (not), None (search budget exhausted)
        self.message = message
        self.keys = keys            # number of keys checked
        self.ops = ops              # number of ops that entered the search
        self.steps = steps          # search states explored in total

    @property
    def ok(self):
        return self.verdict is True

    def __repr__(self):
        return "<%s: %s>" % ({True: "linearizable", False: "NOT linearizable", None: "unknown"}[self.verdict],
                             self.message)


INF = float("inf")


def _prepare(ops):
    """The ops of one key that matter for the search: acknowledged ones (required) and unknown writes
    and CAS (optional, open-ended). An unknown mutation whose new value nobody ever observes (no read
    returns it, no CAS expects it) cannot change whether the rest linearizes, so it is dropped."""
    observed = set()
    for op in ops:
        if op.kind == "read" and op.outcome == OK:
            observed.add(op.value)
        elif op.kind == "cas" and op.outcome != FAIL:
            observed.add(op.expected)
    out = []
    for op in ops:
        if op.outcome == FAIL:
            continue
        if op.outcome == UNKNOWN:
            if op.kind == "read" or op.value not in observed:
                continue
        out.append(op)
    out.sort(key=lambda o: o.invoke)
    return out


def _lowest_unset(mask):
    return ((~mask) & (mask + 1)).bit_length() - 1


def _apply(o, value):
    """The register value after op o takes effect on value, or _NO if o cannot take effect there."""
    if o.kind == "write":
        return o.value
    if o.kind == "read":
        return value if o.value == value else _NO
    return o.value if o.expected == value else _NO


_NO = object()


def check_key(key, ops, initial=MISSING, budget=200000):
    """(verdict, message, steps) for one key's ops."""
    ops = _prepare(ops)
    req = [o for o in ops if o.outcome == OK]           # must all be placed, in invoke order
    opt = [o for o in ops if o.outcome == UNKNOWN]      # may be placed, any time after their invoke
    if not req:
        return True, "", 0
    # A read of a value no operation ever writes can never be placed: say so plainly.
    written = {o.value for o in ops if o.kind in ("write", "cas")} | {initial}
    for o in req:
        if o.kind == "read" and o.value not in written:
            return False, "key %s: %r returns a value no operation wrote" % (key, o), 0
    nr, no = len(req), len(opt)
    by_comp = sorted(range(nr), key=lambda i: req[i].complete)   # required ops by completion time
    comp_pos = [0] * nr
    for j, i in enumerate(by_comp):
        comp_pos[i] = j

    # State: rmask (required ops placed, by invoke order), cmask (the same set by completion order, so that
    # the earliest completion still pending is its lowest unset bit), omask (unknown ops placed), value.
    seen = set()
    steps = 0
    best = (-1, 0, 0, initial)
    stack = [(0, 0, 0, initial)]
    while stack:
        rmask, cmask, omask, value = stack.pop()
        if (rmask, omask, value) in seen:
            continue
        seen.add((rmask, omask, value))
        steps += 1
        if steps > budget:
            return None, "key %s: unknown: search budget exhausted (%d states, %d ops)" % (key, budget, len(ops)), \
                steps
        j = _lowest_unset(cmask)
        if j >= nr:
            return True, "", steps
        depth = bin(rmask).count("1")
        if depth > best[0]:
            best = (depth, rmask, omask, value)
        # Whatever comes next must start before the earliest completion among the required ops left.
        horizon = req[by_comp[j]].complete
        children = []
        i = _lowest_unset(rmask)
        while i < nr and req[i].invoke <= horizon:
            if not (rmask >> i) & 1:
                nv = _apply(req[i], value)
                if nv is not _NO:
                    children.append((rmask | (1 << i), cmask | (1 << comp_pos[i]), omask, nv))
            i += 1
        for k in range(no):
            if not (omask >> k) & 1 and opt[k].invoke <= horizon:
                nv = _apply(opt[k], value)
                if nv is not _NO and nv != value:   # an unknown op that changes nothing is not worth placing
                    children.append((rmask, cmask, omask | (1 << k), nv))
        # Depth-first: acknowledged ops first (earliest invoked first), unknown ones last, so that an unknown
        # write is placed as late as the reads that see it allow. Pushed in reverse: popped first.
        stack.extend(reversed(children))

    depth, rmask, omask, value = best
    placed = sorted([req[i] for i in range(nr) if (rmask >> i) & 1] +
                    [opt[k] for k in range(no) if (omask >> k) & 1], key=lambda o: o.invoke)
    left = [req[i] for i in range(nr) if not (rmask >> i) & 1]
    horizon = min(o.complete for o in left)
    nxt = [o for o in left if o.invoke <= horizon]
    lines = ["key %s: not linearizable; at best %d of %d acknowledged ops can be ordered, leaving the "
             "register at %s, and then none of these can take effect next:" %
             (key, depth, nr, "missing" if value is MISSING else repr(value))]
    lines += ["    " + repr(o) for o in nxt[:8]]
    if placed:
        lines.append("  the ops placed before that that were invoked last:")
        lines += ["    " + repr(o) for o in placed[-4:]]
    return False, "\n".join(lines), steps


def check(ops, initial=None, budget=200000):
    """Checks a whole history (ops of any keys). initial: {key: value} for keys that do not start
    missing. budget: search states per key. Returns a Result."""
    initial = initial or {}
    by_key = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    total_steps, total_ops, unknown = 0, 0, []
    for key in sorted(by_key, key=str):
        kops = by_key[key]
        total_ops += len(kops)
        verdict, msg, steps = check_key(key, kops, initial.get(key, MISSING), budget)
        total_steps += steps
        if verdict is False:
            return Result(False, msg, len(by_key), total_ops, total_steps)
        if verdict is None:
            unknown.append(msg)
    if unknown:
        return Result(None, "; ".join(unknown), len(by_key), total_ops, total_steps)
    return Result(True, "linearizable", len(by_key), total_ops, total_steps)


def with_stale_read(ops):
    """For tests of the tests: a copy of ops with one acknowledged read changed to return the value of a
    write w0 that was followed by another completed write w1 (w0 ended before w1 began, w1 ended before
    the read began), i.e. a stale read no linearizable history has if written values are unique.
    None if the history holds no such read."""
    writes = {}
    for o in ops:
        if o.kind == "write" and o.outcome == OK:
            writes.setdefault(o.key, []).append(o)
    for i, r in enumerate(ops):
        if r.kind != "read" or r.outcome != OK:
            continue
        ws = sorted((w for w in writes.get(r.key, ()) if w.complete < r.invoke), key=lambda w: w.complete)
        for w1 in reversed(ws):
            w0 = [w for w in ws if w.complete < w1.invoke and w.value not in (w1.value, r.value)]
            if w0:
                out = list(ops)
                out[i] = Op(r.key, "read", w0[-1].value, invoke=r.invoke, complete=r.complete, outcome=OK,
                            client=r.client, note="made stale")
                return out
    return None
