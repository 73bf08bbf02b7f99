# tests/integration/harness.py — shared helpers for the integration tests: start/stop discoveryd or a
# real etcd v2 store as the discovery backend, start etcd 3.4 members on free loopback ports, bounded
# waits, etcdctl checks, HTTP helpers and the pass/fail bookkeeping every test_*.py prints.
#
# Backend switch: DISCOVERYD_ITEST_BACKEND=discoveryd (default) runs against $DISCOVERYD_BIN;
# DISCOVERYD_ITEST_BACKEND=etcd runs the same scenarios against a real etcd 3.4 --enable-v2 store,
# which is how the assertions themselves are validated. Other knobs:
#   DISCOVERYD_ITEST_KEEP=1         keep the temp dir (logs, data dirs) and print its path
#   DISCOVERYD_ITEST_ARGS="..."     extra discoveryd flags (shlex-split), appended last
#   DISCOVERYD_ITEST_TIMEOUT_SCALE  multiply every deadline (e.g. 3 under ASan)
#
# Every child process is started from the main thread with PR_SET_PDEATHSIG=SIGKILL, is SIGKILLed at
# exit (atexit and SIGTERM/SIGINT handlers), and every wait in here has a deadline.

import atexit
import ctypes
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid

BACKEND = os.environ.get("DISCOVERYD_ITEST_BACKEND", "discoveryd").strip() or "discoveryd"
SCALE = float(os.environ.get("DISCOVERYD_ITEST_TIMEOUT_SCALE", "1") or "1")
KEEP = os.environ.get("DISCOVERYD_ITEST_KEEP", "") not in ("", "0")

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def T(seconds):
    """A deadline length, scaled by DISCOVERYD_ITEST_TIMEOUT_SCALE."""
    return seconds * SCALE


# ------------------------------------------------------------------------------------------------
# Process bookkeeping

_procs = []          # every Popen we started, killed at exit
_tmp_root = None
_main_thread = threading.main_thread()


def _pdeathsig():
    # Runs in the child between fork and exec: die with the parent even if the parent is SIGKILLed
    # (ctest's timeout). Children are only spawned from the main thread, which lives until exit.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _kill_all():
    for p in _procs:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for p in _procs:
        try:
            p.wait(timeout=5)
        except Exception:
            pass


def _cleanup():
    _kill_all()
    if _tmp_root:
        if KEEP:
            print("# kept temp dir: %s" % _tmp_root, flush=True)
        else:
            shutil.rmtree(_tmp_root, ignore_errors=True)


def _on_signal(signum, frame):
    _cleanup()
    os._exit(128 + signum)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def tmpdir(name):
    """A fresh directory under this test's temp root."""
    global _tmp_root
    if _tmp_root is None:
        _tmp_root = tempfile.mkdtemp(prefix="dd-itest-")
    path = os.path.join(_tmp_root, name)
    n = 1
    while os.path.exists(path):
        n += 1
        path = os.path.join(_tmp_root, "%s.%d" % (name, n))
    os.makedirs(path)
    os.chmod(path, 0o700)
    return path


def spawn(argv, log_path, env=None, gated=False):
    """Starts argv with stdout+stderr appended to log_path. gated: the process waits (in /bin/sh)
    for one line on its stdin before it execs argv; see open_gates()."""
    assert threading.current_thread() is _main_thread, "spawn only from the main thread (PDEATHSIG)"
    logf = open(log_path, "ab")
    if gated:
        argv = ["/bin/sh", "-c", 'read _gate; exec "$@" </dev/null', "sh"] + list(argv)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if gated else subprocess.DEVNULL, stdout=logf,
                         stderr=subprocess.STDOUT, env=env, preexec_fn=_pdeathsig, close_fds=True)
    logf.close()
    _procs.append(p)
    return p


def clean_env():
    """The environment for etcd/etcdctl children: no stray ETCD_*/ETCDCTL_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    return env


def free_port():
    """A port on 127.0.0.1 that nobody listens on right now (bind 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    # Hold all sockets open until every port is picked so that the n ports are distinct.
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class Fatal(RuntimeError):
    """Raised inside a wait_until condition: stop waiting, this will never become true."""


def wait_until(fn, timeout, interval=0.1, what="condition"):
    """Calls fn() until it returns a truthy value; returns it. Raises TimeoutError at the deadline.
    Exceptions from fn count as "not yet" (the last one is reported), except Fatal, which ends
    the wait at once."""
    deadline = time.monotonic() + T(timeout)
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except Fatal:
            raise
        except Exception as e:  # noqa: BLE001 - "not ready yet"
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s%s" %
                               (T(timeout), what, (" (last error: %r)" % (last,)) if last else ""))
        time.sleep(interval)


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    lines = data.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n:])


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# ------------------------------------------------------------------------------------------------
# HTTP

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers      # http.client.HTTPMessage (case-insensitive get)
        self.body = body            # bytes

    def header(self, name, default=None):
        return self.headers.get(name, default)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def etcd_index(self):
        v = self.headers.get("X-Etcd-Index")
        return int(v) if v is not None else None

    def __repr__(self):
        b = self.body[:300]
        return "<%d %r>" % (self.status, b)


