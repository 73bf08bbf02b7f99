# tests/integration/durable.py — helpers shared by the durability tests (test_durable_*.py,
# test_etcd_durable.py, test_disk_full.py): kill -9 / SIGTERM and restart one discoveryd on the same
# port and --data-dir, a keep-alive client that reconnects, a bounded parallel writer, and a full
# dump of every token's GET bodies for before/after comparisons. Not a test itself (no test_ prefix).

import http.client
import json
import os
import queue
import signal
import subprocess
import threading
import time

import harness as h


def _child_env():
    # Same rule as harness.DiscoverydBackend: flags only, no DISCOVERYD_* twin from our environment.
    return {k: v for k, v in os.environ.items() if not k.startswith("DISCOVERYD_")}


def healthy_status(backend, timeout=2):
    """The /health status code, or None when nothing answers."""
    try:
        return h.http_request(backend.hostport, "GET", "/health", timeout=timeout).status
    except OSError:
        return None


def kill9(backend):
    """SIGKILL the running discoveryd and reap it."""
    p = backend.proc
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=h.T(10))


def sigterm(backend, timeout=20):
    """SIGTERM and wait; returns the exit status (None: it did not exit in time, then SIGKILLed)."""
    p = backend.proc
    if p.poll() is not None:
        return p.returncode
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=h.T(timeout))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=h.T(10))
        return None


def spawn_again(backend, argv=None):
    """Starts discoveryd again with the same flags (same port, same --data-dir); does not wait.
    Only from the main thread (harness.spawn uses PDEATHSIG)."""
    assert backend.proc.poll() is not None, "the previous discoveryd still runs"
    argv = argv or backend.argv
    with open(backend.log, "ab") as f:
        f.write(("=== restart %.3f\n" % time.time()).encode())
    backend.proc = h.spawn(argv, backend.log, env=_child_env())
    return backend.proc


def wait_healthy(backend, timeout=30):
    """Waits for /health 200 from the current process; returns the seconds it took."""
    t0 = time.monotonic()

    def ok():
        if backend.proc.poll() is not None:
            raise h.Fatal("discoveryd exited with %s:\n%s" % (backend.proc.returncode, h.tail(backend.log)))
        return healthy_status(backend, timeout=2) == 200
    h.wait_until(ok, timeout, 0.02, "discoveryd /health after a restart")
    return time.monotonic() - t0


def restart(backend, timeout=60):
    """spawn_again + wait_healthy; returns the seconds from spawn to /health 200."""
    spawn_again(backend)
    return wait_healthy(backend, timeout)


class Client:
    """One keep-alive connection to hostport, reconnected after any error. request() returns
    harness.Resp or raises OSError / http.client.HTTPException (the connection is then dropped)."""

    def __init__(self, hostport, timeout=10.0):
        self.hostport = hostport
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.hostport, timeout=h.T(self.timeout))
        hdrs = dict(headers or {})
        if isinstance(body, str):
            body = body.encode()
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=hdrs)
            r = self.conn.getresponse()
            data = r.read()
            if r.will_close:
                self.close()
            return h.Resp(r.status, r.headers, data)
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None


def parallel(hostport, jobs, threads=8, timeout=10.0):
    """Runs jobs (an iterable of (method, path, body)) over `threads` keep-alive connections;
    returns [(job, Resp or exception)] in completion order."""
    q = queue.Queue()
    for j in jobs:
        q.put(j)
    out = []
    lock = threading.Lock()

    def worker():
        c = Client(hostport, timeout)
        mine = []
        while True:
            try:
                j = q.get_nowait()
            except queue.Empty:
                break
            try:
                mine.append((j, c.request(j[0], j[1], j[2])))
            except (OSError, http.client.HTTPException) as e:
                mine.append((j, e))
        c.close()
        with lock:
            out.extend(mine)
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


GET_VARIANTS = ("", "?recursive=true", "?sorted=true", "?recursive=true&sorted=true")


def dump_tokens(backend, tokens, variants=GET_VARIANTS, threads=4):
    """{(token, variant): (status, body bytes, X-Etcd-Index, X-Etcd-Cluster-Id)} for every token dir
    in both forms (short /<tok> and private /v2/keys/discovery/<tok>)."""
    jobs = []
    for tok in tokens:
        for v in variants:
            jobs.append(("GET", "/%s%s" % (tok, v), None))
            jobs.append(("GET", "/v2/keys/discovery/%s%s" % (tok, v), None))
    res = {}
    for (m, path, _), r in parallel(backend.hostport, jobs, threads):
        if isinstance(r, Exception):
            raise RuntimeError("GET %s: %r" % (path, r))
        res[path] = (r.status, r.body, r.header("X-Etcd-Index"), r.header("X-Etcd-Cluster-Id"))
    return res


def diff_dumps(before, after, limit=3):
    """Paths whose (status, body, index, cluster id) differ, with the first `limit` shown."""
    bad = [p for p in before if before[p] != after.get(p)]
    shown = ["%s: before %r / after %r" % (p, _short(before[p]), _short(after.get(p))) for p in bad[:limit]]
    return bad, shown


def _short(v):
    if v is None:
        return None
    st, body, idx, cid = v
    return (st, body[:200], idx, cid)


def members_of(body):
    """[(key, value, createdIndex, modifiedIndex)] of the non-dir nodes of a recursive GET body."""
    out = []

    def walk(n):
        for c in n.get("nodes", []) or []:
            if c.get("dir"):
                walk(c)
            else:
                out.append((c["key"], c.get("value"), c["createdIndex"], c["modifiedIndex"]))
    walk(json.loads(body)["node"])
    return out
