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


def check_key(key, ops, initial=MISSING, budget=200000):
    """(verdict, message, steps) for one key's ops."""
    ops = _prepare(ops)
    n = len(ops)
    if n == 0:
        return True, "", 0
    inv = [o.invoke for o in ops]
    comp = [(o.complete if (o.outcome == OK and o.complete is not None) else INF) for o in ops]
    required = 0
    for i, o in enumerate(ops):
        if o.outcome == OK:
            required |= 1 << i
    # A read of a value no operation ever writes can never be placed: say so plainly.
    written = {o.value for o in ops if o.kind in ("write", "cas")} | {initial}
    for o in ops:
        if o.kind == "read" and o.value not in written:
            return False, "key %s: %r returns a value no operation wrote" % (key, o), 0

    seen = set()
    steps = 0
    best = (-1, 0, initial)     # (required ops placed, mask, value) of the deepest state reached
    stack = [(0, initial)]
    while stack:
        mask, value = stack.pop()
        if (mask, value) in seen:
            continue
        seen.add((mask, value))
        steps += 1
        if steps > budget:
            return None, "key %s: unknown: search budget exhausted (%d states, %d ops)" % (key, budget, n), steps
        if mask & required == required:
            return True, "", steps
        depth = bin(mask & required).count("1")
        if depth > best[0]:
            best = (depth, mask, value)
        # The earliest completion among the required ops not yet placed bounds which op may come next.
        horizon = INF
        for i in range(n):
            if not (mask >> i) & 1 and comp[i] < horizon:
                horizon = comp[i]
        children = []
        for i in range(n):
            if (mask >> i) & 1:
                continue
            if inv[i] > horizon:
                break   # sorted by invoke: nothing later can come next either
            o = ops[i]
            if o.kind == "write":
                nv = o.value
            elif o.kind == "read":
                if o.value != value:
                    continue
                nv = value
            else:
                if o.expected != value:
                    continue
                nv = o.value
            children.append((mask | (1 << i), nv))
        # Depth-first; push in reverse so that the earliest-invoked op is tried first.
        stack.extend(reversed(children))

    depth, mask, value = best
    placed = [ops[i] for i in range(n) if (mask >> i) & 1]
    pend = [ops[i] for i in range(n) if not (mask >> i) & 1 and comp[i] < INF]
    horizon = min(comp[i] for i in range(n) if not (mask >> i) & 1)
    nxt = [o for o in pend if o.invoke <= horizon]
    lines = ["key %s: not linearizable; at best %d of %d acknowledged ops can be ordered, leaving the "
             "register at %s, and then none of these can take effect next:" %
             (key, depth, bin(required).count("1"), "missing" if value is MISSING else repr(value))]
    lines += ["    " + repr(o) for o in nxt[:8]]
    if placed:
        lines.append("  last ops placed before that:")
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