def http_request(base_or_host, method, path, body=None, headers=None, timeout=10.0):
    """One request on a fresh connection. base_or_host: "http://h:p" or "h:p"."""
    hostport = urllib.parse.urlsplit(base_or_host).netloc if "://" in base_or_host else base_or_host
    conn = http.client.HTTPConnection(hostport, timeout=T(timeout))
    try:
        hdrs = dict(headers or {})
        if isinstance(body, str):
            body = body.encode()
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, r.headers, data)
    finally:
        conn.close()


def http_get(url, timeout=10.0, headers=None):
    u = urllib.parse.urlsplit(url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return http_request(u.netloc, "GET", path, headers=headers, timeout=timeout)


class KeepAlive:
    """One HTTP/1.1 connection reused for several requests; tells whether the server kept it."""

    def __init__(self, hostport, timeout=10.0):
        self.hostport = hostport
        self.conn = http.client.HTTPConnection(hostport, timeout=T(timeout))
        self.conn.connect()
        self.sock_id = id(self.conn.sock)

    def request(self, method, path, body=None, headers=None):
        hdrs = dict(headers or {})
        if isinstance(body, str):
            body = body.encode()
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=hdrs)
        r = self.conn.getresponse()
        data = r.read()
        return Resp(r.status, r.headers, data), r.will_close

    def same_socket(self):
        return self.conn.sock is not None and id(self.conn.sock) == self.sock_id

    def close(self):
        self.conn.close()


# ------------------------------------------------------------------------------------------------
# Checks and reporting

class Checks:
    """Counts checks; each prints one line. finish() prints 'N passed, M failed' and exits."""

    def __init__(self, title):
        self.title = title
        self.passed = 0
        self.failed = 0
        self.logs = []          # (label, path, lines) of logs to show when something failed
        self.finalizers = []    # called by finish() before the summary (e.g. graceful stop checks)
        self.t0 = time.monotonic()
        print("# %s (backend: %s)" % (title, BACKEND), flush=True)

    def add_log(self, label, path, lines=15):
        self.logs.append((label, path, lines))

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("PASS %s" % name, flush=True)
        else:
            self.failed += 1
            print("FAIL %s%s" % (name, (": " + str(detail)) if detail != "" else ""), flush=True)
        return bool(cond)

    def eq(self, name, got, want):
        return self.check(name, got == want, "got %r, want %r" % (got, want))

    def skip(self, name, why):
        print("SKIP %s: %s" % (name, why), flush=True)

    def run(self, name, fn, *args):
        """Runs one scenario; an exception is one failed check (with traceback), not a crash."""
        print("## %s" % name, flush=True)
        t = time.monotonic()
        try:
            fn(self, *args)
        except Exception as e:  # noqa: BLE001
            self.failed += 1
            print("FAIL %s: exception %s: %s" % (name, type(e).__name__, e), flush=True)
            traceback.print_exc(file=sys.stdout)
        print("## %s done in %.1fs" % (name, time.monotonic() - t), flush=True)

    def finish(self):
        for fn in self.finalizers:
            try:
                fn(self)
            except Exception as e:  # noqa: BLE001
                self.check("finalizer %s" % getattr(fn, "__name__", fn), False, e)
        if self.failed:
            for label, path, lines in self.logs:
                print("----- tail of %s (%s) -----" % (label, path))
                print(tail(path, lines))
        print("# elapsed %.1fs" % (time.monotonic() - self.t0))
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        _cleanup()
        sys.stdout.flush()
        os._exit(0 if self.failed == 0 and self.passed > 0 else 1)


# ------------------------------------------------------------------------------------------------
# Discovery backends

