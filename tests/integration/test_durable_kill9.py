#!/usr/bin/env python3
# tests/integration/test_durable_kill9.py — every acknowledged write survives kill -9: writer threads
# register members (PUT /<token>/<id>?prevExist=false) over many tokens while discoveryd is SIGKILLed
# and restarted (same port, same --data-dir) at random moments, sometimes in the middle of its own
# start-up. Afterwards every acknowledged registration is present with its createdIndex and value,
# no createdIndex names two keys, nothing appears that was never sent, and X-Etcd-Index never goes
# back (per writer thread, and across each restart).
# Bounded: 20 serving kills and <= 60 s of load by default; DISCOVERYD_SOAK=1 makes it 200 kills and
# <= 15 min. DISCOVERYD_DURABLE_SEED=N repeats a run's random choices (kill moments, tokens).
# Run: DISCOVERYD_BIN=build/discoveryd python3 tests/integration/test_durable_kill9.py

import http.client
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import durable as d  # noqa: E402

SOAK = os.environ.get("DISCOVERYD_SOAK", "") not in ("", "0")
KILLS = 200 if SOAK else 20          # kills of a serving discoveryd
MAX_SECONDS = 600 if SOAK else 60    # load phase cap (the kill loop stops early at this point)
MAX_WRITES = 1000000 if SOAK else 300000
WRITERS = 6
# Each token takes 2000 registrations (size 1000 + surplus 1000): room for MAX_WRITES with margin.
TOKENS = 1024 if SOAK else 256


class Rec:
    """One request sent (slots: a soak run keeps a million of them)."""
    __slots__ = ("tok", "key", "value", "outcome", "status", "created", "t_recv", "error", "body")

    def __init__(self, tok, key, value):
        self.tok, self.key, self.value = tok, key, value
        self.outcome = self.status = self.created = self.t_recv = self.error = self.body = None


class Writer(threading.Thread):
    def __init__(self, tid, backend, tokens, stop, seed):
        super().__init__(daemon=True)
        self.tid = tid
        self.backend = backend
        self.tokens = tokens
        self.stop = stop
        self.rng = random.Random(seed)
        self.records = []          # dicts, one per request sent
        self.backwards = []        # (previous index, index) where X-Etcd-Index went back
        self.budget = MAX_WRITES // WRITERS

    def run(self):
        c = d.Client(self.backend.hostport, timeout=10)
        last_idx = 0
        n = 0
        while not self.stop.is_set() and n < self.budget:
            n += 1
            tok = self.rng.choice(self.tokens)
            key = "w%d-%d" % (self.tid, n)
            # 20 B to 3 KiB: a run writes more than one 64 MiB WAL segment, so kills also land
            # around a segment roll-over.
            value = ("%s-%08x-" % (key, self.rng.getrandbits(32))).ljust(self.rng.randint(20, 3072), "x")
            rec = Rec(tok, key, value)
            self.records.append(rec)
            try:
                r = c.request("PUT", "/%s/%s?prevExist=false" % (tok, key), "value=" + value)
            except (OSError, http.client.HTTPException) as e:
                rec.outcome = "indeterminate"
                rec.error = type(e).__name__
                time.sleep(0.005)  # down: do not spin
                continue
            rec.status = r.status
            rec.t_recv = time.monotonic()
            if r.status == 201:
                try:
                    node = r.json()["node"]
                    rec.created = node["createdIndex"]
                    rec.outcome = "ack" if node.get("value") == value and node["key"].endswith("/" + key) \
                        else "unexpected"
                except (ValueError, KeyError):
                    rec.outcome = "unexpected"
                idx = r.etcd_index()
                if idx is not None:
                    if idx < last_idx:
                        self.backwards.append((last_idx, idx))
                    last_idx = max(last_idx, idx)
            elif 500 <= r.status <= 599:
                rec.outcome = "indeterminate"  # not acknowledged; it may still have been logged
            else:
                rec.outcome = "unexpected"
                rec.body = r.body[:200]
        c.close()


def global_index(backend, tok):
    r = h.http_request(backend.hostport, "GET", "/%s" % tok, timeout=5)
    if r.status != 200:
        raise RuntimeError("GET /%s: %r" % (tok, r))
    return r.etcd_index()


