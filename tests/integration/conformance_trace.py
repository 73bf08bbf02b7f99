"""tests/integration/conformance_trace.py — the parts of test_conformance.py that are not the
replay itself: the pass/fail report, the target servers (etcd 3.4 or discoveryd on loopback), the
Go-compatible JSON helpers, and the recorded exchanges with their loaders. Imported by
test_conformance.py only; not named test_*.py, so CTest does not run it on its own.
Python 3 standard library only.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
from urllib.parse import quote

# --------------------------------------------------------------------------------------------
# report


class Report:
    def __init__(self, quiet=False):
        self.passed = 0
        self.failed = 0
        self.failures = []
        self.quiet = quiet
        self.header_notes = {}  # informational header differences -> count of replies

    def ok(self, what):
        self.passed += 1
        if not self.quiet:
            print("PASS  " + what, flush=True)

    def fail(self, what, detail=""):
        self.failed += 1
        self.failures.append(what + ": " + detail)
        if not self.quiet:
            print("FAIL  " + what + (("\n        " + detail.replace("\n", "\n        ")) if detail else ""),
                  flush=True)

    def check(self, cond, what, detail=""):
        if cond:
            self.ok(what)
        else:
            self.fail(what, detail)
        return cond

    @staticmethod
    def skip(what):
        print("SKIP  " + what, flush=True)

    @staticmethod
    def note(what):
        print("NOTE  " + what, flush=True)


# --------------------------------------------------------------------------------------------
# servers


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """One target process on loopback: etcd 3.4 (--enable-v2) or discoveryd."""

    def __init__(self, kind, tmp):
        self.kind = kind
        self.tmp = tmp
        self.proc = None
        self.port = None
        self.log_path = os.path.join(tmp, kind + ".log")

    def start(self):
        self.port = free_port()
        url = "http://127.0.0.1:%d" % self.port
        data = os.path.join(self.tmp, self.kind + ".data")
        if self.kind == "etcd":
            peer = "http://127.0.0.1:%d" % free_port()
            cmd = [os.environ.get("ETCD_BIN", "etcd"), "--name", "conf", "--data-dir", data,
                   "--enable-v2=true", "--listen-client-urls", url, "--advertise-client-urls", url,
                   "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                   "--initial-cluster", "conf=" + peer, "--initial-cluster-state", "new"]
        else:
            binary = os.environ.get("DISCOVERYD_BIN")
            if not binary:
                raise RuntimeError("DISCOVERYD_BIN is not set (or use --target etcd)")
            # Defaults except one: the per-token check overwrites one key of one token 1100
            # times in a second, far beyond the default per-token write burst (100).
            cmd = [binary, "--listen", "127.0.0.1:%d" % self.port, "--data-dir", data,
                   "--public-url", url, "--threads", "2", "--token-write-burst", "5000"]
            cmd += os.environ.get("DISCOVERYD_EXTRA_ARGS", "").split()
        self.cmd = cmd
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 30
        probe = "/v2/keys/" if self.kind == "etcd" else "/health"
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s during start; log %s:\n%s" % (
                    self.kind, self.proc.returncode, self.log_path, self.tail()))
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", probe)
                r = c.getresponse()
                r.read()
                c.close()
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("%s did not become ready in 30 s; log:\n%s" % (self.kind, self.tail()))

    def tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None


# --------------------------------------------------------------------------------------------
# JSON helpers


def parse_ordered(text):
    """JSON with every object as a list of (name, value) pairs, so member order is kept."""
    return json.loads(text, object_pairs_hook=lambda pairs: ("obj", list(pairs)))


def is_obj(v):
    return isinstance(v, tuple) and len(v) == 2 and v[0] == "obj"


def go_string(s):
    """A JSON string exactly as Go's encoding/json writes it (HTML-safe escaping)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or ch in "<>&" or o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_encode(v):
    if is_obj(v):
        return "{" + ",".join(go_string(k) + ":" + go_encode(x) for k, x in v[1]) + "}"
    if isinstance(v, list):
        return "[" + ",".join(go_encode(x) for x in v) + "]"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, str):
        return go_string(v)
    return json.dumps(v)


def obj_get(v, name):
    if is_obj(v):
        for k, x in v[1]:
            if k == name:
                return x
    return None


def canon(v, unordered):
    """Children of directory listings sorted by key when the listing order is arbitrary."""
    if is_obj(v):
        pairs = []
        for k, x in v[1]:
            x = canon(x, unordered)
            if k == "nodes" and unordered and isinstance(x, list):
                x = sorted(x, key=lambda n: str(obj_get(n, "key")))
            pairs.append((k, x))
        return ("obj", pairs)
    if isinstance(v, list):
        return [canon(x, unordered) for x in v]
    return v


INDEX_FIELDS = ("modifiedIndex", "createdIndex", "index")
CLEARED_RE = re.compile(r"\[(\d+)/(\d+)\]")


def collect_indexes(v, out):
    if is_obj(v):
        for k, x in v[1]:
            if k in INDEX_FIELDS and isinstance(x, int):
                out.append(x)
            else:
                collect_indexes(x, out)
    elif isinstance(v, list):
        for x in v:
            collect_indexes(x, out)
    return out


# --------------------------------------------------------------------------------------------
# exchanges