class DiscoverydBackend:
    """A single discoveryd process on 127.0.0.1 with a temp data dir."""

    kind = "discoveryd"

    # Rate limits high enough that no scenario meets them (the rate-limit tests set their own).
    RELAXED_LIMITS = ["--new-rate", "1000", "--new-burst", "10000", "--new-range-rate", "1000",
                      "--new-range-burst", "10000", "--token-write-rate", "1000",
                      "--token-write-burst", "10000"]

    def __init__(self, checks, extra_args=(), max_size=15, surplus=16, watch_timeout="60s",
                 label="discoveryd", relaxed_limits=True, public_url=True):
        bin_path = os.environ.get("DISCOVERYD_BIN", "")
        if not bin_path or not os.access(bin_path, os.X_OK):
            raise RuntimeError("DISCOVERYD_BIN is not set or not executable: %r" % bin_path)
        self.port = free_port()
        self.hostport = "127.0.0.1:%d" % self.port
        self.base = "http://" + self.hostport
        self.data_dir = tmpdir(label + ".data")
        self.log = os.path.join(os.path.dirname(self.data_dir), label + ".log")
        argv = [bin_path, "--listen", self.hostport, "--data-dir", self.data_dir,
                "--max-size", str(max_size),
                "--watch-timeout", watch_timeout, "--token-ttl", "168h", "--surplus", str(surplus)]
        if public_url:  # False: /new and the pages build the URL from the Host header
            argv += ["--public-url", self.base]
        if relaxed_limits:
            argv += self.RELAXED_LIMITS
        argv += list(extra_args)
        argv += shlex.split(os.environ.get("DISCOVERYD_ITEST_ARGS", ""))
        self.argv = argv
        checks.add_log(label, self.log, 60)
        with open(self.log, "ab") as f:
            f.write(("=== %s\n" % " ".join(shlex.quote(a) for a in argv)).encode())
        # Flags only: no DISCOVERYD_* twin from our own environment (DISCOVERYD_BIN etc.) reaches it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DISCOVERYD_")}
        self.proc = spawn(argv, self.log, env=env)
        checks.finalizers.append(self.stop_and_check)

        def healthy():
            if self.proc.poll() is not None:
                raise Fatal("discoveryd exited with %s:\n%s" % (self.proc.returncode, tail(self.log)))
            return http_request(self.hostport, "GET", "/health", timeout=2).status == 200
        try:
            wait_until(healthy, 30, 0.1, "discoveryd /health")
        except TimeoutError as e:
            raise RuntimeError("%s\n%s" % (e, tail(self.log)))

    def alive(self):
        return self.proc.poll() is None

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

    def stop_and_check(self, checks):
        """At the end of a test: SIGTERM, a graceful exit with status 0 within 20 s, and no
        sanitizer report in the log (under -DDISCOVERYD_SANITIZE=ON leaks show up here)."""
        if self.proc.poll() is not None:
            checks.check("discoveryd still running at the end", False, "exit status %s" % self.proc.returncode)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=T(20))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=T(10))
                checks.check("discoveryd exits within 20s of SIGTERM", False, "had to SIGKILL it")
                return
            checks.eq("discoveryd exit status after SIGTERM", self.proc.returncode, 0)
        log = read_text(self.log)
        marks = [m for m in self.SANITIZER_MARKS if m in log]
        checks.check("discoveryd log has no sanitizer report", not marks, marks)

    def new_token(self, size):
        """Token via /new; returns (token, discovery URL) — the short form URL /new printed."""
        r = http_request(self.hostport, "GET", "/new?size=%d" % size)
        if r.status != 200:
            raise RuntimeError("/new?size=%d: %r" % (size, r))
        url = r.text
        if url.endswith("\n"):
            raise RuntimeError("/new body ends with a newline: %r" % url)
        tok = url.rsplit("/", 1)[1]
        return tok, url

    def private_token(self, size, token=None):
        """Hand-made token in the private form: PUT /v2/keys/discovery/<tok>/_config/size value=N."""
        tok = token or str(uuid.uuid4())
        r = http_request(self.hostport, "PUT", "/v2/keys/discovery/%s/_config/size" % tok,
                         body="value=%d" % size)
        if r.status not in (200, 201):
            raise RuntimeError("PUT _config/size: %r" % r)
        return tok, "%s/v2/keys/discovery/%s" % (self.base, tok)

    def dir_path(self, tok):
        return "/v2/keys/discovery/%s" % tok

    def listing(self, tok):
        """(X-Etcd-Index, sorted [(id, value, createdIndex)]) of the token dir."""
        r = http_request(self.hostport, "GET", self.dir_path(tok) + "?recursive=true&sorted=true")
        if r.status != 200:
            raise RuntimeError("GET token dir: %r" % r)
        nodes = r.json()["node"].get("nodes", [])
        out = sorted((n["key"].rsplit("/", 1)[1], n.get("value"), n["createdIndex"]) for n in nodes)
        return r.etcd_index(), out

    def status(self, tok):
        r = http_request(self.hostport, "GET", "/status/%s" % tok)
        if r.status != 200:
            raise RuntimeError("GET /status: %r" % r)
        return r.json()

    def metrics(self):
        return http_request(self.hostport, "GET", "/metrics").text

    def log_text(self):
        return read_text(self.log)