def scenario(c, backend, seed):
    rng = random.Random(seed)
    # Tokens first (each an acknowledged write too): /new and the private form, half each.
    tokens = []
    for i in range(TOKENS):
        if i % 2:
            tok, _ = backend.new_token(1000)
        else:
            tok, _ = backend.private_token(1000, "kill9-%d-%08x" % (i, rng.getrandbits(32)))
        tokens.append(tok)

    stop = threading.Event()
    writers = [Writer(i, backend, tokens, stop, rng.getrandbits(64)) for i in range(WRITERS)]
    for w in writers:
        w.start()

    kills = 0
    startup_kills = 0
    restart_times = []
    crossings = []   # (t_kill, index seen just before the kill, index seen first after restart)
    t_end = time.monotonic() + MAX_SECONDS
    while kills < KILLS and time.monotonic() < t_end and any(w.is_alive() for w in writers):
        time.sleep(rng.uniform(0.05, 1.2))
        try:
            pre = global_index(backend, rng.choice(tokens))
        except (OSError, RuntimeError, http.client.HTTPException):
            pre = None
        t_kill = time.monotonic()
        d.kill9(backend)
        kills += 1
        time.sleep(rng.uniform(0, 0.1))
        if rng.random() < 0.25:
            # Killed again during its own start-up (replaying the WAL, or just after).
            d.spawn_again(backend)
            time.sleep(rng.uniform(0, 0.08))
            d.kill9(backend)
            startup_kills += 1
        restart_times.append(d.restart(backend, timeout=60))
        post = global_index(backend, rng.choice(tokens))
        crossings.append((t_kill, pre, post))
    stop.set()
    for w in writers:
        w.join(timeout=h.T(30))
    c.check("writer threads finished", not any(w.is_alive() for w in writers))

    recs = [r for w in writers for r in w.records]
    acked = [r for r in recs if r.outcome == "ack"]
    indet = [r for r in recs if r.outcome == "indeterminate"]
    unexpected = [r for r in recs if r.outcome == "unexpected"]

    # The final state, read from a discoveryd that was just SIGKILLed once more and restarted
    # while quiet (nothing in flight).
    d.kill9(backend)
    kills += 1
    restart_times.append(d.restart(backend, timeout=60))
    final = {}
    dir_created = []
    max_index = 0
    not_ok = []
    for tok in tokens:
        r = h.http_request(backend.hostport, "GET", "/%s?recursive=true" % tok, timeout=10)
        if r.status != 200:
            not_ok.append((tok, r))
            continue
        max_index = max(max_index, r.etcd_index() or 0)
        dir_created.append(r.json()["node"]["createdIndex"])
        for key, value, created, modified in d.members_of(r.body):
            final[(tok, key.rsplit("/", 1)[1])] = (value, created, modified)

    c.eq("final GET of every token dir is 200", not_ok[:3], [])
    lost = []
    for r in acked:
        got = final.get((r.tok, r.key))
        if got is None or got[0] != r.value or got[1] != r.created or got[2] != r.created:
            lost.append((r.tok, r.key, r.created, got))
    sent = {(r.tok, r.key): r for r in recs}
    phantom = [k for k in final if k not in sent]
    wrong_value = [k for k, v in final.items() if k in sent and v[0] != sent[k].value]
    indet_present = sum(1 for r in indet if (r.tok, r.key) in final)

    by_index = {}
    reused = []
    for r in acked:
        k = (r.tok, r.key)
        prev = by_index.setdefault(r.created, k)
        if prev != k:
            reused.append((r.created, prev, k))
    all_created = [v[1] for v in final.values()] + dir_created
    dup_final = len(all_created) - len(set(all_created))
    backwards = [b for w in writers for b in w.backwards]
    # Across each restart: the first index served after it is >= every createdIndex acknowledged
    # before the kill, and >= the index read just before the kill.
    crossing_bad = []
    for t_kill, pre, post in crossings:
        before = [r.created for r in acked if r.t_recv < t_kill]
        floor = max(before + ([pre] if pre is not None else []) + [0])
        if post < floor:
            crossing_bad.append((floor, post))

    print("# seed %d" % seed)
    print("# writes sent %d, acknowledged %d, failed/indeterminate %d (of which present after "
          "restart %d), unexpected %d" % (len(recs), len(acked), len(indet), indet_present, len(unexpected)))
    print("# restarts %d after kills of a serving discoveryd, plus %d extra kills during start-up; "
          "restart to /health 200: max %.2fs, mean %.2fs" %
          (kills, startup_kills, max(restart_times), sum(restart_times) / len(restart_times)))
    segs = sorted(f for f in os.listdir(os.path.join(backend.data_dir, "wal")) if f.endswith(".wal"))
    print("# final X-Etcd-Index %d, keys present %d, lost %d; WAL segments %d %s" %
          (max_index, len(final), len(lost), len(segs), segs))
    c.check("at least %d kills of a serving discoveryd" % min(KILLS, 20), kills >= min(KILLS, 20), kills)
    c.check("some writes were acknowledged before most kills", len(acked) >= kills * 5, len(acked))
    c.eq("unexpected answers (4xx, wrong body)", [(r.key, r.status, r.body) for r in unexpected][:5], [])
    c.eq("lost acknowledged writes (missing or different createdIndex/value)", lost[:5], [])
    c.eq("keys present that were never sent", phantom[:5], [])
    c.eq("keys present with a value that was not sent", wrong_value[:5], [])
    c.eq("createdIndex given to two different acknowledged keys", reused[:5], [])
    c.eq("duplicate createdIndex in the final tree (members and token dirs)", dup_final, 0)
    c.eq("X-Etcd-Index went back within a writer thread", backwards[:5], [])
    c.eq("X-Etcd-Index after a restart below what was acknowledged/read before the kill", crossing_bad[:5], [])
    c.check("final X-Etcd-Index >= every createdIndex", max_index >= max(all_created), (max_index, max(all_created)))


def main():
    c = h.Checks("durability: kill -9 at random moments under a registration load")
    seed = int(os.environ.get("DISCOVERYD_DURABLE_SEED", "0") or 0) or random.SystemRandom().getrandbits(32)
    try:
        backend = h.DiscoverydBackend(c, extra_args=["--max-size", "1000", "--surplus", "1000"])
    except Exception as e:  # noqa: BLE001
        c.check("discoveryd started", False, e)
        c.finish()
    c.run("registrations under kill -9 (seed %d)" % seed, scenario, backend, seed)
    c.check("discoveryd running at the end", backend.alive())
    c.finish()


if __name__ == "__main__":
    main()