class Exchange:
    def __init__(self, label, method, target, req_headers, req_body, status, resp_headers, resp_body,
                 chunked, conn_key=None):
        self.label = label
        self.method = method
        self.target = target            # recorded target (recorded tokens, recorded waitIndex)
        self.req_headers = req_headers  # list of (name, value) to send (Host/Content-Length omitted)
        self.req_body = req_body or ""
        self.status = status
        self.resp_headers = resp_headers
        self.resp_body = resp_body      # recorded body text (with its trailing "\n")
        self.chunked = chunked
        self.conn_key = conn_key        # None: a new connection (curl); else reuse (a member)
        self.t_req = None
        self.t_end = None
        self.longpoll = False
        self.anchor = False             # this write fixes the phase's index offset
        self.expect_pending_for = 0.0
        self.synthesized = False        # expectation written by this test, not recorded
        self.private = False            # always sent in the private form (token creation)

    @property
    def is_watch(self):
        return "wait=true" in self.target

    def hdr(self, name):
        for k, v in self.resp_headers:
            if k.lower() == name.lower():
                return v
        return None


MEMBER_HEADERS = [("User-Agent", "Go-http-client/1.1"), ("Accept-Encoding", "gzip")]
CURL_HEADERS = [("User-Agent", "curl/7.88.1"), ("Accept", "*/*")]
FORM = ("Content-Type", "application/x-www-form-urlencoded")


def success_headers(index, chunked=False, body=""):
    h = [("Content-Type", "application/json"), ("X-Etcd-Cluster-Id", "0"), ("X-Etcd-Index", str(index)),
         ("X-Raft-Index", "0"), ("X-Raft-Term", "0")]
    if chunked:
        h.append(("Transfer-Encoding", "chunked"))
    else:
        h.append(("Content-Length", str(len(body.encode()))))
    return h


def synth_write(label, target, value, status, action, key, index, conn_key=None, prev_exist=None):
    body = ('{"action":"%s","node":{"key":"%s","value":"%s","modifiedIndex":%d,"createdIndex":%d}}\n'
            % (action, key, value, index, index))
    q = "?prevExist=false" if prev_exist is False else ""
    req_body = "value=" + quote(value, safe="")
    ex = Exchange(label, "PUT", target + q, list(CURL_HEADERS) + [FORM], req_body, status,
                  success_headers(index, body=body), body, False, conn_key)
    ex.synthesized = True
    return ex


def load_run2(path):
    """Phase A: the member exchanges of run 2, in order of arrival at the proxy."""
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    xs = sorted([r for r in rows if r.get("ev") == "exchange"], key=lambda r: r["seq"])
    out = []
    for r in xs:
        hdrs = [(k, v) for k, v in r["req_headers"] if k.lower() not in ("host", "content-length")]
        ex = Exchange("run2 #%d %s" % (r["seq"], r["who"]), r["method"], r["target"], hdrs,
                      r["req_body"], r["status"], [tuple(h) for h in r["resp_headers"]],
                      r["resp_body"], r["resp_chunked"], conn_key=("run2", r["client_port"]))
        ex.t_req, ex.t_end = r["t_req"], r["t_end"]
        out.append(ex)
    for i, ex in enumerate(out):
        nxt = out[i + 1].t_req if i + 1 < len(out) else float("inf")
        ex.longpoll = ex.is_watch and ex.t_end > nxt
    return out


def parse_curl(cmdline):
    parts = cmdline.split()
    method, url, body = "GET", None, None
    i = 0
    while i < len(parts):
        p = parts[i]
        if p == "-X":
            method = parts[i + 1]
            i += 1
        elif p == "-d":
            body = parts[i + 1]
            i += 1
        elif p.startswith("http://") or p.startswith('"http://'):
            url = p.strip('"')
        i += 1
    if body is not None and method == "GET":
        method = "POST"
    target = "/" + url.split("/", 3)[3]
    return method, target, body


def load_store_examples(path):
    """Phase B: the curl transcripts of trace §5, as a list of ('ex', Exchange) / ('note', text)."""
    text = open(path, encoding="utf-8").read()
    blocks = re.split(r"^################ ", text, flags=re.M)[1:]
    out = []
    for n, blk in enumerate(blocks, 1):
        lines = blk.split("\n")
        title = lines[0]
        if title.startswith("(note)"):
            out.append(("note", title))
            continue
        background = title.startswith("(background)")
        if background:
            method, target, body = parse_curl(title.split("--")[0].replace("(background) curl -si", ""))
            rest = lines[1:]
        else:
            assert lines[1].startswith("$ curl"), blk[:200]
            method, target, body = parse_curl(lines[1][len("$ curl -si"):])
            rest = lines[2:]
        status = int(rest[0].split()[1])
        hdrs = []
        i = 1
        while rest[i] != "":
            k, v = rest[i].split(": ", 1)
            hdrs.append((k, v))
            i += 1
        resp_body = rest[i + 1] + "\n"
        chunked = any(k.lower() == "transfer-encoding" for k, _ in hdrs)
        req_headers = list(CURL_HEADERS) + ([FORM] if body is not None else [])
        ex = Exchange("store #%d%s" % (n, " (background)" if background else ""), method, target,
                      req_headers, body, status, hdrs, resp_body, chunked)
        ex.background = background
        out.append(("ex", ex))
    return out