class EtcdStoreBackend:
    """A real etcd 3.4 with --enable-v2 as the discovery store (the private-discovery recipe)."""

    kind = "etcd"

    def __init__(self, checks, label="store"):
        c, p = free_ports(2)
        self.hostport = "127.0.0.1:%d" % c
        self.base = "http://" + self.hostport
        self.data_dir = tmpdir(label + ".etcd")
        self.log = os.path.join(os.path.dirname(self.data_dir), label + ".log")
        argv = [ETCD, "--name", label, "--data-dir", self.data_dir, "--enable-v2=true",
                "--listen-client-urls", self.base, "--advertise-client-urls", self.base,
                "--listen-peer-urls", "http://127.0.0.1:%d" % p,
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % p,
                "--initial-cluster", "%s=http://127.0.0.1:%d" % (label, p),
                "--initial-cluster-state", "new"]
        checks.add_log(label, self.log)
        self.proc = spawn(argv, self.log, env=clean_env())

        def healthy():
            if self.proc.poll() is not None:
                raise Fatal("store etcd exited:\n" + tail(self.log))
            r = http_request(self.hostport, "GET", "/health", timeout=2)
            return r.status == 200 and b"true" in r.body
        wait_until(healthy, 30, 0.1, "store etcd /health")

    def alive(self):
        return self.proc.poll() is None

    def new_token(self, size):
        # /new does not exist on etcd: emulate it with a 32-hex token in the private form.
        return self.private_token(size, uuid.uuid4().hex)

    private_token = DiscoverydBackend.private_token
    dir_path = DiscoverydBackend.dir_path
    listing = DiscoverydBackend.listing

    def status(self, tok):
        raise NotImplementedError("/status is discoveryd-only")

    def log_text(self):
        return read_text(self.log)


def start_backend(checks, **kw):
    if BACKEND == "etcd":
        return EtcdStoreBackend(checks)
    if BACKEND == "discoveryd":
        return DiscoverydBackend(checks, **kw)
    raise RuntimeError("unknown DISCOVERYD_ITEST_BACKEND=%r (discoveryd|etcd)" % BACKEND)


# ------------------------------------------------------------------------------------------------
# A counting TCP relay: put it between members and the discovery service to see whether a process
# talks to discovery at all (scenario: a restart with a data dir makes no discovery request).

class Relay:
    def __init__(self, target_hostport):
        self.target = target_hostport.split(":")
        self.target = (self.target[0], int(self.target[1]))
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.hostport = "127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.connections = 0
        self.bytes_in = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def counts(self):
        with self.lock:
            return self.connections, self.bytes_in

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            try:
                u = socket.create_connection(self.target, timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            for a, b, count in ((c, u, True), (u, c, False)):
                threading.Thread(target=self._pump, args=(a, b, count), daemon=True).start()

    def _pump(self, src, dst, count):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    with self.lock:
                        self.bytes_in += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def via_relay(url, relay):
    """The same discovery URL with its host:port replaced by the relay's."""
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, relay.hostport, u.path, u.query, u.fragment))


# ------------------------------------------------------------------------------------------------
# etcd members

class Member:
    def __init__(self, checks, name, discovery, fallback=None, enable_v2=False, data_dir=None,
                 ports=None, extra=(), gated=False):
        self.name = name
        self.gated = gated
        self.discovery = discovery
        self.fallback = fallback
        self.enable_v2 = enable_v2
        self.extra = list(extra)
        if ports is None:
            ports = free_ports(2)
        self.client_port, self.peer_port = ports
        self.client_url = "http://127.0.0.1:%d" % self.client_port
        self.peer_url = "http://127.0.0.1:%d" % self.peer_port
        self.data_dir = data_dir or tmpdir(name + ".etcd")
        self.log = os.path.join(os.path.dirname(self.data_dir), name + ".log")
        checks.add_log("member " + name, self.log)
        self.proc = None
        self.start()

    def argv(self):
        a = [ETCD, "--name", self.name, "--data-dir", self.data_dir,
             "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
             "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
             "--discovery", self.discovery]
        if self.fallback:
            a.append("--discovery-fallback=%s" % self.fallback)
        if self.enable_v2:
            a.append("--enable-v2=true")
        return a + self.extra

    def start(self):
        """(Re)starts the process with the same flags; the log is appended to."""
        assert self.proc is None or self.proc.poll() is not None
        self.log_offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        with open(self.log, "ab") as f:
            f.write(("=== start %.3f: %s\n" % (time.time(), " ".join(self.argv()))).encode())
        self.proc = spawn(self.argv(), self.log, env=clean_env(), gated=self.gated)
        self.gated = False  # a restart is never gated
        return self

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=T(10))
            except subprocess.TimeoutExpired:
                pass

    def wipe(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)
        os.makedirs(self.data_dir)
        os.chmod(self.data_dir, 0o700)

    def alive(self):
        return self.proc.poll() is None

    def returncode(self):
        return self.proc.poll()

    def wait_exit(self, timeout):
        """The exit status, or None if still running at the deadline."""
        try:
            return self.proc.wait(timeout=T(timeout))
        except subprocess.TimeoutExpired:
            return None

    def log_text(self, since_start=False):
        t = read_text(self.log)
        if since_start:
            # The text written since the last start() (bytes offset ~ chars for ASCII logs).
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                t = f.read().decode("utf-8", "replace")
        return t


def start_members(checks, names, discovery, **kw):
    """Starts several members at (nearly) the same instant: each waits at a gate until all are
    forked, then all are released together."""
    ms = [Member(checks, n, discovery, gated=True, **kw) for n in names]
    open_gates(ms)
    return ms


def open_gates(members):
    for m in members:
        if m.proc.stdin:
            try:
                m.proc.stdin.write(b"go\n")
                m.proc.stdin.flush()
                m.proc.stdin.close()
            except OSError:
                pass


def etcdctl(args, endpoints, timeout=15):
    env = clean_env()
    env["ETCDCTL_API"] = "3"
    argv = [ETCDCTL, "--endpoints", ",".join(endpoints), "--dial-timeout=3s",
            "--command-timeout=5s"] + list(args)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=env, timeout=T(timeout), preexec_fn=_pdeathsig)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def member_list(endpoints):
    """[(name, sorted peerURLs)] sorted by name, from `etcdctl member list -w json`."""
    rc, out, err = etcdctl(["member", "list", "-w", "json"], endpoints)
    if rc != 0:
        raise RuntimeError("etcdctl member list rc=%d: %s" % (rc, err.strip()))
    ms = json.loads(out).get("members", [])
    return sorted((m.get("name", ""), sorted(m.get("peerURLs", []))) for m in ms)


def endpoint_health(endpoints):
    """{endpoint: bool} from `etcdctl endpoint health -w json` (one etcdctl run per endpoint)."""
    res = {}
    for ep in endpoints:
        rc, out, err = etcdctl(["endpoint", "health", "-w", "json"], [ep])
        ok = False
        if rc == 0:
            try:
                ok = all(h.get("health") is True for h in json.loads(out))
            except ValueError:
                ok = False
        res[ep] = ok
    return res


def wait_cluster(members, timeout=45):
    """Waits until every member answers endpoint health and lists all members with names.
    Fails early if one of them exits. Returns the member list."""
    eps = [m.client_url for m in members]
    want = sorted((m.name, [m.peer_url]) for m in members)

    def ready():
        for m in members:
            if not m.alive():
                raise Fatal("member %s exited with %s:\n%s" % (m.name, m.returncode(), tail(m.log, 25)))
        h = endpoint_health(eps)
        if not all(h.values()):
            return None
        ml = member_list(eps)
        return ml if ml == want else None

    return wait_until(ready, timeout, 0.3, "cluster %s healthy" % [m.name for m in members])


def assert_cluster(checks, label, members, expect_names=None):
    """The member list and endpoint health checks every scenario makes."""
    eps = [m.client_url for m in members]
    want = sorted((m.name, [m.peer_url]) for m in members)
    try:
        ml = member_list(eps)
    except Exception as e:  # noqa: BLE001
        checks.check("%s: member list" % label, False, e)
        return False
    ok1 = checks.eq("%s: member list has names and peer URLs %s" % (label, [w[0] for w in want]), ml, want)
    h = endpoint_health(eps)
    ok2 = checks.check("%s: endpoint health of all %d members" % (label, len(eps)), all(h.values()), h)
    return ok1 and ok2


def kill_members(members):
    for m in members:
        m.kill()
